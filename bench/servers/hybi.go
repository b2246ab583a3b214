package servers

import (
	"errors"
	"net"

	"github.com/hybi/websocket"
)

// serveHybi is this library's echo: a Handler whose Serve is a read loop
// that reads into a reused buffer (AppendMessage), as the package
// documentation recommends for busy servers: no allocation per message.
// Needing nothing from the handshake request, it releases it at once, as
// the documentation recommends for servers with many connections.
func serveHybi(ln net.Listener, mode Mode) error {
	h := &websocket.Handler{
		ReadLimit: ReadLimit,
		Serve: func(c *websocket.Conn) {
			c.ReleaseRequest()
			var buf []byte
			for {
				typ, msg, err := c.AppendMessage(buf[:0])
				if err != nil {
					return
				}
				if err := c.WriteMessage(typ, msg); err != nil {
					return
				}
				if buf = msg; cap(buf) > 64<<10 {
					buf = nil // do not keep a rare large message's buffer
				}
			}
		},
	}
	h.Compression = hybiCompression(mode)
	return httpServe(ln, h)
}

// hybiCompression is the Handler's Compression for mode.
func hybiCompression(mode Mode) *websocket.CompressionOptions {
	switch mode {
	case NoTakeover:
		return &websocket.CompressionOptions{}
	case Takeover:
		return &websocket.CompressionOptions{ContextTakeover: true}
	}
	return nil
}

// broadcastHybi is a websocket.Group: each connection joins it in Serve,
// whose read loop only keeps reading (for pings and the close), and each
// trigger is one Group.Broadcast, with the group's defaults (queues of
// DefaultQueueBytes, members slow once full for DefaultStallTimeout
// disconnected).
func broadcastHybi(ln net.Listener) error {
	g := &websocket.Group{}
	h := &websocket.Handler{
		ReadLimit: ReadLimit,
		Serve: func(c *websocket.Conn) {
			c.ReleaseRequest()
			g.Add(c)
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		},
	}
	return httpServe(ln, broadcastMux(h, g.Len, func(msg []byte) error {
		return g.Broadcast(websocket.BinaryMessage, msg)
	}))
}

// serveHybiEv is this library's echo on callbacks: OnMessage writes each
// message back. With Handler.Events the connection is served by the event
// engine, with no goroutine while idle.
// OnOpen releases the handshake request, as serveHybi does.
func serveHybiEv(ln net.Listener, mode Mode) error {
	ev := websocket.Events{
		OnOpen: (*websocket.Conn).ReleaseRequest,
		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			_ = c.WriteMessage(typ, msg)
		},
	}
	h := &websocket.Handler{ReadLimit: ReadLimit, Compression: hybiCompression(mode),
		Events: &ev}
	return listenServe(ln, h)
}

// listenServe serves h with websocket.Serve, which the README recommends
// for many connections on the engine: it answers handshakes in buffers it
// reuses, where net/http's hijack leaves two 4 KiB buffers per handshake
// for the garbage collector.
func listenServe(ln net.Listener, h *websocket.Handler) error {
	err := websocket.Serve(ln, h)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// broadcastHybiEv is broadcastHybi on callbacks: OnOpen adds the
// connection to the Group, messages are discarded (OnMessage nil).
func broadcastHybiEv(ln net.Listener) error {
	g := &websocket.Group{}
	ev := websocket.Events{
		OnOpen: func(c *websocket.Conn) {
			c.ReleaseRequest()
			g.Add(c)
		},
	}
	h := &websocket.Handler{ReadLimit: ReadLimit, Events: &ev,
		Fallback: broadcastMux(nil, g.Len, func(msg []byte) error {
			return g.Broadcast(websocket.BinaryMessage, msg)
		})}
	return listenServe(ln, h)
}
