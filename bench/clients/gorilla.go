package clients

import (
	"context"

	"github.com/gorilla/websocket"
)

// gorillaClient is gorilla's client as its documentation shows:
// DefaultDialer.Dial, WriteMessage, and NextReader read into a reused
// buffer (ReadMessage would allocate each message; the documentation points
// to NextReader for applications that reuse buffers).
type gorillaClient struct {
	c   *websocket.Conn
	buf []byte
}

func dialGorilla(ctx context.Context, url string) (syncClient, error) {
	c, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(readLimit)
	return &gorillaClient{c: c}, nil
}

func (g *gorillaClient) roundTrip(payload []byte) ([]byte, error) {
	if err := g.c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		return nil, err
	}
	_, r, err := g.c.NextReader()
	if err != nil {
		return nil, err
	}
	g.buf, err = readAll(r, g.buf[:0])
	return g.buf, err
}

func (g *gorillaClient) close() { _ = g.c.Close() }
