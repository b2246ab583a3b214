package websocket

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// readBufSize is the size of a connection's read buffer while it has one.
const readBufSize = 4096

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// connReader buffers what a connection reads in a pooled buffer that it
// gives back whenever it is empty, so that a connection waiting for its
// peer holds no buffer. On a TCP connection it waits for data without a
// buffer, through syscall.RawConn, at no extra system call: the read is
// tried first, and only an empty socket waits, with the buffer returned.
type connReader struct {
	conn net.Conn
	raw  syscall.RawConn // nil: not a plain socket (TLS, a pipe)
	buf  *[]byte         // nil while empty
	r, w int

	// The read in progress through raw: its result, and a closure made
	// once, so that a read allocates nothing.
	n     int
	err   error
	rawFn func(fd uintptr) bool
}

func newConnReader(conn net.Conn, buffered []byte) *connReader {
	cr := &connReader{conn: conn}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			cr.raw = raw
			cr.rawFn = cr.readRaw
		}
	}
	if len(buffered) > 0 {
		cr.acquire()
		cr.w = copy(*cr.buf, buffered)
	}
	return cr
}

func (cr *connReader) acquire() { cr.buf = readBufs.Get().(*[]byte) }

func (cr *connReader) release() {
	readBufs.Put(cr.buf)
	cr.buf, cr.r, cr.w = nil, 0, 0
}

// Buffered is how many bytes can be read without waiting.
func (cr *connReader) Buffered() int { return cr.w - cr.r }

// consumed gives the buffer back once it is empty.
func (cr *connReader) consumed(n int) {
	if cr.r += n; cr.r == cr.w && cr.buf != nil {
		cr.release()
	}
}

// fill reads more into the buffer: at least one byte, or an error.
func (cr *connReader) fill() error {
	if cr.buf == nil {
		if cr.raw != nil {
			return cr.fillRaw()
		}
		cr.acquire()
	}
	if cr.r > 0 {
		cr.w = copy(*cr.buf, (*cr.buf)[cr.r:cr.w])
		cr.r = 0
	}
	n, err := cr.conn.Read((*cr.buf)[cr.w:])
	cr.w += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if cr.w == 0 {
		cr.release()
	}
	return err
}

// fillRaw reads into a fresh buffer from the socket, waiting for data
// without holding a buffer.
func (cr *connReader) fillRaw() error {
	cr.n, cr.err = 0, nil
	if err := cr.raw.Read(cr.rawFn); err != nil {
		return err
	}
	if cr.err != nil {
		return cr.err
	}
	cr.w = cr.n
	return nil
}

// readRaw is the function raw.Read calls: it reads into a buffer taken
// from the pool, and returns the buffer and false (wait) on an empty socket.
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
			cr.err = &net.OpError{Op: "read", Net: "tcp", Source: cr.conn.LocalAddr(), Addr: cr.conn.RemoteAddr(), Err: err}
		case n == 0:
			cr.err = io.EOF
		}
		if cr.err != nil {
			cr.release()
		} else {
			cr.n = n
		}
		return true
	}
}

// Peek returns the next n bytes (n <= readBufSize) without consuming them.
func (cr *connReader) Peek(n int) ([]byte, error) {
	for cr.w-cr.r < n {
		if err := cr.fill(); err != nil {
			if cr.w-cr.r > 0 && errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	return (*cr.buf)[cr.r : cr.r+n], nil
}

// Discard skips n bytes, reading as needed.
func (cr *connReader) Discard(n int) (int, error) {
	done := 0
	for done < n {
		if cr.w == cr.r {
			if err := cr.fill(); err != nil {
				return done, err
			}
		}
		k := min(n-done, cr.w-cr.r)
		cr.consumed(k)
		done += k
	}
	return done, nil
}

// Read reads up to len(p) bytes: from the buffer if it holds any, else
// straight into p when p is large, sparing a copy.
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.w == cr.r {
		if len(p) >= readBufSize {
			n, err := cr.conn.Read(p)
			if n > 0 {
				err = nil
			}
			return n, err
		}
		if err := cr.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, (*cr.buf)[cr.r:cr.w])
	cr.consumed(n)
	return n, nil
}

// ReadByte reads one byte.
func (cr *connReader) ReadByte() (byte, error) {
	if cr.w == cr.r {
		if err := cr.fill(); err != nil {
			return 0, err
		}
	}
	b := (*cr.buf)[cr.r]
	cr.consumed(1)
	return b, nil
}
