//go:build !linux

package websocket

// Elsewhere than on Linux, reads and writes go through net.Conn.

type rawWriter struct{}

func (c *Conn) useRawSocket() {}

// sendRaw is not called: there is no raw socket.
func (c *Conn) sendRaw(pre, p, post []byte) error { return c.sendConn(pre, p, post) }
