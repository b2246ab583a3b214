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
	if len(p) > 0 && c.masks() { // here, not in a frame of its own: an idle connection's stack is small
		return c.sendMasked(pre, p) // which calls send with p nil
	}
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
	rest, errno := writeIovecs(fd, w.iov[w.next:w.end])
	w.next = w.end - uint8(len(rest))
	switch errno {
	case 0:
	case syscall.EAGAIN:
		if !w.blocked {
			w.blocked = true
			c.armWriteDeadline()
		}
		return false // wait until the socket has room
	default:
		w.err = socketError("write", c.netConn, errno)
	}
	return true
}

// writeIovecs writes iov to fd until all is written, the socket is full
// (EAGAIN) or the write fails, and returns what is left and the error
// number (0 once all is written). It advances the iovecs as it goes.
func writeIovecs(fd uintptr, iov []syscall.Iovec) ([]syscall.Iovec, syscall.Errno) {
	for len(iov) > 0 {
		n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(min(len(iov), maxBatchFrames)))
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		default:
			return iov, errno
		}
		for n > 0 {
			v := &iov[0]
			if l := uintptr(v.Len); n < l {
				v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
				v.SetLen(int(l - n))
				break
			}
			n -= uintptr(v.Len)
			iov = iov[1:]
		}
	}
	return iov, 0
}

// rawBatch is a group member's batch of frames as one vectored write.
type rawBatch struct {
	c       *Conn
	all     []syscall.Iovec
	iov     []syscall.Iovec // what is left to write
	wait    bool            // wait for room, or return when the socket is full
	blocked bool            // the socket filled up and a write deadline was armed
	err     error
	fn      func(fd uintptr) bool // writev, made once per batch
}

func (w *rawBatch) reset() {
	clear(w.all) // keep no reference to the frames
	w.c, w.all, w.iov, w.err = nil, w.all[:0], nil, nil
}

// sendFrames writes b's frames (msgMu and wmu held): on a plain socket as
// one writev, without waiting unless wait (errWouldBlock: the socket
// could not take them all; finishBatch writes the rest).
func (c *Conn) sendFrames(b *frameBatch, wait bool) error {
	if c.br.raw == nil {
		return c.sendFramesConn(b.frames)
	}
	w := &b.raw
	if w.fn == nil {
		w.fn = w.writev
	}
	w.c = c
	for _, f := range b.frames {
		var v syscall.Iovec
		v.Base = unsafe.SliceData(f)
		v.SetLen(len(f))
		w.all = append(w.all, v)
	}
	w.iov = w.all
	if !wait {
		w.wait = false
		if err := c.br.raw.Write(w.fn); err != nil {
			return err
		}
		if w.err == nil && len(w.iov) > 0 {
			return errWouldBlock
		}
		return w.err
	}
	return c.finishBatch(b)
}

// finishBatch writes what is left of b, waiting for room (msgMu and wmu
// held), within the write timeout.
func (c *Conn) finishBatch(b *frameBatch) error {
	w := &b.raw
	w.wait = true
	err := c.br.raw.Write(w.fn)
	if w.blocked {
		w.blocked = false
		c.restoreWriteDeadline()
	}
	if err != nil {
		return err
	}
	return w.err
}

// writev is the function raw.Write calls for a batch.
func (w *rawBatch) writev(fd uintptr) bool {
	rest, errno := writeIovecs(fd, w.iov)
	w.iov = rest
	switch errno {
	case 0:
	case syscall.EAGAIN:
		if !w.wait {
			return true // the caller hands the rest to a goroutine that may wait
		}
		if !w.blocked {
			w.blocked = true
			w.c.armWriteDeadline()
		}
		return false
	default:
		w.err = socketError("write", w.c.netConn, errno)
	}
	return true
}
