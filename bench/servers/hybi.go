package servers

import (
	"net"

	"github.com/hybi/websocket"
)

// serveHybi is this library's echo: a Handler whose Serve is a read loop
// that reads into a reused buffer (AppendMessage), as the package
// documentation recommends for busy servers: no allocation per message.
func serveHybi(ln net.Listener, mode Mode) error {
	h := &websocket.Handler{
		ReadLimit: ReadLimit,
		Serve: func(c *websocket.Conn) {
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
	switch mode {
	case NoTakeover:
		h.Compression = &websocket.CompressionOptions{}
	case Takeover:
		h.Compression = &websocket.CompressionOptions{ContextTakeover: true}
	}
	return httpServe(ln, h)
}
