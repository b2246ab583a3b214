package websocket

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// MessageType is the type of a data message.
type MessageType int

const (
	TextMessage   MessageType = 1
	BinaryMessage MessageType = 2
)

func (t MessageType) String() string {
	switch t {
	case TextMessage:
		return "text"
	case BinaryMessage:
		return "binary"
	}
	return fmt.Sprintf("MessageType(%d)", int(t))
}

// codec is what a dialect's framing provides to Conn. Reading methods are
// called with Conn.rmu held, writing methods with Conn.wmu held.
type codec interface {
	// next reads up to the start of the next data message and returns its
	// type, or errControl once it has read a control frame (hixie-76's
	// close included), for Conn to answer.
	next() (MessageType, error)
	// answer acts on the control frame next stopped at: a pong, the pong
	// handler, the close handshake.
	answer() error
	// read reads from the current message; io.EOF at its end.
	read(p []byte) (int, error)
	// inMessage reports whether a message has been started and not read to its end.
	inMessage() bool
	// sizeHint guesses how much of the current message remains.
	sizeHint() int
	// The framing of what Conn writes (called with wmu held): what goes
	// before and after the payload to make one frame.
	//
	// dataFrame frames p as part of a message of type typ: first and fin
	// say whether p starts and ends it, compressed whether it is deflated.
	dataFrame(typ MessageType, p []byte, first, fin, compressed bool) (pre, post []byte, err error)
	// controlFrame frames an RFC 6455 ping or pong.
	controlFrame(op opcode, payload []byte) (pre []byte, err error)
	// closeFrame is the dialect's close, as a header and a payload (both
	// empty for hixie-75, which has none).
	closeFrame(code StatusCode, reason string) (pre, payload []byte)
}

// readyScan is how far a codec's ready (which the event engine calls to
// know whether what is buffered holds the next message or control frame
// whole, or enough to refuse it) has checked what is buffered, so that a
// message arriving over many reads is checked once, not again from its
// start at every read. Offsets count from the start of what is buffered:
// the engine zeroes it whenever the codec consumes.
type readyScan struct {
	pos, end int   // the next byte to check; the end of the frame at pos (inFrame), or where hixie's text began
	raw      int64 // the hybi message's payload so far
	mask     [4]byte
	maskPos  uint8
	utf8     utf8Validator

	inFrame, inMessage, compressed, text, check, last bool

	control int // > 0: where a ping or pong between the fragments of a message still arriving begins (hybi)
}

// Conn is one WebSocket connection, whatever its dialect, on either end:
// a Handler's (given to Serve) or a client's (from Dial). The ends differ
// only where the protocol makes them: a client masks its frames.
//
// One goroutine may read at a time (ReadMessage, NextReader and the reader it
// returns). Any number of goroutines may write at once: each message goes out
// whole, in the order the writers got to it.
type Conn struct {
	br           connReader                   // the net.Conn (conn), read through a pooled buffer; raw, if set, writes too
	hixie        *hixieCodec                  // the hixie dialects' codec; nil: the hybi dialects', hybi
	hybi         hybiCodec                    // in the Conn's allocation
	deflater     *deflater                    // nil without permessage-deflate (msgMu)
	req          atomic.Pointer[http.Request] // nil once released
	closeTimeout time.Duration
	writeTimeout time.Duration         // <= 0: none
	keepalive    *keepalive            // nil when not configured
	cause        atomic.Pointer[error] // why it closed: the first cause recorded (setCause)

	rmu       sync.Mutex // held while reading from br
	readLimit atomic.Int64
	readErr   error // sticky: once reading failed, it stays failed

	msgMu    sync.Mutex   // held for one whole data message
	wmu      sync.Mutex   // held for one frame
	writeErr error        // wmu; sticky
	deadline atomic.Int64 // the user's write deadline, Unix ns; 0: none
	armed    atomic.Int64 // the socket's write deadline as last armed, Unix ns; 0: unknown

	closed    atomic.Bool // closeNow has begun
	dialect   Dialect
	client    bool   // the side that dialed, which masks its frames
	closeSent bool   // wmu
	readEnded bool   // hooksMu
	readGen   uint32 // counts messages, so a stale reader can be refused (rmu)
	hooksMu   sync.Mutex
	hooks     *connHooks // made when first needed (hooksMu)

	prev, next *Conn // in the Handler's list of open connections (Handler.mu)
}

// connHooks is what only some connections need: a subprotocol, a
// context, a closer that waits for the reader, functions to run once
// closed, a pong handler.
type connHooks struct {
	subprotocol string          // agreed in the handshake
	onPong      func([]byte)    // SetPongHandler's
	ctx         context.Context // made by Context
	cancel      context.CancelCauseFunc
	readDone    chan struct{} // closed when reading ends, for a closer that waits
	onClose     []func()      // run once closed
}

// hooksLocked returns c's hooks, made if need be (hooksMu held).
func (c *Conn) hooksLocked() *connHooks {
	if c.hooks == nil {
		c.hooks = new(connHooks)
	}
	return c.hooks
}

// newConn makes the Conn of a hijacked connection; owned says that no one
// else holds req (Serve read it), which the Conn then keeps as it is.
func newConn(netConn net.Conn, brw *bufio.ReadWriter, hs *handshake, req *http.Request, owned bool, h *Handler) *Conn {
	// What the client sent after the handshake may sit in net/http's reader.
	buffered, _ := brw.Reader.Peek(brw.Reader.Buffered())
	c := openConn(netConn, buffered, hs, h.connConfig(), false)
	if owned {
		c.req.Store(stripRequest(req))
	} else {
		c.req.Store(keptRequest(req))
	}
	return c
}

// connConfig is what a Conn takes from its Handler or DialOptions, whose
// fields of the same names it holds, before defaults.
type connConfig struct {
	readLimit                              int64
	closeTimeout, writeTimeout             time.Duration
	pingInterval, pongTimeout, idleTimeout time.Duration
	compression                            *CompressionOptions
}

// openConn makes the Conn of a completed handshake, either side's:
// buffered is what arrived after the handshake.
func openConn(netConn net.Conn, buffered []byte, hs *handshake, cfg connConfig, client bool) *Conn {
	c := &Conn{
		client:       client,
		dialect:      hs.dialect,
		closeTimeout: orDefault(cfg.closeTimeout, DefaultCloseTimeout),
		writeTimeout: cfg.writeTimeout,
	}
	c.br.init(netConn, buffered)
	if hs.protocol != "" {
		c.hooksLocked().subprotocol = hs.protocol // not shared yet: no lock
	}
	if c.writeTimeout == 0 {
		c.writeTimeout = DefaultWriteTimeout
	}
	c.readLimit.Store(cfg.readLimit)
	if c.readLimit.Load() == 0 {
		c.readLimit.Store(DefaultReadLimit)
	}
	switch {
	case !hs.dialect.hybi():
		c.hixie = &hixieCodec{c: c}
	default:
		hc := &c.hybi
		if client {
			hc.keys = newMaskKeys()
		}
		if hs.deflate != nil {
			p := *hs.deflate
			if client {
				p = p.swapSides()
			}
			hc.inflater = newInflater(p, hc.readPayload)
			c.deflater = newDeflater(p, cfg.compression)
			c.deflater.answer = hs.extensions
		}
	}
	c.useRawSocket()
	startKeepalive(c, cfg)
	return c
}

// codec is the codec of c's dialect.
func (c *Conn) codec() codec {
	if c.hixie != nil {
		return c.hixie
	}
	return &c.hybi
}

// Dialect is the protocol version spoken, chosen by the client.
func (c *Conn) Dialect() Dialect { return c.dialect }

// Subprotocol is the subprotocol agreed in the handshake, or "".
func (c *Conn) Subprotocol() string {
	c.hooksMu.Lock()
	defer c.hooksMu.Unlock()
	if c.hooks == nil {
		return ""
	}
	return c.hooks.subprotocol
}

// Extensions is the Sec-WebSocket-Extensions answer of the handshake: the
// permessage-deflate parameters in force, or "".
func (c *Conn) Extensions() string {
	if c.deflater == nil {
		return c.transportExtensions()
	}
	return c.deflater.answer
}

// Request is the client's handshake request: its method, URL, headers,
// remote address, TLS state, path values and context values. It lacks the
// headers of the handshake itself (Connection, Upgrade, and
// Sec-WebSocket-Key, -Key1, -Key2, -Version and -Extensions), which were
// answered, and its body, which was empty.
//
// Serve runs after ServeHTTP has returned, so a context value that a
// router or middleware recycles once its handler returns is stale by
// then: read route parameters with PathValue (which chi sets too), not
// chi.URLParam, whose route context chi reuses for other requests.
//
// Request is nil once ReleaseRequest has been called, and on the client's
// side (Dial), which has the request it sent.
func (c *Conn) Request() *http.Request { return c.req.Load() }

// ReleaseRequest lets go of the handshake request, which a connection
// otherwise keeps for as long as it lives: about 1.9 KB of memory (the
// request, its headers, URL and context, and what they hold of
// net/http's). Call it from Serve once you have what you need from
// Request, or at once if you need nothing: a server holding many idle
// connections then uses that much less per connection. Afterwards Request
// returns nil, and Context, if first called then, carries no values of
// the request's context.
func (c *Conn) ReleaseRequest() { c.req.Store(nil) }

// stripRequest makes r, which no one else holds, what a connection keeps
// (keptRequest) without a copy: it lets go of r's body and handshake
// headers.
func stripRequest(r *http.Request) *http.Request {
	r.Body, r.GetBody = http.NoBody, nil
	for k := range handshakeHeaders {
		delete(r.Header, k)
	}
	return r
}

// keptRequest is what a connection keeps of its handshake request, for as
// long as it lives (see Conn.Request): a copy without the handshake's
// headers, so that a client that sends little else leaves no header map
// behind.
func keptRequest(r *http.Request) *http.Request {
	kept := new(http.Request)
	*kept = *r
	kept.Body, kept.GetBody = http.NoBody, nil
	kept.Header = nil
	for k, v := range r.Header {
		if !handshakeHeaders[k] {
			if kept.Header == nil {
				kept.Header = make(http.Header, len(r.Header))
			}
			kept.Header[k] = v
		}
	}
	if kept.Header == nil {
		kept.Header = http.Header{}
	}
	return kept
}

var handshakeHeaders = map[string]bool{
	"Connection":               true,
	"Upgrade":                  true,
	"Sec-Websocket-Key":        true,
	"Sec-Websocket-Key1":       true,
	"Sec-Websocket-Key2":       true,
	"Sec-Websocket-Version":    true,
	"Sec-Websocket-Extensions": true,
	headerPseudoProtocol:       true,
}

// RemoteAddr is the peer's network address: the client's on the server,
// the server's (or the proxy's) on the client.
func (c *Conn) RemoteAddr() net.Addr { return c.br.conn.RemoteAddr() }

// LocalAddr is this end's network address.
func (c *Conn) LocalAddr() net.Addr { return c.br.conn.LocalAddr() }

// Context is done once the connection has closed: goroutines that serve it
// (a ticker, a subscription) can stop on it, and context.Cause tells them
// CloseCause. It carries the values of the request's context, not its
// cancellation: net/http cancels that one once the handshake is done.
func (c *Conn) Context() context.Context {
	c.hooksMu.Lock()
	defer c.hooksMu.Unlock()
	hk := c.hooksLocked()
	if hk.ctx == nil { // made on first use: most connections never need one
		parent := context.Background()
		if r := c.req.Load(); r != nil {
			parent = context.WithoutCancel(r.Context())
		}
		hk.ctx, hk.cancel = context.WithCancelCause(parent)
		if c.closed.Load() {
			hk.cancel(c.CloseCause())
		}
	}
	return hk.ctx
}

// SetReadLimit sets the largest message, in bytes, that the peer may send;
// a larger one fails the connection (close 1009). A negative limit means none.
func (c *Conn) SetReadLimit(n int64) { c.readLimit.Store(n) }

func (c *Conn) overLimit(n int64) bool {
	limit := c.readLimit.Load()
	return limit >= 0 && n > limit
}

// SetDeadline sets the read and write deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.br.conn.SetReadDeadline(t)
}

// SetReadDeadline sets the deadline for reads; a read that times out leaves
// the connection unusable for reading, as its framing state is lost.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.br.conn.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline for writes; the WriteTimeout (of
// the Handler or DialOptions) still bounds each write when it comes sooner. A write that
// times out closes the connection (ErrWriteTimeout), whose framing it cut.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	return c.setNetWriteDeadline(t)
}

// setNetWriteDeadline sets the socket's write deadline, which the next
// write then re-arms.
func (c *Conn) setNetWriteDeadline(t time.Time) error {
	err := c.br.conn.SetWriteDeadline(t)
	c.armed.Store(0)
	return err
}

// armWriteDeadline bounds the write about to start (wmu held) by the write
// timeout, or the user's deadline if that comes first. Setting a deadline
// updates a runtime timer, so the one armed is kept while it leaves at
// least 15/16 of the timeout: a busy connection re-arms it a few times per
// timeout instead of at every frame.
func (c *Conn) armWriteDeadline() {
	if c.writeTimeout <= 0 {
		return // the user's deadline, if any, is already set
	}
	d := time.Now().Add(c.writeTimeout).UnixNano()
	if u := c.deadline.Load(); u != 0 && u < d {
		d = u
	}
	if a := c.armed.Load(); a != 0 && a <= d && d-a < int64(c.writeTimeout/16) {
		return
	}
	c.br.conn.SetWriteDeadline(time.Unix(0, d))
	c.armed.Store(d)
}

// restoreWriteDeadline puts the user's write deadline back on the socket
// after a write that armed the write timeout (wmu held).
func (c *Conn) restoreWriteDeadline() {
	var t time.Time
	if u := c.deadline.Load(); u != 0 {
		t = time.Unix(0, u)
	}
	c.setNetWriteDeadline(t)
}

// SetPongHandler sets a function called with the payload of each pong the
// peer sends (RFC 6455 dialects), on the reading goroutine. The payload is
// only valid during the call.
func (c *Conn) SetPongHandler(f func(payload []byte)) {
	c.hooksMu.Lock()
	defer c.hooksMu.Unlock()
	if f != nil || c.hooks != nil {
		c.hooksLocked().onPong = f
	}
}

// pong calls the function SetPongHandler set, if any, with payload.
func (c *Conn) pong(payload []byte) {
	c.hooksMu.Lock()
	var f func([]byte)
	if c.hooks != nil {
		f = c.hooks.onPong
	}
	c.hooksMu.Unlock()
	if f != nil {
		f(payload)
	}
}

// ReadMessage reads the next whole data message into a new slice. A large
// message costs little more than its size while it arrives: see
// AppendMessage.
func (c *Conn) ReadMessage() (MessageType, []byte, error) {
	return c.AppendMessage(nil)
}

// AppendMessage reads the next whole data message, appends it to dst and
// returns the extended slice. Reading into a reused buffer
// (typ, buf, err = c.AppendMessage(buf[:0])) allocates nothing per message.
//
// A message is read straight into dst's spare capacity. Past that, dst
// grows as append grows it until the message reaches 1 MiB; the rest of a
// larger message is gathered in 1 MiB chunks, then copied into one
// allocation of the size needed, each chunk given back as soon as it is
// copied. On unix systems the chunks are mapped memory outside the Go
// heap, which leaves no garbage: while a large message arrives, reading it
// costs its size plus a few MiB (a 64 MiB message raises the peak RSS by 68
// to 70 MiB), where a doubling buffer and its garbage cost up to three
// times its size. Elsewhere (Windows, js/wasm, Plan 9) the chunks are heap
// memory that the garbage collector reclaims in its own time: the peak is
// about twice the message's size. Where the memory for a chunk cannot be
// mapped, the connection fails with close 1009.
func (c *Conn) AppendMessage(dst []byte) (MessageType, []byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	typ, err := c.nextLocked()
	if err != nil {
		return 0, dst, err
	}
	return c.appendRest(typ, dst)
}

// largeMessage is the size of a message from which appendRest stops
// growing dst and gathers the rest in chunks (appendLarge).
const largeMessage = 1 << 20

// appendRest appends the message that nextLocked started to dst (rmu held).
// A function of its own, so that its frame is not on the stack while
// nextLocked waits or answers control frames.
func (c *Conn) appendRest(typ MessageType, dst []byte) (MessageType, []byte, error) {
	start := len(dst)
	for {
		if len(dst) == cap(dst) {
			if len(dst)-start >= largeMessage {
				return c.appendLarge(typ, dst)
			}
			// Usually the hint is the exact size of the message.
			hint := c.codec().sizeHint()
			if hint <= 0 {
				hint = 512
			}
			dst = slices.Grow(dst, hint)
		}
		n, err := c.codec().read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		switch {
		case err == io.EOF:
			return typ, dst, nil
		case err != nil:
			return 0, dst, c.setReadErr(err)
		}
	}
}

// appendLarge reads the rest of a large message into chunks, then appends
// it to dst, which is full (rmu held). The chunks are freed on every path,
// an error's or a panicking pong handler's too.
func (c *Conn) appendLarge(typ MessageType, dst []byte) (MessageType, []byte, error) {
	var rest chunks
	defer rest.free()
	for {
		p, err := rest.space()
		if err != nil {
			return 0, dst, c.setReadErr(c.fail(StatusMessageTooBig, "no memory for the message"))
		}
		n, err := c.codec().read(p)
		rest.size += n
		switch {
		case err == io.EOF:
			return typ, rest.appendTo(dst), nil
		case err != nil:
			return 0, dst, c.setReadErr(err)
		}
	}
}

// NextReader waits for the next data message and returns its type and a
// reader of its payload, which is valid until NextReader is called again.
// What remains unread of the previous message is discarded.
func (c *Conn) NextReader() (MessageType, io.Reader, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	typ, err := c.nextLocked()
	if err != nil {
		return 0, nil, err
	}
	return typ, &messageReader{c: c, gen: c.readGen}, nil
}

// nextLocked discards what is left of the current message and reads up to
// the start of the next one (rmu held).
func (c *Conn) nextLocked() (MessageType, error) {
	if c.readErr != nil {
		return 0, c.readErr
	}
	for {
		if !c.codec().inMessage() {
			// The next message needs bytes: wait for them here, where the
			// stack is shallow, so that an idle connection's goroutine
			// keeps the smallest stack.
			if err := c.br.waitIdle(); err != nil {
				return 0, c.setReadErr(err)
			}
		}
		if c.codec().inMessage() {
			if err := c.discardMessage(); err != nil {
				return 0, err
			}
		}
		typ, err := c.codec().next()
		if err == errControl {
			err = c.codec().answer()
			if err == nil {
				continue
			}
		}
		if err != nil {
			return 0, c.setReadErr(err)
		}
		c.readGen++
		return typ, nil
	}
}

// discardMessage reads what is left of the current message (rmu held): a
// function of its own, so that io.Copy's frame is not on nextLocked's
// stack while it waits.
func (c *Conn) discardMessage() error {
	if _, err := io.Copy(io.Discard, readerFunc(c.codec().read)); err != nil {
		return c.setReadErr(err)
	}
	return nil
}

// errControl is what codec.next returns once it has read a control frame.
// Conn answers it (codec.answer) back at the top of its read, where the
// stack is shallow: a pong or a close written deeper would grow the
// goroutine's stack, which an idle connection would keep at twice the
// size ever after.
var errControl = errors.New("websocket: control frame to answer")

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type messageReader struct {
	c   *Conn
	gen uint32
}

var errStaleReader = errors.New("websocket: read from a message reader after the next message was started")

func (r *messageReader) Read(p []byte) (int, error) {
	c := r.c
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.readGen != r.gen {
		return 0, errStaleReader
	}
	if c.readErr != nil {
		return 0, c.readErr
	}
	n, err := c.codec().read(p)
	if err != nil && err != io.EOF {
		err = c.setReadErr(err)
	}
	return n, err
}

// setReadErr records why reading ended (rmu held) and returns the error to
// report: for a connection the server closed, closedErr.
func (c *Conn) setReadErr(err error) error {
	switch {
	case c.closed.Load() && errors.Is(err, net.ErrClosed):
		err = c.closedErr()
	case closedProperly(err), errors.Is(err, os.ErrDeadlineExceeded):
		// A close or a failure, which recorded its cause; or a read
		// deadline, which leaves the connection open.
	default:
		// The peer vanished or the network failed: nothing more can come.
		c.drop(&causeError{ErrDropped, err})
	}
	c.readErr = err
	c.hooksMu.Lock()
	c.readEnded = true
	if c.hooks != nil && c.hooks.readDone != nil {
		close(c.hooks.readDone)
	}
	c.hooksMu.Unlock()
	return err
}

// closedProperly reports whether err, or an error it wraps, is a close
// handshake's end or a protocol failure, which closed what they had to. It
// unwraps by hand: errors.As reflects, whose deep frames would grow the
// stack of a goroutine ending its connection.
func closedProperly(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		switch err.(type) {
		case *CloseError, *ProtocolError:
			return true
		}
	}
	return false
}

// fail fails the connection for a protocol violation: it sends the close
// code (where the dialect has one), closes TCP and returns the error to report.
func (c *Conn) fail(code StatusCode, reason string) error {
	c.setNetWriteDeadline(time.Now().Add(c.closeTimeout))
	if len(reason) > maxControlPayload-2 {
		reason = ""
	}
	pe := &ProtocolError{Code: code, Reason: reason}
	c.setCause(pe)
	c.writeClose(code, reason)
	c.lingerClose()
	return pe
}

// Bounds of lingerClose.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// lingerClose closes after the peer has had a chance to read our close
// (rmu held): closing a socket with unread input makes the kernel send a
// reset, which can destroy the close frame before the peer reads it. So it
// ends our side, then discards the peer's input for a bounded time and
// amount, as net/http does.
func (c *Conn) lingerClose() {
	if cw, ok := c.br.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.drain()
	}
	c.closeNow()
}

// drain discards what the peer sends until it closes TCP, for a bounded
// time and amount (rmu held).
func (c *Conn) drain() {
	c.br.conn.SetReadDeadline(time.Now().Add(min(lingerTime, c.closeTimeout)))
	c.br.Discard(lingerBytes)
}

// WriteMessage writes a whole message as one frame.
func (c *Conn) WriteMessage(typ MessageType, p []byte) error {
	if err := c.checkType(typ); err != nil {
		return err
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	return c.writeWhole(typ, p)
}

// WriteText writes s as a text message.
func (c *Conn) WriteText(s string) error {
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	// The string's bytes are only read, never kept, so no copy is needed.
	return c.writeWhole(TextMessage, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// writeWhole writes a message as one frame, compressed if worth it (msgMu held).
func (c *Conn) writeWhole(typ MessageType, p []byte) error {
	if c.deflater != nil && c.deflater.worthIt(len(p)) {
		return c.writeDeflated(typ, p, true, true)
	}
	return c.writeData(typ, p, true, true, false)
}

// writeDeflated writes p deflated as one frame of a message (msgMu held).
// Each deflated part ends with the 4-byte sync tail, which is cut from the
// end of the part and put back in front of the next one, so that the
// message ends without it (RFC 7692 section 7.2.1).
func (c *Conn) writeDeflated(typ MessageType, p []byte, first, fin bool) error {
	buf := deflateBufs.Get().(*bytes.Buffer)
	defer putDeflateBuf(buf)
	buf.Reset()
	if !first {
		buf.Write(syncTail)
	}
	if err := c.deflater.compress(buf, p); err != nil {
		return err
	}
	out, err := withoutSyncTail(buf.Bytes())
	if err != nil {
		return err
	}
	if first && fin && !c.deflater.shrunk(len(out), len(p)) {
		// Deflating did not help (random or compressed data): the message
		// goes as it is.
		return c.writeData(typ, p, true, true, false)
	}
	c.deflater.sent(p)
	return c.writeData(typ, out, first, fin, true)
}

var deflateBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putDeflateBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 { // do not let one large message pin its buffer
		deflateBufs.Put(b)
	}
}

func (c *Conn) checkType(typ MessageType) error {
	switch {
	case typ == BinaryMessage && !c.dialect.hybi():
		return fmt.Errorf("websocket: %s cannot carry binary messages: %w", c.dialect, errors.ErrUnsupported)
	case typ != TextMessage && typ != BinaryMessage:
		return fmt.Errorf("websocket: %v is not a data message type", typ)
	}
	return nil
}

// writeData writes p as one frame of a message.
func (c *Conn) writeData(typ MessageType, p []byte, first, fin, compressed bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	pre, post, err := c.codec().dataFrame(typ, p, first, fin, compressed)
	if err != nil {
		return err
	}
	return c.setWriteErr(c.send(pre, p, post))
}

// writeFrame writes frame, which is whole and framed already.
func (c *Conn) writeFrame(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	return c.setWriteErr(c.send(frame, nil, nil))
}

// writable reports why nothing more may be written, if so (wmu held).
func (c *Conn) writable() error {
	switch {
	case c.closeSent:
		return ErrClosed
	case c.writeErr != nil:
		return c.writeErr
	}
	return nil
}

// masks reports whether c masks its frames: a client's, of RFC 6455 framing.
func (c *Conn) masks() bool { return c.client && c.dialect.hybi() }

// sendMasked writes a client's frame of header pre and payload p, masked
// with the key that ends pre, into pooled buffers that it writes 64 KiB at
// a time (wmu held): the caller's bytes are left as they are.
func (c *Conn) sendMasked(pre, p []byte) error {
	key := [4]byte(pre[len(pre)-4:])
	buf := batchBufs.Get().(*[]byte)
	defer batchBufs.Put(buf)
	out, pos := append((*buf)[:0], pre...), 0
	for len(p) > 0 {
		n := min(len(p), cap(out)-len(out))
		pos = maskCopy(key, pos, out[len(out):len(out)+n], p[:n])
		if err := c.send(out[:len(out)+n], nil, nil); err != nil {
			return err
		}
		out, p = out[:0], p[n:]
	}
	return nil
}

// sendConn writes pre, p and post, one frame, through net.Conn (wmu held):
// a small frame as one write, through a pooled buffer unless it is whole
// already (a masked frame).
func (c *Conn) sendConn(pre, p, post []byte) error {
	c.armWriteDeadline()
	if len(p) == 0 && len(post) == 0 {
		_, err := c.br.conn.Write(pre)
		return err
	}
	if n := len(pre) + len(p) + len(post); n <= writeBufSize {
		buf := messageBufs.Get().(*[]byte)
		defer messageBufs.Put(buf)
		b := append(append(append((*buf)[:0], pre...), p...), post...)
		_, err := c.br.conn.Write(b)
		return err
	}
	for _, b := range [3][]byte{pre, p, post} {
		if len(b) > 0 {
			if _, err := c.br.conn.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// setWriteErr keeps the error of a failed send (wmu held) and returns it
// as the cause it is, ErrWriteTimeout or ErrDropped wrapping it: the
// stream is broken, so the connection closes, unless it has already.
func (c *Conn) setWriteErr(err error) error {
	if err == nil {
		return nil
	}
	if c.closed.Load() && errors.Is(err, net.ErrClosed) {
		err = c.closedErr()
	} else {
		err = c.failedWrite(err)
	}
	c.writeErr = err
	return err
}

// failedWrite closes the connection whose write failed with err, which it
// returns as the cause: ErrWriteTimeout for a timeout, else ErrDropped.
func (c *Conn) failedWrite(err error) error {
	cause := ErrDropped
	if errors.Is(err, os.ErrDeadlineExceeded) {
		cause = ErrWriteTimeout
	}
	err = &causeError{cause, err}
	c.setCause(err)
	go c.closeNow() // not with wmu held: closing runs the close hooks (a Group's)
	return err
}

// NextWriter returns a writer for one message of type typ; the message is
// complete when the writer is closed. Until then other writers wait, but
// control frames (pongs, a close) may still go out between its frames.
func (c *Conn) NextWriter(typ MessageType) (io.WriteCloser, error) {
	if err := c.checkType(typ); err != nil {
		return nil, err
	}
	c.msgMu.Lock()
	return &messageWriter{c: c, typ: typ, first: true, buf: messageBufs.Get().(*[]byte)}, nil
}

const writeBufSize = 4096

var messageBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBufSize); return &b }}

type messageWriter struct {
	c          *Conn
	typ        MessageType
	first      bool
	compressed bool    // decided with the first frame
	buf        *[]byte // nil once closed
}

func (w *messageWriter) Write(p []byte) (int, error) {
	if w.buf == nil {
		return 0, errWriterClosed
	}
	b := *w.buf
	if len(b)+len(p) <= cap(b) {
		*w.buf = append(b, p...)
		return len(p), nil
	}
	if err := w.flush(false); err != nil {
		return 0, err
	}
	if len(p) >= cap(b) {
		// Large writes go out as frames of their own, without a copy.
		if err := w.send(p, false); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	*w.buf = append((*w.buf)[:0], p...)
	return len(p), nil
}

func (w *messageWriter) flush(fin bool) error {
	b := *w.buf
	if len(b) == 0 && !fin {
		return nil
	}
	err := w.send(b, fin)
	*w.buf = b[:0]
	return err
}

// send writes p as the message's next frame.
func (w *messageWriter) send(p []byte, fin bool) error {
	if w.first {
		// A message known to be small goes uncompressed.
		w.compressed = w.c.deflater != nil && (!fin || w.c.deflater.worthIt(len(p)))
	}
	var err error
	if w.compressed {
		err = w.c.writeDeflated(w.typ, p, w.first, fin)
	} else { // not through writeDeflated, whose frame is large
		err = w.c.writeData(w.typ, p, w.first, fin, false)
	}
	w.first = false
	return err
}

var errWriterClosed = errors.New("websocket: write to a closed message writer")

// Close sends what is buffered as the message's final frame.
func (w *messageWriter) Close() error {
	if w.buf == nil {
		return errWriterClosed
	}
	err := w.flush(true)
	messageBufs.Put(w.buf)
	w.buf = nil
	w.c.msgMu.Unlock()
	return err
}

// Ping sends a ping with the given payload (at most 125 bytes). RFC 6455
// dialects only; the pong is offered to the pong handler.
func (c *Conn) Ping(payload []byte) error {
	if !c.dialect.hybi() {
		return fmt.Errorf("websocket: %s has no ping: %w", c.dialect, errors.ErrUnsupported)
	}
	if err := c.unsupportedHere("Ping"); err != nil {
		return err
	}
	if len(payload) > maxControlPayload {
		return fmt.Errorf("websocket: ping payload of %d bytes exceeds %d", len(payload), maxControlPayload)
	}
	return c.writeControl(opPing, payload)
}

func (c *Conn) writeControl(op opcode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	pre, err := c.codec().controlFrame(op, payload)
	if err != nil {
		return err
	}
	return c.setWriteErr(c.send(pre, payload, nil))
}

// writeClose sends the close once; later calls return ErrClosed.
func (c *Conn) writeClose(code StatusCode, reason string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrClosed
	}
	c.closeSent = true
	if c.writeErr != nil {
		return c.writeErr
	}
	pre, payload := c.codec().closeFrame(code, reason)
	if len(pre) == 0 {
		return nil
	}
	return c.setWriteErr(c.send(pre, payload, nil))
}

// answerClose answers the peer's close, ce, with its code (unless a close
// was sent already), then closes TCP (rmu held). The server closes first
// (RFC 6455, section 7.1.1): a client waits for it, for a bounded time, so
// that the TIME_WAIT state stays on the client's host.
func (c *Conn) answerClose(ce *CloseError) error {
	c.setCause(ce)
	code := ce.Code
	if code == StatusNoStatusRcvd {
		code = 0 // a close with no payload
	}
	c.writeClose(code, ce.Reason)
	if c.client {
		c.drain()
	}
	c.closeNow()
	return ce
}

// Close performs the closing handshake: it sends a close with code and
// reason, waits (up to the CloseTimeout of the Handler or DialOptions) for
// the peer's close, and closes the TCP connection. A reader blocked in ReadMessage gets the
// peer's answer as a *CloseError. Unless the connection was closing
// already, CloseCause is then a *LocalCloseError with code and reason.
//
// The hixie dialects carry no code or reason: Close closes them with their
// own handshake and reports an error wrapping errors.ErrUnsupported unless
// code is StatusNormalClosure and reason is empty.
func (c *Conn) Close(code StatusCode, reason string) error {
	if c.dialect.hybi() {
		if !code.sendable() {
			return fmt.Errorf("websocket: close code %d may not be sent", int(code))
		}
		if len(reason) > maxControlPayload-2 {
			return fmt.Errorf("websocket: close reason of %d bytes exceeds %d", len(reason), maxControlPayload-2)
		}
		if !utf8.ValidString(reason) {
			return errors.New("websocket: close reason is not valid UTF-8")
		}
		err := c.closeHandshake(&LocalCloseError{Code: code, Reason: reason})
		if err == nil && !browserSendable(code) && c.unsupportedHere("") != nil {
			err = unsupported(fmt.Sprintf("close code %d", int(code)))
		}
		return err
	}
	err := c.closeHandshake(&LocalCloseError{Code: code, Reason: reason})
	if err == nil && (code != StatusNormalClosure || reason != "") {
		err = fmt.Errorf("websocket: %s carries no close code or reason (the connection is closed): %w", c.dialect, errors.ErrUnsupported)
	}
	return err
}

// CloseNow closes the TCP connection at once, without a closing handshake;
// CloseCause is then a *LocalCloseError with code 1006, unless the
// connection was closing already.
func (c *Conn) CloseNow() error {
	c.setCause(&LocalCloseError{Code: StatusAbnormalClosure})
	return c.closeNow()
}

// closeHandshake closes for cause with the close code and reason causeOf
// gives it (see Close).
func (c *Conn) closeHandshake(cause error) error {
	c.setCause(cause)
	if c.closed.Load() {
		return nil
	}
	_, code, reason := causeOf(cause)
	err := c.writeClose(code, reason)
	if errors.Is(err, ErrClosed) {
		err = nil // a close was already sent: wait for the answer all the same
	}
	if c.dialect != Hixie75 && err == nil {
		c.awaitPeerClose()
	}
	if cerr := c.closeNow(); err == nil && cerr != ErrClosed {
		err = cerr // else the reader closed TCP after the peer's answer
	}
	return err
}

// awaitPeerClose waits until the peer's close (or any end of reading)
// arrives, up to closeTimeout. With no goroutine reading, it reads itself,
// discarding data.
func (c *Conn) awaitPeerClose() {
	deadline := time.Now().Add(c.closeTimeout)
	if c.rmu.TryLock() {
		defer c.rmu.Unlock()
		c.br.conn.SetReadDeadline(deadline)
		for {
			if _, err := c.nextLocked(); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					// This deadline, not the caller's: later reads say why
					// the connection closed, not that a read timed out.
					c.readErr = c.closedErr()
				}
				return
			}
		}
	}
	c.hooksMu.Lock()
	if c.readEnded {
		c.hooksMu.Unlock()
		return
	}
	done := awaited(&c.hooksLocked().readDone)
	c.hooksMu.Unlock()
	waitClosed(done, deadline)
}

// awaited returns *ch, made if need be: a channel to be closed once what
// its waiters await has happened (under the lock that guards *ch).
func awaited(ch *chan struct{}) chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// waitClosed waits until ch is closed or deadline passes.
func waitClosed(ch <-chan struct{}, deadline time.Time) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	}
}

func (c *Conn) closeNow() error {
	if !c.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	if c.keepalive != nil {
		go c.keepalive.stop() // stop may be called from the timer itself
	}
	err := c.br.conn.Close()
	var onClose []func()
	c.hooksMu.Lock()
	if hk := c.hooks; hk != nil {
		if hk.cancel != nil {
			hk.cancel(c.CloseCause())
		}
		onClose, hk.onClose = hk.onClose, nil
	}
	c.hooksMu.Unlock()
	for _, f := range onClose {
		f()
	}
	return err
}

// afterClose runs f once the connection has closed: at once if it has.
func (c *Conn) afterClose(f func()) {
	c.hooksMu.Lock()
	if !c.closed.Load() {
		hk := c.hooksLocked()
		hk.onClose = append(hk.onClose, f)
		c.hooksMu.Unlock()
		return
	}
	c.hooksMu.Unlock()
	f()
}

// CloseCause says why the connection closed: nil while it is open, then
// the first cause, recorded as the close begins (a close sent or
// received, the socket closed). It is named for what it answers, as
// context.Cause is: an Err would suggest the last error of any call.
//
//   - the peer's close: a *CloseError with its code and reason (hixie-76's
//     close: 1005, no reason);
//   - the peer gone without a close (EOF, a reset; hixie-75's only close):
//     ErrDropped, wrapped with the read's or write's error;
//   - a protocol violation: a *ProtocolError, code 1002 or 1007; a
//     message over the read limit: code 1009;
//   - a write that timed out: ErrWriteTimeout, wrapped with the timeout;
//   - ErrIdleTimeout, ErrPongTimeout, ErrSlowConsumer, ErrShutdown;
//   - the server's own close (Serve returned or panicked, Close, CloseNow):
//     a *LocalCloseError with the code.
//
// A close that the peer answers keeps the cause that began it: a Close
// answered by the peer's close is a *LocalCloseError.
func (c *Conn) CloseCause() error {
	if cause := c.cause.Load(); cause != nil {
		return *cause
	}
	return nil
}

// setCause records why the connection closes, unless a cause came first;
// it reports whether err is the cause.
func (c *Conn) setCause(err error) bool {
	return c.cause.Load() == nil && c.cause.CompareAndSwap(nil, &err)
}

// drop closes the connection at once, for cause.
func (c *Conn) drop(cause error) {
	c.setCause(cause)
	c.closeNow()
}

// closedErr is what a call that finds the connection closed under it
// reports: the cause when the server closed it for a reason of its own
// that the caller could not see coming (a timeout, a slow consumer,
// shutdown), else ErrClosed (a reader learns of the peer's close, its drop
// or its violation itself).
func (c *Conn) closedErr() error {
	cause := c.CloseCause()
	switch kind, _, _ := causeOf(cause); kind {
	case causeWriteTimeout, causeIdleTimeout, causePongTimeout, causeSlowConsumer, causeShutdown:
		return cause
	}
	return ErrClosed
}
