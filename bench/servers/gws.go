package servers

import (
	"net"
	"net/http"

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
