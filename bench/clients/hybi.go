package clients

import (
	"context"

	"github.com/hybi/websocket"
)

// hybiClient is this library's client as its documentation shows for a busy
// connection: Dial, WriteMessage, and AppendMessage into a reused buffer (no
// allocation per message).
type hybiClient struct {
	c   *websocket.Conn
	buf []byte
}

func dialHybi(ctx context.Context, url string) (syncClient, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{ReadLimit: readLimit})
	if err != nil {
		return nil, err
	}
	return &hybiClient{c: c}, nil
}

func (h *hybiClient) roundTrip(payload []byte) ([]byte, error) {
	if err := h.c.WriteMessage(websocket.BinaryMessage, payload); err != nil {
		return nil, err
	}
	_, msg, err := h.c.AppendMessage(h.buf[:0])
	h.buf = msg
	return msg, err
}

func (h *hybiClient) close() { _ = h.c.CloseNow() }
