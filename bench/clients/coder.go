package clients

import (
	"context"

	"github.com/coder/websocket"
)

// coderClient is coder's client as its documentation shows: Dial (with its
// default: no compression), Write, and Reader read into a reused buffer
// (Read would allocate each message).
type coderClient struct {
	c   *websocket.Conn
	ctx context.Context
	buf []byte
}

func dialCoder(ctx context.Context, url string) (syncClient, error) {
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(readLimit)
	return &coderClient{c: c, ctx: context.Background()}, nil
}

func (k *coderClient) roundTrip(payload []byte) ([]byte, error) {
	if err := k.c.Write(k.ctx, websocket.MessageBinary, payload); err != nil {
		return nil, err
	}
	_, r, err := k.c.Reader(k.ctx)
	if err != nil {
		return nil, err
	}
	k.buf, err = readAll(r, k.buf[:0])
	return k.buf, err
}

func (k *coderClient) close() { _ = k.c.CloseNow() }
