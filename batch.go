package websocket

import (
	"errors"
	"sync"
)

// frameBatch is messages taken from a group member's queue, written to its
// connection in one go.
type frameBatch struct {
	msgs   []*PreparedMessage
	frames [][]byte // msgs' frames in the connection's wire form
	raw    rawBatch // the vectored write in progress, on a plain socket
}

var batches = sync.Pool{New: func() any { return new(frameBatch) }}

func getBatch() *frameBatch { return batches.Get().(*frameBatch) }

func putBatch(b *frameBatch) {
	b.reset()
	batches.Put(b)
}

// reset empties b, keeping no reference to what it held.
func (b *frameBatch) reset() {
	clear(b.msgs)
	clear(b.frames)
	b.msgs, b.frames = b.msgs[:0], b.frames[:0]
	b.raw.reset()
}

// errWouldBlock is what sendBatch returns when the socket could not take
// the whole batch at once: finishBatch writes the rest.
var errWouldBlock = errors.New("websocket: socket full")

// sendBatch writes b's messages, each in c's wire form, as one vectored
// write (msgMu and wmu held). With wait false, it writes what the socket
// takes at once and returns errWouldBlock if that is not all, keeping
// both locks for finishBatch.
func (c *Conn) sendBatch(b *frameBatch, wait bool) error {
	if err := c.writable(); err != nil {
		return err
	}
	if c.masks() { // a client's frames: each masked with its own key
		for _, pm := range b.msgs {
			if pre, _, err := c.codec().dataFrame(pm.typ, pm.data, true, true, false); err == nil {
				if err := c.send(pre, pm.data, nil); err != nil {
					return c.setWriteErr(err)
				}
			}
		}
		return nil
	}
	for _, pm := range b.msgs {
		f, compressed, err := pm.frame(c)
		if err != nil {
			continue // hixie text with a 0xFF: this connection cannot carry it
		}
		if compressed {
			c.deflater.sent(pm.data) // the peer's window will hold it: so must ours
		}
		b.frames = append(b.frames, f)
	}
	if len(b.frames) == 0 {
		return nil
	}
	err := c.sendFrames(b, wait)
	if err == errWouldBlock {
		return err
	}
	return c.setWriteErr(err)
}

// canTryWrite reports whether a write to c can be tried without waiting
// (a plain socket on Linux).
func (c *Conn) canTryWrite() bool { return c.br.raw && !c.masks() }

// batchBufSize is the most a write through net.Conn carries at once.
const batchBufSize = 64 << 10

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, batchBufSize); return &b }}

// sendFramesConn writes frames through net.Conn, gathered into writes of
// up to 64 KiB: written one by one, each small frame would cost a system
// call, and over TLS a record.
func (c *Conn) sendFramesConn(frames [][]byte) error {
	c.armWriteDeadline()
	buf := batchBufs.Get().(*[]byte)
	defer batchBufs.Put(buf)
	out := (*buf)[:0]
	for _, f := range frames {
		if len(out)+len(f) > cap(out) && len(out) > 0 {
			if _, err := c.br.conn.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
		if len(f) > cap(out) {
			if _, err := c.br.conn.Write(f); err != nil {
				return err
			}
			continue
		}
		out = append(out, f...)
	}
	if len(out) > 0 {
		_, err := c.br.conn.Write(out)
		return err
	}
	return nil
}
