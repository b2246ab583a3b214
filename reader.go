package websocket

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
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
	buf   *[]byte // nil while empty
	r, w  int
	raw   bool // a plain socket, read and written through its descriptor (rawConn)
	large bool // the next buffer is a large one

	// A TLS connection buffers what it decrypts: it waits for its peer
	// with a read of one byte, into first, and no buffer of ours.
	tls   bool
	first [1]byte

	rio *rawIO // raw's reads and writes (rawio_linux.go); nil on the engine
}

// init makes cr read conn, after buffered.
func (cr *connReader) init(conn net.Conn, buffered []byte) {
	cr.conn = conn
	switch conn.(type) {
	case *tls.Conn, *streamConn, *clientStream: // an HTTP/2 stream's body buffers too
		cr.tls = true
	}
	if len(buffered) > 0 {
		cr.acquire()
		cr.w = copy(*cr.buf, buffered)
	}
}

// readBufPool is the pool of buffers of size.
func readBufPool(size int) *sync.Pool {
	if size == largeReadBuf {
		return &readBufs[1]
	}
	return &readBufs[0]
}

func (cr *connReader) acquire() { cr.buf = readBufPool(cr.bufSize()).Get().(*[]byte) }

func (cr *connReader) release() {
	if n := len(*cr.buf); n == smallReadBuf || n == largeReadBuf { // not the engine's tail
		readBufPool(n).Put(cr.buf)
	}
	cr.buf, cr.r, cr.w = nil, 0, 0
}

// bufSize is the size of the next buffer.
func (cr *connReader) bufSize() int {
	if cr.large {
		return largeReadBuf
	}
	return smallReadBuf
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

// cut removes the n pending bytes from the from-th on, which are not
// read (a control frame taken from between a message's fragments).
func (cr *connReader) cut(from, n int) {
	pending := cr.Pending()
	copy(pending[from:], pending[from+n:])
	cr.w -= n
}

// consumed gives the buffer back once it is empty.
func (cr *connReader) consumed(n int) {
	if cr.r += n; cr.r == cr.w && cr.buf != nil {
		cr.release()
	}
}

// waitIdle waits for the peer's next frame: over TLS with a one-byte
// read and no buffer held (fillTLS).
func (cr *connReader) waitIdle() error {
	if cr.w > cr.r {
		return nil
	}
	return cr.fill(true)
}

// wait waits until there are bytes to read.
func (cr *connReader) wait() error {
	if cr.w > cr.r {
		return nil
	}
	return cr.fill(false)
}

// fill reads more into the buffer: at least one byte, or an error. idle
// says that the peer's next frame is awaited (waitIdle).
func (cr *connReader) fill(idle bool) error {
	if cr.buf == nil {
		switch {
		case cr.raw:
			return cr.fillRaw()
		case cr.tls && idle:
			return cr.fillTLS()
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

// fillTLS waits for the peer with a one-byte read, which holds no buffer,
// then reads into a fresh buffer what else TLS has decrypted of the record:
// that read does not wait, unless the record held only the one byte. Only
// a wait for the next frame reads this way (waitIdle): a frame is longer
// than a byte, so its next bytes are on their way; the last byte of a
// frame may come in a record of its own, after which the peer may wait
// for an answer. Its error, if any, comes back at the next read.
func (cr *connReader) fillTLS() error {
	n, err := cr.conn.Read(cr.first[:])
	if n == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return err
	}
	cr.acquire()
	(*cr.buf)[0] = cr.first[0]
	n, _ = cr.conn.Read((*cr.buf)[1:])
	cr.w = 1 + n
	cr.sized(cr.w)
	return nil
}

// Peek returns the next n bytes (n <= smallReadBuf) without consuming them.
func (cr *connReader) Peek(n int) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	for cr.w-cr.r < n {
		if err := cr.fill(false); err != nil {
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
		if err := cr.wait(); err != nil {
			return done, err
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
	if err := cr.wait(); err != nil {
		return nil, err
	}
	return (*cr.buf)[cr.r:min(cr.w, cr.r+n)], nil
}

// readMasked reads up to len(p) bytes into p, unmasking them with key from
// position pos, and returns the position after them: from the buffer if
// it holds any, unmasked as they are copied out, else straight into p when
// p is as large as a buffer, sparing the copy.
func (cr *connReader) readMasked(p []byte, key [4]byte, pos int) (int, int, error) {
	if cr.w == cr.r && len(p) >= cr.bufSize() {
		n, err := cr.conn.Read(p)
		if n > 0 {
			err = nil
		}
		return n, maskBytes(key, pos, p[:n]), err
	}
	buf, err := cr.Next(len(p))
	if err != nil {
		return 0, pos, err
	}
	pos = maskCopy(key, pos, p, buf)
	cr.consumed(len(buf))
	return len(buf), pos, nil
}

// ReadByte reads one byte.
func (cr *connReader) ReadByte() (byte, error) {
	if err := cr.wait(); err != nil {
		return 0, err
	}
	b := (*cr.buf)[cr.r]
	cr.consumed(1)
	return b, nil
}

// chunks holds the rest of a large message while it arrives (see
// Conn.AppendMessage), in pieces of chunkSize bytes of memory that
// newChunk takes outside the Go heap where it can.
type chunks struct {
	list [][]byte // the chunks not yet freed
	size int      // bytes read into them
}

const chunkSize = 1 << 20

// chunksHeld counts the chunks of all connections not yet freed: none
// while no large message is being read, whatever became of the last one.
var chunksHeld atomic.Int64

// space is the free part of the last chunk, or a new chunk.
func (m *chunks) space() ([]byte, error) {
	if free := len(m.list)*chunkSize - m.size; free > 0 {
		return m.list[len(m.list)-1][chunkSize-free:], nil
	}
	b, err := newChunk()
	if err != nil {
		return nil, err
	}
	chunksHeld.Add(1)
	m.list = append(m.list, b)
	return b, nil
}

// appendTo appends what the chunks hold to dst, which is full, in one
// allocation, and frees each chunk once it is copied. The allocation is a
// strings.Builder's: make, append and slices.Grow clear memory that the
// heap used before, which makes all of it resident at once, while the
// chunks still are; the Builder's is not cleared, and becomes resident
// only as the copy reaches it. Its bytes are handed out as a slice (the
// string is dropped), with append's capacity: a quarter more than dst's at
// least, for callers that gather many messages in one buffer.
func (m *chunks) appendTo(dst []byte) []byte {
	if m.size == 0 {
		return dst
	}
	n := len(dst) + m.size
	var b strings.Builder
	b.Grow(max(n, len(dst)+len(dst)/4))
	b.Write(dst)
	for left := m.size; len(m.list) > 0; left -= chunkSize {
		b.Write(m.list[0][:min(left, chunkSize)])
		m.freeFirst()
	}
	out := unsafe.Slice(unsafe.StringData(b.String()), b.Cap())
	clear(out[n:]) // what the heap held before
	return out[:n]
}

// free frees the chunks not yet freed.
func (m *chunks) free() {
	for len(m.list) > 0 {
		m.freeFirst()
	}
}

func (m *chunks) freeFirst() {
	freeChunk(m.list[0])
	chunksHeld.Add(-1)
	m.list[0] = nil // a heap chunk is garbage now
	m.list = m.list[1:]
}
