//go:build !linux

package websocket

// Elsewhere than on Linux, reads and writes go through net.Conn.

import "errors"

type rawIO struct{}

type rawBatch struct{}

func (*rawBatch) reset() {}

func (c *Conn) useRawSocket() {}

// fillRaw is never called: useRawSocket sets no raw connection here.
func (cr *connReader) fillRaw() error { return errors.ErrUnsupported }

// send writes pre, p and post, one frame (wmu held).
func (c *Conn) send(pre, p, post []byte) error {
	if len(p) > 0 && c.masks() {
		return c.sendMasked(pre, p) // which calls send with p nil
	}
	return c.sendConn(pre, p, post)
}

// sendFrames writes b's frames (msgMu and wmu held).
func (c *Conn) sendFrames(b *frameBatch, _ bool) error { return c.sendFramesConn(b.frames) }

// finishBatch is never needed: sendFrames always waits.
func (c *Conn) finishBatch(*frameBatch) error { return nil }
