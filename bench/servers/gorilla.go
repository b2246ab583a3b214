package servers

import (
	"net"
	"net/http"

	"github.com/gorilla/websocket"
)

// serveGorilla follows gorilla's echo example: an Upgrader, then
// ReadMessage and WriteMessage in a loop.
func serveGorilla(ln net.Listener, mode Mode) error {
	upgrader := websocket.Upgrader{
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: mode != None,
	}
	return httpServe(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(ReadLimit)
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
}
