package websocket

import (
	"io"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// useRawSocket makes the reads and writes of a plain socket go straight
// to its descriptor (TLS and other connections go through net.Conn): a
// read waits for data without holding a buffer, and a frame's parts go out
// with one writev.
func (c *Conn) useRawSocket() {
	sc, ok := c.br.conn.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.br.raw = true
	if _, engine := sc.(*engineSocket); !engine {
		// Made here, not at the first read or write: a 2 KiB stack has no
		// room for an allocation there. The engine's reads wait only for a
		// close (fillRaw makes one for the wait), and its writes borrow a writer.
		c.br.rio = newRawIO(&c.br, raw)
	}
}

// rawConn is the socket's descriptor (cr.raw): rio's, or on the engine,
// the socket's own, which an idle connection keeps no second reference to.
func (cr *connReader) rawConn() syscall.RawConn {
	if cr.rio != nil {
		return cr.rio.raw
	}
	return (*engineRaw)(cr.conn.(*engineSocket))
}

// rawIO is the state of a connection's reads and writes through raw, made
// once so that they allocate nothing.
type rawIO struct {
	cr     *connReader
	raw    syscall.RawConn
	w      rawWriter             // the Conn's frames (wmu)
	readFn func(fd uintptr) bool // read
	err    error                 // read's
}

func newRawIO(cr *connReader, raw syscall.RawConn) *rawIO {
	rio := &rawIO{cr: cr, raw: raw}
	rio.readFn, rio.w.fn = rio.read, rio.w.writev
	return rio
}

// fillRaw reads into a fresh buffer from the socket, waiting for data
// without holding a buffer.
func (cr *connReader) fillRaw() error {
	rio := cr.rio
	if rio == nil { // on the engine, whose reads wait only for a close
		s := cr.conn.(*engineSocket)
		if err := s.inputErr(); err != nil {
			return err // Run saw the input end (rmu held, as here)
		}
		rio = newRawIO(cr, (*engineRaw)(s))
	}
	rio.err = nil
	if err := rio.raw.Read(rio.readFn); err != nil {
		return err
	}
	if rio.err != nil {
		return rio.err
	}
	cr.sized(cr.w)
	return nil
}

// read is the function raw.Read calls: it reads into a buffer taken from
// the pool (setting w), and returns the buffer and false (wait) on an
// empty socket.
func (rio *rawIO) read(fd uintptr) bool {
	cr := rio.cr
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
			rio.err = socketError("read", cr.conn, err)
		case n == 0:
			rio.err = io.EOF
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

// rawWriter writes iovecs with writev, without a copy and without a
// deadline until the socket is full: a frame's parts for its Conn, or a
// group member's batch of frames.
type rawWriter struct {
	c       *Conn
	iov     []syscall.Iovec  // what is left to write
	parts   [3]syscall.Iovec // a frame's parts, for send
	wait    bool             // wait for room, or return when the socket is full
	blocked bool             // the socket filled up and a write deadline was armed
	errno   syscall.Errno
	fn      func(fd uintptr) bool // writev, made once
}

// frameWriter is what sendEngine lends a Conn for one frame (an
// idle connection there holds none): a rawWriter, and room to join a small
// frame's parts, written then with write rather than writev, whose import
// of the iovecs costs the kernel more than the copy.
type frameWriter struct {
	rawWriter
	joined [2048]byte
}

var frameWriters = sync.Pool{New: func() any {
	w := new(frameWriter)
	w.fn = w.writev
	return w
}}

// send writes pre, p and post, one frame (wmu held). On a plain socket it
// takes one system call (more if the socket fills up), and only a write
// that would block arms the write timeout: a write that completes at once
// needs no timer.
func (c *Conn) send(pre, p, post []byte) error {
	if len(p) > 0 && c.masks() { // here, not in a frame of its own: an idle connection's stack is small
		return c.sendMasked(pre, p) // which calls send with p nil
	}
	if !c.br.raw {
		return c.sendConn(pre, p, post)
	}
	if c.br.rio == nil {
		return c.sendEngine(pre, p, post)
	}
	w := &c.br.rio.w
	w.c, w.wait, w.errno = c, true, 0
	w.frame(pre, p, post)
	err := w.done(c.br.rio.raw.Write(w.fn))  // not through write: one frame less on a 2 KiB stack
	w.parts, w.iov = [3]syscall.Iovec{}, nil // keep no reference to the caller's bytes
	return err
}

// sendEngine is send on the engine's socket.
func (c *Conn) sendEngine(pre, p, post []byte) error {
	fw := frameWriters.Get().(*frameWriter)
	w := &fw.rawWriter
	w.c = c
	if n := len(pre) + len(p) + len(post); n <= len(fw.joined) && n > len(pre) {
		w.frame(append(append(append(fw.joined[:0], pre...), p...), post...), nil, nil)
	} else {
		w.frame(pre, p, post)
	}
	err := w.send(true)
	w.c, w.parts, w.iov = nil, [3]syscall.Iovec{}, nil
	frameWriters.Put(fw)
	return err
}

// frame makes w's iovecs a frame's parts.
func (w *rawWriter) frame(pre, p, post []byte) {
	w.iov = w.parts[:0]
	w.add(pre)
	w.add(p)
	w.add(post)
}

func (w *rawWriter) add(b []byte) {
	if len(b) > 0 {
		w.iov = append(w.iov, iovec(b))
	}
}

func iovec(b []byte) syscall.Iovec {
	v := syscall.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return v
}

// write writes w.iov to its Conn's socket (wmu held), waiting for room if
// wait; if not, it returns errWouldBlock when the socket could not take
// it all, and a later write(true) writes the rest.
func (w *rawWriter) write(wait bool) error {
	w.wait, w.errno = wait, 0
	return w.done(w.c.br.rawConn().Write(w.fn))
}

// done is what a write through raw.Write comes to.
func (w *rawWriter) done(err error) error {
	if w.blocked {
		w.blocked = false
		w.c.restoreWriteDeadline()
	}
	switch {
	case err != nil:
	case w.errno != 0:
		err = socketError("write", w.c.br.conn, w.errno)
	case len(w.iov) > 0:
		err = errWouldBlock
	}
	return err
}

// writev is the function raw.Write calls: it writes w.iov, advancing it,
// until all is written, the write fails, or the socket is full (then it
// waits, arming the write timeout, or returns). On the engine's sockets,
// whose descriptors are surely nonblocking, it is a raw system call, as
// the engine's reads are (internal/poll's doc says why).
func (w *rawWriter) writev(fd uintptr) bool {
	call := syscall.Syscall
	if _, onEngine := w.c.br.conn.(*engineSocket); onEngine {
		call = syscall.RawSyscall
	}
	for len(w.iov) > 0 {
		trap, arg, count := uintptr(syscall.SYS_WRITEV), unsafe.Pointer(&w.iov[0]), uintptr(min(len(w.iov), maxBatchFrames))
		if len(w.iov) == 1 { // write: no iovec for the kernel to import
			trap, arg, count = syscall.SYS_WRITE, unsafe.Pointer(w.iov[0].Base), uintptr(w.iov[0].Len)
		}
		n, _, errno := call(trap, fd, uintptr(arg), count)
		switch errno {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !w.wait {
				return true
			}
			if !w.blocked {
				w.blocked = true
				w.c.armWriteDeadline()
			}
			return false
		default:
			w.errno = errno
			return true
		}
		for n > 0 {
			v := &w.iov[0]
			if l := uintptr(v.Len); n < l {
				v.Base = (*byte)(unsafe.Add(unsafe.Pointer(v.Base), n))
				v.SetLen(int(l - n))
				break
			}
			n -= uintptr(v.Len)
			w.iov = w.iov[1:]
		}
	}
	return true
}

// rawBatch is a group member's batch of frames as one vectored write.
type rawBatch struct {
	w    rawWriter
	vecs []syscall.Iovec
}

func (rb *rawBatch) reset() {
	clear(rb.vecs) // keep no reference to the frames
	rb.vecs, rb.w.iov, rb.w.c = rb.vecs[:0], nil, nil
}

// sendFrames writes b's frames (msgMu and wmu held): on a plain socket as
// one writev, without waiting unless wait (errWouldBlock: the socket
// could not take them all; finishBatch writes the rest).
func (c *Conn) sendFrames(b *frameBatch, wait bool) error {
	if !c.br.raw {
		return c.sendFramesConn(b.frames)
	}
	rb := &b.raw
	if rb.w.fn == nil {
		rb.w.fn = rb.w.writev
	}
	rb.w.c = c
	for _, f := range b.frames {
		rb.vecs = append(rb.vecs, iovec(f))
	}
	rb.w.iov = rb.vecs
	return rb.w.send(wait)
}

// finishBatch writes what is left of b, waiting for room (msgMu and wmu
// held), within the write timeout.
func (c *Conn) finishBatch(b *frameBatch) error { return b.raw.w.send(true) }

// send writes w.iov as write does, or on the engine through its socket's
// queue.
func (w *rawWriter) send(wait bool) error {
	if s, ok := w.c.br.conn.(*engineSocket); ok {
		return s.write(w, wait)
	}
	return w.write(wait)
}
