package servers

import (
	"net"

	"github.com/hybi/websocket"
)

// serveHybi is this library's echo: a Handler whose Serve is a read loop.
func serveHybi(ln net.Listener, mode Mode) error {
	h := &websocket.Handler{
		ReadLimit: ReadLimit,
		Serve: func(c *websocket.Conn) {
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(typ, msg); err != nil {
					return
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
