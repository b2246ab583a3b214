package websocket

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// NetConn returns a net.Conn that carries a byte stream over c, so that
// any stream protocol (HTTP/2, gRPC, SSH, TLS, a database's wire protocol)
// can ride on a WebSocket, on either end and over any transport. Each
// Write goes out as messages of type typ (BinaryMessage, also for 0; or
// TextMessage, for a text protocol whose Writes are whole UTF-8, and the
// only type a hixie connection carries: binary Writes on one fail with an
// error wrapping errors.ErrUnsupported). Reads take the bytes of every
// data message the peer sends, text or binary, across message boundaries.
// Once NetConn is called, read and write c only through the net.Conn.
//
// NetConn lifts c's read limit: Reads stream each message through 64 KiB
// buffers, so its size costs no memory, and a peer may send a large Write
// as one message (coder's NetConn does).
//
// Close closes c with 1000 (Normal Closure, or hixie's close). The
// peer's close reads as io.EOF when its code is 1000, 1001 or none (as
// hixie-76's); another code reads as the *CloseError.
//
// Deadlines are those of a net.Conn: a Read that times out returns an
// error wrapping os.ErrDeadlineExceeded and leaves the connection as it
// was, so that a later Read continues the stream (net/http, for one,
// aborts a pending Read with a past deadline and reads on). For that, a
// goroutine of the NetConn's reads c, one buffer ahead of Read, which
// copies from it; it holds no buffer while c is idle. So c is read from
// the start, and answers the peer's pings and close even while the
// application only writes (unless a buffer read waits for a Read). A
// Write deadline that passes before the Write fails it and leaves the
// connection open; one that passes during the Write cuts a frame short,
// which cannot be resumed, so it closes c (ErrWriteTimeout), as c's own
// write deadline does. c's WriteTimeout still bounds each frame.
//
// A Write goes out as one message, or as several of at most 64 KiB when
// larger (below any peer's default read limit); Writes from several
// goroutines do not interleave.
func NetConn(c *Conn, typ MessageType) net.Conn {
	if typ == 0 {
		typ = BinaryMessage
	}
	nc := &netConn{c: c, typ: typ, ready: make(chan struct{}, 1), taken: make(chan struct{}, 1), closing: make(chan struct{})}
	nc.connClosed = make(chan struct{})
	c.afterClose(func() { close(nc.connClosed) })
	c.SetReadLimit(-1)
	go nc.pump()
	return nc
}

// netConnMessage is the largest message a NetConn writes.
const netConnMessage = 64 << 10

// netConnBufs hold what a NetConn's reading goroutine hands to Read: as
// large as a Write's message, so that one is handed over at once.
var netConnBufs = sync.Pool{New: func() any { b := make([]byte, netConnMessage); return &b }}

type netConn struct {
	c   *Conn
	typ MessageType

	readMu sync.Mutex // one Read at a time
	rd     deadline

	// What the reading goroutine (pump) hands to Read.
	mu    sync.Mutex
	buf   *[]byte       // the pooled buffer data is in
	data  []byte        // not yet read
	err   error         // what Read returns once data is read: nothing more comes
	ready chan struct{} // the pump has put data or err
	taken chan struct{} // Read has read all of data
	r     io.Reader     // the message being read (pump's own)

	wmu sync.Mutex   // one Write at a time: a Write's messages stay together
	wd  atomic.Int64 // the write deadline, Unix ns; 0: none

	closeOnce  sync.Once
	closing    chan struct{} // closed by Close
	connClosed chan struct{} // closed once c has closed
}

func (nc *netConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	nc.readMu.Lock()
	defer nc.readMu.Unlock()
	for {
		select {
		case <-nc.closing:
			return 0, nc.opError("read", net.ErrClosed)
		case <-nc.rd.expired(): // as a socket's: even with bytes to read
			return 0, nc.opError("read", os.ErrDeadlineExceeded)
		default:
		}
		nc.mu.Lock()
		if len(nc.data) > 0 {
			n := copy(p, nc.data)
			nc.data = nc.data[n:]
			if len(nc.data) == 0 {
				netConnBufs.Put(nc.buf)
				nc.buf, nc.data = nil, nil
				signal(nc.taken)
			}
			nc.mu.Unlock()
			return n, nil
		}
		if err := nc.err; err != nil {
			nc.mu.Unlock()
			return 0, err
		}
		nc.mu.Unlock()
		select {
		case <-nc.ready:
		case <-nc.rd.expired():
			return 0, nc.opError("read", os.ErrDeadlineExceeded)
		case <-nc.closing:
		}
	}
}

// pump reads c, handing Read one buffer at a time, until reading fails.
// While Read has not taken a buffer, it waits; if c closes meanwhile (not
// by this reading), what is handed stays for Read, and then the reason c
// closed. Once the NetConn is closed, it reads on, discarding, so that
// the peer's answer to the close is read.
func (nc *netConn) pump() {
	for {
		buf, n, err := nc.readChunk()
		nc.mu.Lock()
		if n > 0 {
			nc.buf, nc.data = buf, (*buf)[:n]
		} else if buf != nil {
			netConnBufs.Put(buf)
		}
		if err != nil {
			nc.err = nc.readError(err)
		}
		nc.mu.Unlock()
		signal(nc.ready)
		if err != nil {
			return
		}
		select {
		case <-nc.taken:
		case <-nc.closing:
			nc.mu.Lock()
			if nc.buf != nil {
				netConnBufs.Put(nc.buf)
			}
			nc.buf, nc.data = nil, nil
			nc.mu.Unlock()
		case <-nc.connClosed:
			nc.mu.Lock()
			nc.err = nc.readError(nc.c.closedErr())
			nc.mu.Unlock()
			return
		}
	}
}

// readChunk reads what comes next of the stream, at least a byte, into a
// pooled buffer taken once the bytes are there: an idle NetConn waits
// for the next message without one.
func (nc *netConn) readChunk() (*[]byte, int, error) {
	var buf *[]byte
	for {
		if nc.r == nil {
			_, r, err := nc.c.NextReader()
			if err != nil {
				return buf, 0, err
			}
			nc.r = r
		}
		if buf == nil {
			buf = netConnBufs.Get().(*[]byte)
		}
		n, err := nc.r.Read(*buf)
		if err == io.EOF {
			nc.r, err = nil, nil
		}
		if n > 0 || err != nil {
			return buf, n, err
		}
	}
}

// readError is what Read returns for the error that ended reading.
func (nc *netConn) readError(err error) error {
	var ce *CloseError
	switch {
	case errors.As(err, &ce) && (ce.Code == StatusNormalClosure || ce.Code == StatusGoingAway || ce.Code == StatusNoStatusRcvd):
		return io.EOF
	case err == io.EOF:
		return io.EOF
	}
	return nc.opError("read", err)
}

func (nc *netConn) Write(p []byte) (int, error) {
	nc.wmu.Lock()
	defer nc.wmu.Unlock()
	select {
	case <-nc.closing:
		return 0, nc.opError("write", net.ErrClosed)
	default:
	}
	if d := nc.wd.Load(); d != 0 {
		if time.Now().UnixNano() >= d {
			return 0, nc.opError("write", os.ErrDeadlineExceeded)
		}
		// Set for the Write only, so that it leaves pongs and the close be.
		nc.c.SetWriteDeadline(time.Unix(0, d))
		defer nc.c.SetWriteDeadline(time.Time{})
	}
	written := 0
	for written < len(p) { // an empty Write sends nothing
		n := min(len(p)-written, netConnMessage)
		if err := nc.c.WriteMessage(nc.typ, p[written:written+n]); err != nil {
			return written, nc.opError("write", err)
		}
		written += n
	}
	return written, nil
}

// opError is err as net.Conn's errors are: a *net.OpError, wrapping
// net.ErrClosed once closed and os.ErrDeadlineExceeded on a timeout.
func (nc *netConn) opError(op string, err error) error {
	switch {
	case errors.Is(err, ErrClosed):
		err = net.ErrClosed
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = os.ErrDeadlineExceeded
	}
	return &net.OpError{Op: op, Net: "websocket", Source: nc.LocalAddr(), Addr: nc.RemoteAddr(), Err: err}
}

// Close closes the WebSocket with 1000; a Read or Write waiting returns
// net.ErrClosed.
func (nc *netConn) Close() error {
	err := nc.opError("close", net.ErrClosed)
	nc.closeOnce.Do(func() {
		close(nc.closing)
		err = nil
		if cerr := nc.c.Close(StatusNormalClosure, ""); cerr != nil && !errors.Is(cerr, ErrClosed) {
			err = nc.opError("close", cerr)
		}
	})
	return err
}

func (nc *netConn) LocalAddr() net.Addr  { return nc.c.LocalAddr() }
func (nc *netConn) RemoteAddr() net.Addr { return nc.c.RemoteAddr() }

func (nc *netConn) SetDeadline(t time.Time) error {
	nc.SetReadDeadline(t)
	return nc.SetWriteDeadline(t)
}

func (nc *netConn) SetReadDeadline(t time.Time) error {
	nc.rd.set(t)
	return nil
}

func (nc *netConn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	nc.wd.Store(ns)
	if !nc.wmu.TryLock() {
		// A Write is in progress: the new deadline bounds it.
		return nc.c.SetWriteDeadline(t)
	}
	nc.wmu.Unlock()
	return nil
}

// signal wakes the goroutine waiting on ch (of capacity 1), or the next
// one to wait: a signal left over only makes a waiter look again.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// deadline is a deadline as net.Conn has them, for waits that select on
// a channel: expired is closed once it passes, until it is set again.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // closed once the deadline has passed
}

// set sets the deadline to t; the zero time means none.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	if d.timer != nil && !d.timer.Stop() {
		<-d.ch // the timer fired: its function closes ch
	}
	d.timer = nil
	if isClosed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	if wait := time.Until(t); wait > 0 {
		ch := d.ch
		d.timer = time.AfterFunc(wait, func() { close(ch) })
		return
	}
	close(d.ch)
}

// expired is a channel closed once the deadline has passed.
func (d *deadline) expired() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
