package websocket

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
)

// Sizes of a connection's read buffer while it has one: small, unless the
// last read filled a small one (the peer sends in bulk); large enough then
// that a 16 KiB message and its header arrive in one system call, to be
// unmasked as they are copied out.
const (
	smallReadBuf = 4 << 10
	largeReadBuf = 32 << 10
)

var readBufs = [2]sync.Pool{
	{New: func() any { b := make([]byte, smallReadBuf); return &b }},
	{New: func() any { b := make([]byte, largeReadBuf); return &b }},
}

// connReader buffers what a connection reads in a pooled buffer that it
// gives back whenever it is empty, so that a connection waiting for its
// peer holds no buffer. On a TCP connection it waits for data without a
// buffer, through syscall.RawConn, at no extra system call: the read is
// tried first, and only an empty socket waits, with the buffer returned.
type connReader struct {
	conn  net.Conn
	raw   syscall.RawConn // nil: not a plain socket (TLS, a pipe)
	buf   *[]byte         // nil while empty
	r, w  int
	large bool // the next buffer is a large one

	// The read in progress through raw (rawio_linux.go): its result, and
	// a closure made once, so that a read allocates nothing.
	n     int
	err   error
	rawFn func(fd uintptr) bool
}

func newConnReader(conn net.Conn, buffered []byte) *connReader {
	cr := &connReader{conn: conn}
	if len(buffered) > 0 {
		cr.acquire()
		cr.w = copy(*cr.buf, buffered)
	}
	return cr
}

func (cr *connReader) acquire() { cr.buf = readBufs[cr.sizeClass()].Get().(*[]byte) }

func (cr *connReader) sizeClass() int {
	if cr.large {
		return 1
	}
	return 0
}

// bufSize is the size of the next buffer.
func (cr *connReader) bufSize() int {
	if cr.large {
		return largeReadBuf
	}
	return smallReadBuf
}

func (cr *connReader) release() {
	class := 0
	if len(*cr.buf) == largeReadBuf {
		class = 1
	}
	readBufs[class].Put(cr.buf)
	cr.buf, cr.r, cr.w = nil, 0, 0
}

// sized picks the next buffer's size after a read of n bytes.
func (cr *connReader) sized(n int) { cr.large = n >= smallReadBuf }

// Pending is what is buffered, valid until the next read.
func (cr *connReader) Pending() []byte {
	if cr.buf == nil {
		return nil
	}
	return (*cr.buf)[cr.r:cr.w]
}

// Buffered is how many bytes can be read without waiting.
func (cr *connReader) Buffered() int { return cr.w - cr.r }

// consumed gives the buffer back once it is empty.
func (cr *connReader) consumed(n int) {
	if cr.r += n; cr.r == cr.w && cr.buf != nil {
		cr.release()
	}
}

// wait waits until there are bytes to read.
func (cr *connReader) wait() error {
	if cr.w > cr.r {
		return nil
	}
	return cr.fill()
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
	cr.sized(n)
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
	cr.sized(cr.n)
	return nil
}

// Peek returns the next n bytes (n <= smallReadBuf) without consuming them.
func (cr *connReader) Peek(n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
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

// Next returns up to n buffered bytes, reading first if none are; the
// caller consumes them with consumed once it is done with them.
func (cr *connReader) Next(n int) ([]byte, error) {
	if cr.w == cr.r {
		if err := cr.fill(); err != nil {
			return nil, err
		}
	}
	return (*cr.buf)[cr.r:min(cr.w, cr.r+n)], nil
}

// Read reads up to len(p) bytes: from the buffer if it holds any, else
// straight into p when p is large, sparing a copy.
func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.w == cr.r {
		if len(p) >= cr.bufSize() {
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
