//go:build !linux

package websocket

// Elsewhere than on Linux, reads and writes go through net.Conn.

type rawWriter struct{}

func (c *Conn) useRawSocket() {}

// send writes pre, p and post, one frame (wmu held).
func (c *Conn) send(pre, p, post []byte) error { return c.sendConn(pre, p, post) }
