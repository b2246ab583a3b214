package servers

import (
	"errors"
	"net"
	"net/http"
	"sync"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// nbioUpgrader is the Upgrader of nbio's websocket examples: the callbacks
// set on it, OnMessage given the whole message. Its KeepaliveTime (a read
// deadline of 120 s by default, renewed by each message) is off, as in
// nbio's own benchmark server: no other server here closes an idle
// connection, and the broadcast members never send.
func nbioUpgrader(mode Mode) *websocket.Upgrader {
	u := websocket.NewUpgrader()
	u.KeepaliveTime = 0
	u.MessageLengthLimit = ReadLimit
	u.EnableCompression(mode == NoTakeover) // nbio agrees no context takeover only
	return u
}

// serveNbio serves h on an nbhttp.Engine in its non-blocking mode, as
// nbio's websocket examples do: the engine accepts on ln and hands each
// connection to one of its epoll pollers (a quarter as many as cores, at
// least one: its default); HTTP requests go to h, and the websocket
// messages of a connection to the Upgrader's callbacks, in order, on the
// engine's goroutine pool. It returns once ln is closed.
func serveNbio(ln net.Listener, h http.Handler) error {
	nl := &nbioListener{Listener: ln, closed: make(chan struct{}), stopping: make(chan struct{})}
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{ln.Addr().String()},
		Listen:                  func(string, string) (net.Listener, error) { return nl, nil },
		IOMod:                   nbhttp.IOModNonBlocking,
		ReleaseWebsocketPayload: true,
		Handler:                 h,
	})
	if err := engine.Start(); err != nil {
		return err
	}
	<-nl.closed
	engine.Stop()
	return nil
}

// nbioListener hands the harness's listener to the engine. nbio's accept
// loop retries every failed Accept until the engine stops, so once ln is
// closed, Accept reports it (closed) and waits for the engine's Stop,
// which closes nbioListener (stopping), before it fails.
type nbioListener struct {
	net.Listener
	closed, stopping chan struct{}
	closedOnce       sync.Once
	stopOnce         sync.Once
}

func (l *nbioListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if errors.Is(err, net.ErrClosed) {
		l.closedOnce.Do(func() { close(l.closed) })
		<-l.stopping
	}
	return c, err
}

func (l *nbioListener) Close() error {
	l.stopOnce.Do(func() { close(l.stopping) })
	return l.Listener.Close()
}

// nbioServe answers the WebSocket handshake on any path with u, as the
// examples' handler does on theirs.
func nbioServe(u *websocket.Upgrader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = u.Upgrade(w, r, nil) // a failed upgrade has been answered
	})
}

// serveNbioEcho echoes each message from OnMessage, as nbio's examples do.
func serveNbioEcho(ln net.Listener, mode Mode) error {
	u := nbioUpgrader(mode)
	u.OnMessage(func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
		_ = c.WriteMessage(typ, msg)
	})
	return serveNbio(ln, nbioServe(u))
}

// broadcastNbio keeps the members in a set filled by OnOpen and emptied by
// OnClose, and broadcasts with a WriteMessage to each, the way nbio's
// author answers how to broadcast (nbio issue 152): nbio has no broadcast
// call of its own; in the non-blocking mode a write never blocks (what the
// socket does not take is queued by the engine and flushed by its poller).
func broadcastNbio(ln net.Listener) error {
	var mu sync.Mutex
	members := make(map[*websocket.Conn]struct{})
	u := nbioUpgrader(None)
	u.OnOpen(func(c *websocket.Conn) {
		mu.Lock()
		members[c] = struct{}{}
		mu.Unlock()
	})
	u.OnClose(func(c *websocket.Conn, _ error) {
		mu.Lock()
		delete(members, c)
		mu.Unlock()
	})
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(members)
	}
	send := func(msg []byte) error {
		mu.Lock()
		defer mu.Unlock()
		for c := range members {
			_ = c.WriteMessage(websocket.BinaryMessage, msg)
		}
		return nil
	}
	return serveNbio(ln, broadcastMux(nbioServe(u), count, send))
}
