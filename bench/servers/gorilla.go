package servers

import (
	"net"
	"net/http"
	"sync/atomic"
	"time"

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

// gorillaHub is the hub of gorilla's chat example (examples/chat), carrying
// PreparedMessages: one goroutine owns the set of clients and, for each
// broadcast, puts the message in every client's buffered send channel; a
// client whose channel is full is dropped.
type gorillaHub struct {
	clients    map[*gorillaClient]bool
	broadcast  chan *websocket.PreparedMessage
	register   chan *gorillaClient
	unregister chan *gorillaClient
	members    atomic.Int64 // len(clients), for /members
}

// gorillaClient is the example's Client: one goroutine reads (readPump), one
// writes what the hub sends (writePump).
type gorillaClient struct {
	hub  *gorillaHub
	conn *websocket.Conn
	send chan *websocket.PreparedMessage
}

const (
	gorillaSendBuffer = 256              // the example's send channel
	gorillaWriteWait  = 10 * time.Second // the example's write deadline
	gorillaBufferSize = 1024             // the example's read and write buffers (the default: 4096)
)

func (h *gorillaHub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if _, ok := h.clients[c]; ok {
				delete(h.clients, c)
				close(c.send)
			}
		case pm := <-h.broadcast:
			for c := range h.clients {
				select {
				case c.send <- pm:
				default:
					close(c.send)
					delete(h.clients, c)
				}
			}
		}
		h.members.Store(int64(len(h.clients)))
	}
}

func (c *gorillaClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(ReadLimit)
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func (c *gorillaClient) writePump() {
	defer c.conn.Close()
	for pm := range c.send {
		_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
		if err := c.conn.WritePreparedMessage(pm); err != nil {
			return
		}
	}
	// The hub closed the channel.
	_ = c.conn.SetWriteDeadline(time.Now().Add(gorillaWriteWait))
	_ = c.conn.WriteMessage(websocket.CloseMessage, []byte{})
}

// broadcastGorilla is gorilla's chat example with PreparedMessage: the hub
// goroutine hands each broadcast, prepared once, to every client's send
// channel, and each client's writePump calls WritePreparedMessage. As in the
// example, the Upgrader has 1 KiB read and write buffers (the echo server
// keeps the defaults). Left out of the example: its ping ticker (no other
// server pings) and its coalescing of queued chat lines into one message
// (which PreparedMessage excludes).
func broadcastGorilla(ln net.Listener) error {
	upgrader := websocket.Upgrader{
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  gorillaBufferSize,
		WriteBufferSize: gorillaBufferSize,
	}
	hub := &gorillaHub{
		clients:    make(map[*gorillaClient]bool),
		broadcast:  make(chan *websocket.PreparedMessage),
		register:   make(chan *gorillaClient),
		unregister: make(chan *gorillaClient),
	}
	go hub.run()
	ws := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &gorillaClient{hub: hub, conn: conn, send: make(chan *websocket.PreparedMessage, gorillaSendBuffer)}
		hub.register <- c
		go c.writePump()
		go c.readPump()
	})
	return httpServe(ln, broadcastMux(ws, func() int { return int(hub.members.Load()) }, func(msg []byte) error {
		pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, msg)
		if err != nil {
			return err
		}
		hub.broadcast <- pm
		return nil
	}))
}
