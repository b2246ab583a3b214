package websocket

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// useRawSocket makes the reads and writes of a plain socket go straight
// to its descriptor (TLS and other connections go through net.Conn): a
// read waits for data without holding a buffer, and a frame's parts go out
// with one writev.
func (c *Conn) useRawSocket() {
	sc, ok := c.netConn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.rw.fn = c.writev
	c.br.raw, c.br.rawFn = raw, c.br.readRaw
}

// readRaw is the function raw.Read calls: it reads into a buffer taken
// from the pool (setting w), and returns the buffer and false (wait) on an
// empty socket.
func (cr *connReader) readRaw(fd uintptr) bool {
	cr.acquire()
	for {
		n, err := syscall.Read(int(fd), *cr.buf)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			cr.release()
			return false
		case err != nil:
			cr.err = socketError("read", cr.conn, err)
		case n == 0:
			cr.err = io.EOF
		default:
			cr.w = n
			return true
		}
		cr.release()
		return true
	}
}

// socketError is what net.Conn would report for a failed system call.
func socketError(op string, conn net.Conn, err error) error {
	return &net.OpError{Op: op, Net: conn.LocalAddr().Network(), Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: err}
}

// rawWriter writes a frame's parts with writev, without a copy and
// without a deadline until the socket is full.
type rawWriter struct {
	iov       [3]syscall.Iovec
	next, end uint8 // iov[next:end] is what is left to write
	blocked   bool  // the socket filled up and a write deadline was armed
	err       error
	fn        func(fd uintptr) bool
}

// send writes pre, p and post, one frame (wmu held). On a plain socket it
// takes one system call (more if the socket fills up), and only a write
// that would block arms the write timeout: a write that completes at once
// needs no timer.
func (c *Conn) send(pre, p, post []byte) error {
	raw := c.br.raw
	if raw == nil {
		return c.sendConn(pre, p, post)
	}
	w := &c.rw
	w.next, w.end, w.err = 0, 0, nil
	w.add(pre)
	w.add(p)
	w.add(post)
	err := raw.Write(w.fn)
	if w.blocked {
		w.blocked = false
		c.restoreWriteDeadline()
	}
	w.iov = [3]syscall.Iovec{} // keep no reference to the caller's bytes
	if err != nil {
		return err
	}
	return w.err
}

func (w *rawWriter) add(b []byte) {
	if len(b) > 0 {
		v := &w.iov[w.end]
		v.Base = unsafe.SliceData(b)
		v.SetLen(len(b))
		w.end++
	}
}

// writev is the function raw.Write calls.
func (c *Conn) writev(fd uintptr) bool {
	w := &c.rw
	for w.next < w.end {
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd,
			uintptr(unsafe.Pointer(&w.iov[w.next])), uintptr(w.end-w.next))
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !w.blocked {
				w.blocked = true
				c.armWriteDeadline()
			}
			return false // wait until the socket has room
		default:
			w.err = socketError("write", c.netConn, errno)
			return true
		}
		for n > 0 {
			v := &w.iov[w.next]
			if l := uintptr(v.Len); n < l {
				v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
				v.SetLen(int(l - n))
				break
			}
			n -= uintptr(v.Len)
			w.next++
		}
	}
	return true
}
