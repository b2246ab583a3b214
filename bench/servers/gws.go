package servers

import (
	"net"
	"net/http"
	"sync"

	"github.com/lxzan/gws"
)

// gwsEcho is the event handler of gws's "best practice" example, echoing
// each message.
type gwsEcho struct{ gws.BuiltinEventHandler }

func (gwsEcho) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (gwsEcho) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	_ = socket.WriteMessage(message.Opcode, message.Bytes())
}

// serveGws follows gws's best practice: an Upgrader on net/http and a
// ReadLoop in its own goroutine. Messages are handled in order on the
// connection's goroutine (ParallelEnabled off, the default).
func serveGws(ln net.Listener, mode Mode) error {
	opts := &gws.ServerOption{ReadMaxPayloadSize: ReadLimit}
	switch mode {
	case NoTakeover:
		opts.PermessageDeflate = gws.PermessageDeflate{Enabled: true}
	case Takeover:
		opts.PermessageDeflate = gws.PermessageDeflate{
			Enabled:               true,
			ServerContextTakeover: true,
			ClientContextTakeover: true,
		}
	}
	upgrader := gws.NewUpgrader(gwsEcho{}, opts)
	return httpServe(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	}))
}

// gwsMembers is the event handler of the gws broadcast server: a member
// from OnOpen (the start of its ReadLoop) to OnClose.
type gwsMembers struct {
	gws.BuiltinEventHandler
	mu    sync.Mutex
	conns map[*gws.Conn]struct{}
}

func (m *gwsMembers) OnOpen(socket *gws.Conn) {
	m.mu.Lock()
	m.conns[socket] = struct{}{}
	m.mu.Unlock()
}

func (m *gwsMembers) OnClose(socket *gws.Conn, _ error) {
	m.mu.Lock()
	delete(m.conns, socket)
	m.mu.Unlock()
}

func (*gwsMembers) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (m *gwsMembers) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

// broadcast is the README's Broadcast example: a Broadcaster, its Broadcast
// method called for each member (which queues the frame, built once, to the
// member's write queue), then Close.
func (m *gwsMembers) broadcast(msg []byte) error {
	b := gws.NewBroadcaster(gws.OpcodeBinary, msg)
	defer b.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	for socket := range m.conns {
		_ = b.Broadcast(socket)
	}
	return nil
}

// broadcastGws keeps the members in a set maintained by OnOpen and OnClose
// and broadcasts with a gws.Broadcaster; ReadLoop in its own goroutine, as
// in the echo server.
func broadcastGws(ln net.Listener) error {
	m := &gwsMembers{conns: make(map[*gws.Conn]struct{})}
	upgrader := gws.NewUpgrader(m, &gws.ServerOption{ReadMaxPayloadSize: ReadLimit})
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		socket, err := upgrader.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	})
	return httpServe(ln, broadcastMux(ws, m.len, m.broadcast))
}
