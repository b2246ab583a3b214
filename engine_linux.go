package websocket

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hybi/websocket/internal/poll"
)

// engineSocket is a plain TCP connection taken off Go's poller after the
// handshake: a descriptor of its own (a duplicate of the one net/http
// had) registered with one of the engine's pollers. As a net.Conn, its
// reads and writes wait for the poller's events when they must; the
// engine's own reads never wait (Run).
type engineSocket struct {
	d       poll.Desc
	raddr   [16]byte // the peer's address (IPv4 mapped), port and family, compact
	c       *Conn
	h       *Handler
	opened  time.Duration // clock() at the handshake
	slow    atomic.Pointer[socketSlow]
	rport   uint16
	r4      bool
	started bool // OnOpen has run (Run)
	ended   bool // OnClose has run (Run)
	input   inputEnd
}

// inputEnd is how a socket's input ended (fill, rmu), kept in a byte for
// the usual ends, so that a connection's end makes no socketSlow.
type inputEnd uint8

const (
	inputOn     inputEnd = iota
	inputEOF             // io.EOF
	inputClosed          // poll.ErrClosed
	inputFailed          // socketSlow.rerr
)

// onEngine moves c, whose socket the Handler took off Go's poller
// (engineConn), to the engine, before c is tracked; runEngine then starts
// it.
func (h *Handler) onEngine(c *Conn) bool {
	s, ok := c.br.conn.(*engineSocket)
	if !ok {
		return false
	}
	s.c, s.h, s.opened = c, h, clock()
	h.engineConns.Add(1)
	return true
}

// runEngine registers c's socket with its poller, once c is tracked (a
// poller may run c through to its end at once: a peer that hung up with
// its handshake), and makes its first run here on net/http's goroutine,
// which ends after it: OnOpen, what arrived with the handshake (or
// OnClose and the Handler's accounting, if the registration failed).
func (h *Handler) runEngine(c *Conn) {
	s := c.br.conn.(*engineSocket)
	if err := s.d.Register(s); err != nil {
		c.drop(&causeError{ErrDropped, err})
	}
	s.d.RunHere()
}

// engineConn takes netConn, a plain TCP connection whose handshake is
// answered, off Go's poller for the engine: it duplicates the descriptor
// (nonblocking already: the flag belongs to the socket, which Go made
// so) and closes netConn, which Go then forgets. Anything else, or a failure,
// leaves netConn as it is.
func (h *Handler) engineConn(netConn net.Conn) net.Conn {
	tc, ok := netConn.(*net.TCPConn)
	if h.Events == nil || !ok {
		return netConn
	}
	p, err := poll.Pick()
	if err != nil {
		return netConn
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return netConn
	}
	fd, derr := -1, error(nil)
	raw.Control(func(s uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, s, syscall.F_DUPFD_CLOEXEC, 0)
		if fd = int(r); errno != 0 {
			derr = errno
		}
	})
	if derr != nil {
		return netConn
	}
	s := new(engineSocket)
	if ra, ok := tc.RemoteAddr().(*net.TCPAddr); ok {
		ap := ra.AddrPort()
		s.raddr, s.rport, s.r4 = ap.Addr().As16(), ap.Port(), ap.Addr().Is4()
	}
	s.d.Init(p, fd)
	tc.Close()
	return s
}

// The callbacks, each failing the connection with 1011 if it panics.

func (s *engineSocket) onOpen(f func(*Conn)) {
	defer s.recovered()
	f(s.c)
}

func (s *engineSocket) onMessage(f func(*Conn, MessageType, []byte), typ MessageType, msg []byte) {
	defer s.recovered()
	f(s.c, typ, msg)
}

func (s *engineSocket) onClose(f func(*Conn, error), err error) {
	defer s.recovered()
	f(s.c, err)
}

func (s *engineSocket) recovered() {
	if p := recover(); p != nil {
		s.c.closeHandshake(s.h.panicked(s.c, p))
	}
}

// Run is the connection's work on the poller, serialized: it reads what
// arrived without waiting, runs the codec over each message or control
// frame buffered whole, hands each message to OnMessage, and keeps the
// unfinished tail. Once reading has ended, it calls OnClose and lets the
// Handler count the close.
func (s *engineSocket) Run() {
	c := s.c
	if s.ended {
		return
	}
	// The first run (RunHere's) reads nothing from a registered socket:
	// what arrived before the registration, epoll reported as it
	// registered it.
	first := !s.started && !s.d.Closed()
	if !s.started {
		s.started = true
		if f := s.h.Events.OnOpen; f != nil {
			s.onOpen(f)
		}
	}
	// A close awaiting the peer's may be reading (awaitPeerClose): this
	// waits for it to end, on a poller that a long wait hands off.
	c.rmu.Lock()
	var msg *[]byte
	var scan readyScan // on the stack: kept in slow only for a message still arriving
	sl := s.slow.Load()
	if sl != nil {
		scan = sl.scan
	}
	for c.readErr == nil {
		full := !first && s.fill()
		for c.readErr == nil && (s.inputErr() != nil || c.ready(&scan)) {
			if scan.control > 0 {
				if err := c.hybi.takeControl(&scan); err != nil {
					c.setReadErr(err)
				}
				continue
			}
			scan = readyScan{} // the codec consumes from here
			typ, err := c.codec().next()
			if err == errControl {
				if err = c.codec().answer(); err == nil {
					continue
				}
			}
			if err != nil {
				c.setReadErr(err)
				break
			}
			c.readGen++
			if msg == nil {
				msg = engineMessages.Get().(*[]byte)
			}
			if typ, *msg, err = c.appendRest(typ, (*msg)[:0]); err != nil {
				break
			}
			if f := s.h.Events.OnMessage; f != nil {
				c.rmu.Unlock()
				s.onMessage(f, typ, *msg)
				c.rmu.Lock()
			}
		}
		if !full {
			break
		}
	}
	if msg != nil {
		if cap(*msg) <= maxPooledMessage {
			engineMessages.Put(msg)
		}
	}
	c.br.park()
	if sl != nil || scan != (readyScan{}) {
		s.slowParts().scan = scan
	}
	err := c.readErr
	c.rmu.Unlock()
	if err != nil {
		s.end(err)
	}
}

// socketSlow is what only a socket in the middle of something needs, made
// at the first need and kept: the scan of a message still arriving (Run's),
// the output its socket could not take, and the error its read failed with.
type socketSlow struct {
	scan readyScan // rmu
	out  engineOut
	rerr error // rmu; input is inputFailed
}

// inputErr is how the socket's input ended, which the codec meets at its
// next read; nil while it goes on.
func (s *engineSocket) inputErr() error {
	switch s.input {
	case inputOn:
		return nil
	case inputEOF:
		return io.EOF
	case inputClosed:
		return poll.ErrClosed
	}
	return s.slow.Load().rerr
}

func (s *engineSocket) slowParts() *socketSlow {
	if sl := s.slow.Load(); sl != nil {
		return sl
	}
	s.slow.CompareAndSwap(nil, new(socketSlow))
	return s.slow.Load()
}

// engineOut is what the socket could not take of the frames written to
// it: their bytes, in order, which the poller writes once the socket is
// writable again. Writers go on meanwhile, their frames queued behind, up
// to maxQueuedBytes; the write timeout bounds how long the bytes may wait.
type engineOut struct {
	mu      sync.Mutex
	buf     []byte // the bytes waiting from head on
	head    int
	timer   *poll.Timer   // the write timeout, armed while bytes wait
	drained chan struct{} // made by a writer waiting for room; closed once buf is empty or failed
	err     error         // why the queue failed: the connection is closing
}

func (o *engineOut) pending() int { return len(o.buf) - o.head }

// maxQueuedBytes is the most an engine connection queues, beyond the
// socket's own buffer: a writer past it waits for the queue to drain (a
// Group's shared writer hands the member to a goroutine of its own
// instead). Small, so that clients that do not read cost little.
const maxQueuedBytes = 64 << 10

// write writes w's frames (wmu held) to the socket, queueing what it does
// not take at once behind what is queued already. With wait false, it
// returns errWouldBlock rather than wait for room in the queue.
func (s *engineSocket) write(w *rawWriter, wait bool) error {
	if sl := s.slow.Load(); sl != nil {
		o := &sl.out
		o.mu.Lock()
		if o.err != nil || o.pending() > 0 {
			return s.queue(o, w, wait)
		}
		o.mu.Unlock()
	}
	if err := w.write(false); err != errWouldBlock {
		return err
	}
	o := &s.slowParts().out
	o.mu.Lock()
	return s.queue(o, w, wait)
}

// queue appends what is left of w's frames to o (o.mu held; it unlocks
// it), once there is room.
func (s *engineSocket) queue(o *engineOut, w *rawWriter, wait bool) error {
	n := 0
	for _, v := range w.iov {
		n += int(v.Len)
	}
	for o.err == nil && o.pending() > 0 && o.pending()+n > maxQueuedBytes {
		if !wait {
			o.mu.Unlock()
			return errWouldBlock
		}
		drained := awaited(&o.drained)
		o.mu.Unlock()
		<-drained // or failed: the write timeout bounds the wait
		o.mu.Lock()
	}
	if err := o.err; err != nil {
		o.mu.Unlock()
		return err
	}
	armed := o.pending() > 0
	if o.head > 0 && len(o.buf)+n > cap(o.buf) { // room at the front: no new array
		o.buf = o.buf[:copy(o.buf, o.buf[o.head:])]
		o.head = 0
	}
	for _, v := range w.iov {
		o.buf = append(o.buf, unsafe.Slice(v.Base, v.Len)...)
	}
	w.iov = nil
	if !armed {
		s.d.WantWrite(true)
		if t := s.c.queueTimeout(); t > 0 {
			if o.timer == nil {
				o.timer = s.d.AfterFunc(t, s.queueTimedOut)
			} else {
				o.timer.Reset(t)
			}
		}
	}
	o.mu.Unlock()
	if !armed {
		s.flush(o) // the socket may have drained before WantWrite
	}
	return nil
}

// queueTimeout is how long queued bytes may wait: the write timeout, or
// until the user's write deadline if that comes first; 0 for no limit.
func (c *Conn) queueTimeout() time.Duration {
	t := c.writeTimeout
	if u := c.deadline.Load(); u != 0 {
		if d := time.Until(time.Unix(0, u)); t <= 0 || d < t {
			t = max(d, 1)
		}
	}
	return max(t, 0)
}

// Writable flushes the queue when the socket can take more (on the poller).
func (s *engineSocket) Writable() { s.flush(&s.slowParts().out) }

// flush writes what the queue holds, as much as the socket takes now.
func (s *engineSocket) flush(o *engineOut) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s.flushLocked(o)
}

// flushLocked is flush with o.mu held: it reports whether the queue is
// empty (or failed) now.
func (s *engineSocket) flushLocked(o *engineOut) bool {
	if o.pending() == 0 || o.err != nil {
		return true
	}
	n, err := s.d.WriteNow(o.buf[o.head:])
	switch {
	case err == syscall.EAGAIN:
		return false
	case err == poll.ErrClosed:
		s.failQueue(o, err)
		return true
	case err != nil:
		s.failQueue(o, socketError("write", s, err))
		return true
	}
	if o.head += n; o.pending() > 0 {
		return false
	}
	s.emptied(o)
	return true
}

// emptied lets go of o's bytes, written or failed (o.mu held): the socket's
// writability no longer matters, and writers waiting for room go on.
func (s *engineSocket) emptied(o *engineOut) {
	o.buf, o.head = nil, 0
	s.d.WantWrite(false)
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.drained != nil {
		close(o.drained)
		o.drained = nil
	}
}

// queueTimedOut fails the connection whose queued bytes waited past the
// write timeout, as a write that timed out does on a goroutine.
func (s *engineSocket) queueTimedOut() {
	o := &s.slowParts().out
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending() > 0 && o.err == nil {
		s.failQueue(o, socketError("write", s, os.ErrDeadlineExceeded))
	}
}

// failQueue ends the queue with err (o.mu held): its bytes are dropped,
// writers waiting for room and writers to come get err, and unless the
// socket is closing already, the connection closes as on a failed write.
func (s *engineSocket) failQueue(o *engineOut, err error) {
	if !errors.Is(err, net.ErrClosed) {
		err = s.c.failedWrite(err)
	}
	o.err = err
	s.emptied(o)
}

// flushWait writes what is queued, waiting for the socket (if wait) up to
// the close timeout, then ends the queue, letting go of what is left:
// before the socket shuts or closes, so that the close frame and what went
// before it are sent, and writers waiting for room return.
func (s *engineSocket) flushWait(wait bool) {
	sl := s.slow.Load()
	if sl == nil {
		return
	}
	o := &sl.out
	o.mu.Lock()
	if !s.flushLocked(o) && wait && s.c.closeTimeout > 0 {
		drained := awaited(&o.drained) // closed by the poller's flushes (Writable)
		o.mu.Unlock()
		waitClosed(drained, time.Now().Add(s.c.closeTimeout))
		o.mu.Lock()
	}
	if o.err == nil {
		s.failQueue(o, net.ErrClosed)
	}
	o.mu.Unlock()
}

// ready runs the codec's ready over what is buffered, called on its
// concrete type: through the codec interface, sc would escape to the heap.
func (c *Conn) ready(sc *readyScan) bool {
	if c.hixie != nil {
		return c.hixie.ready(c.br.Pending(), sc)
	}
	return c.hybi.ready(c.br.Pending(), sc)
}

// engineMessages are the buffers OnMessage's messages are read into.
var engineMessages = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMessage is the largest message buffer the engine keeps for
// the next message: a larger one is left to the garbage collector.
const maxPooledMessage = 64 << 10

// end runs once reading has ended with err: OnClose, then the close, if
// the connection has not closed yet, and the Handler's accounting.
func (s *engineSocket) end(err error) {
	s.ended = true
	c, h := s.c, s.h
	if f := h.Events.OnClose; f != nil {
		s.onClose(f, err)
	}
	c.closeHandshake(&LocalCloseError{Code: StatusNormalClosure})
	h.engineConns.Add(-1)
	h.closed(c, clockStart.Add(s.opened))
}

// fill reads what the socket has, after what is buffered, without
// waiting. It reports whether the read filled the room it had: more may
// be waiting. The end of the input is kept (inputErr).
func (s *engineSocket) fill() (full bool) {
	if s.inputErr() != nil {
		return false
	}
	cr := &s.c.br
	cr.makeRoom()
	room := (*cr.buf)[cr.w:]
	n, err := s.d.ReadNow(room)
	switch {
	case err == syscall.EAGAIN:
	case err == poll.ErrClosed:
		s.input = inputClosed
	case err != nil:
		s.slowParts().rerr = socketError("read", s, err)
		s.input = inputFailed
	case n == 0:
		s.input = inputEOF
	}
	cr.w += n
	if cr.w == cr.r {
		cr.release()
	}
	if n > 0 {
		s.c.heardFrame() // a frame trickling in is a peer alive
	}
	return n == len(room) || n > 0 && s.d.HungUp()
}

// makeRoom makes room after what is buffered for the engine's next read:
// a pooled 32 KiB buffer while what is buffered fits in half of one, else
// a heap buffer twice its size, which doubles when it fills up: a message
// arriving over many reads is copied a bounded number of times.
func (cr *connReader) makeRoom() {
	const minRoom = 4 << 10
	if cr.buf != nil && len(*cr.buf)-cr.w >= minRoom {
		return
	}
	pending := cr.Pending()
	var b *[]byte
	if len(pending) <= largeReadBuf/2 {
		b = readBufPool(largeReadBuf).Get().(*[]byte)
	} else {
		nb := make([]byte, 2*max(len(pending), len(*cr.buf)))
		b = &nb
	}
	copy(*b, pending)
	if cr.buf != nil {
		cr.release()
	}
	cr.buf, cr.r, cr.w = b, 0, len(pending)
}

// park keeps what is buffered (an unfinished frame) and gives the pooled
// read buffer back: an idle connection holds no buffer, and a partial one
// only the bytes that arrived, in a slice of their size, or in the heap
// buffer makeRoom grew for them while they fill half of it at least.
func (cr *connReader) park() {
	if cr.buf == nil {
		return
	}
	pending := cr.Pending()
	if size := len(*cr.buf); size != smallReadBuf && size != largeReadBuf && len(pending) >= size/2 {
		if cr.r > 0 {
			cr.w = copy(*cr.buf, pending)
			cr.r = 0
		}
		return
	}
	tail := make([]byte, len(pending))
	copy(tail, pending)
	cr.release()
	cr.buf, cr.w = &tail, len(tail)
}

// The socket as a net.Conn, whose reads and writes wait when they must
// (a close awaiting the peer's, a write to a full socket).

func (s *engineSocket) Read(p []byte) (int, error) {
	if err := s.inputErr(); err != nil {
		return 0, err
	}
	var n int
	var errno error
	err := s.d.Read(func(fd uintptr) bool {
		n, errno = syscall.Read(int(fd), p)
		return errno != syscall.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case errno != nil:
		return 0, socketError("read", s, errno)
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}

func (s *engineSocket) Write(p []byte) (int, error) {
	written := 0
	var errno error
	err := s.d.Write(func(fd uintptr) bool {
		for written < len(p) {
			n, err := syscall.Write(int(fd), p[written:])
			switch err {
			case nil:
				written += n
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = err
				return true
			}
		}
		return true
	})
	if err == nil && errno != nil {
		err = socketError("write", s, errno)
	}
	return written, err
}

// Close closes the socket. A connection whose write timed out is reset: a
// graceful close would wait behind the bytes its peer does not take, and
// a peer that writes without reading would stay blocked. (On a goroutine,
// the input left unread while the write waited resets it the same way;
// the engine goes on reading meanwhile.)
func (s *engineSocket) Close() error {
	if s.c != nil {
		kind, _, _ := causeOf(s.c.CloseCause())
		timedOut := kind == causeWriteTimeout // then nothing is waited for
		if timedOut && s.d.Acquire() {
			syscall.SetsockoptLinger(s.d.Fd(), syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1})
			s.d.Release()
		}
		s.flushWait(!timedOut)
	}
	return s.d.Close()
}

// LocalAddr asks the socket (an idle connection keeps one address, not
// two); once it is closed, the address is unspecified.
func (s *engineSocket) LocalAddr() net.Addr {
	var sa syscall.Sockaddr
	if s.d.Acquire() {
		sa, _ = syscall.Getsockname(s.d.Fd())
		s.d.Release()
	}
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
	case *syscall.SockaddrInet6:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port, Zone: zoneName(sa.ZoneId)}
	}
	return &net.TCPAddr{}
}

func zoneName(id uint32) string {
	if id == 0 {
		return ""
	}
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		return ifi.Name
	}
	return strconv.Itoa(int(id))
}

// RemoteAddr is the peer's address; a link-local IPv6 peer's zone is the
// local address's, the interface both are on (unspecified once closed).
func (s *engineSocket) RemoteAddr() net.Addr {
	ip := netip.AddrFrom16(s.raddr)
	if s.r4 {
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip.Unmap(), s.rport))
	}
	a := net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, s.rport))
	if ip.IsLinkLocalUnicast() {
		a.Zone = s.LocalAddr().(*net.TCPAddr).Zone
	}
	return a
}

func (s *engineSocket) SetDeadline(t time.Time) error {
	s.d.SetReadDeadline(t)
	s.d.SetWriteDeadline(t)
	return nil
}

func (s *engineSocket) SetReadDeadline(t time.Time) error {
	s.d.SetReadDeadline(t)
	return nil
}

func (s *engineSocket) SetWriteDeadline(t time.Time) error {
	s.d.SetWriteDeadline(t)
	return nil
}

// CloseWrite shuts the sending side (lingerClose), once what is queued
// is sent.
func (s *engineSocket) CloseWrite() error {
	if s.c != nil {
		s.flushWait(true)
	}
	return s.d.CloseWrite()
}

// SyscallConn gives the Conn's raw I/O (rawio_linux.go) the descriptor,
// whose reads and writes wait for the poller's events.
func (s *engineSocket) SyscallConn() (syscall.RawConn, error) { return (*engineRaw)(s), nil }

type engineRaw engineSocket

func (r *engineRaw) Control(f func(fd uintptr)) error {
	if !r.d.Acquire() {
		return net.ErrClosed
	}
	defer r.d.Release()
	f(uintptr(r.d.Fd()))
	return nil
}

// Read is the raw read of the Conn's own reads, which the engine makes
// only when its codec needs no more than is buffered (run), or when a
// close awaits the peer's: then it waits. The end of the input, once the
// engine met it, is reported again.
func (r *engineRaw) Read(f func(fd uintptr) bool) error {
	if err := (*engineSocket)(r).inputErr(); err != nil {
		return err
	}
	return r.d.Read(f)
}

func (r *engineRaw) Write(f func(fd uintptr) bool) error { return r.d.Write(f) }

// afterFunc runs keepalive's timer on the connection's poller.
func (s *engineSocket) afterFunc(d time.Duration, f func()) keepaliveTimer {
	return s.d.AfterFunc(d, f)
}
