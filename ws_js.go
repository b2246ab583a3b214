package websocket

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall/js"
	"time"
	"unicode/utf8"
)

// In the browser (GOOS=js), Dial opens the browser's WebSocket, and the
// Conn speaks to it through browserConn, a net.Conn that carries frames:
// what the browser hands over (a message, the close event) is framed as a
// server would have framed it, and the client's frames written to it are
// taken apart into the browser's send and close. So the Conn is the one
// type with the one implementation, and this file is the browser's
// transport, as rawio and TLS are others.

// unsupportedHere refuses what the browser cannot do on a Conn from Dial.
func (c *Conn) unsupportedHere(what string) error {
	if _, ok := c.br.conn.(*browserConn); ok {
		return unsupported(what)
	}
	return nil
}

// transportExtensions is the browser's ws.extensions: it negotiates
// (and speaks) permessage-deflate itself.
func (c *Conn) transportExtensions() string {
	if bc, ok := c.br.conn.(*browserConn); ok {
		return bc.extensions
	}
	return ""
}

// browserOptions refuses the options the browser leaves no say over.
func browserOptions(o *DialOptions) error {
	switch {
	case o.Dialect != 0 && o.Dialect != RFC6455:
		return unsupported("the dialect " + o.Dialect.String())
	case len(o.Header) > 0:
		return unsupported("DialOptions.Header")
	case o.Host != "":
		return unsupported("DialOptions.Host")
	case o.Compression != nil:
		return unsupported("DialOptions.Compression (the browser negotiates permessage-deflate itself)")
	case o.TLSConfig != nil:
		return unsupported("DialOptions.TLSConfig")
	case o.Proxy != nil:
		return unsupported("DialOptions.Proxy")
	case o.NetDialContext != nil:
		return unsupported("DialOptions.NetDialContext")
	case o.Jar != nil:
		return unsupported("DialOptions.Jar (the browser sends its own cookies)")
	case o.PingInterval != 0 || o.PongTimeout != 0:
		return unsupported("DialOptions.PingInterval and PongTimeout (the browser sends no pings)")
	}
	return nil
}

// dial is Dial in the browser: new WebSocket(url, subprotocols), waited
// for until open, or error and close, or ctx's end.
func dial(ctx context.Context, rawURL string, opts *DialOptions) (c *Conn, resp *http.Response, err error) {
	if err := browserOptions(opts); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, orDefault(opts.HandshakeTimeout, DefaultHandshakeTimeout))
	defer cancel()
	u, err := dialURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	bc, err := newBrowserConn(u.String(), opts.Subprotocols)
	if err != nil {
		return nil, nil, err
	}
	select {
	case <-bc.opened:
	case <-bc.done:
		bc.Close()
		return nil, nil, fmt.Errorf("websocket: dial %s: the browser's WebSocket failed (%s)", u, bc.closeEvent())
	case <-ctx.Done():
		bc.Close()
		return nil, nil, fmt.Errorf("websocket: dial %s: %w", u, context.Cause(ctx))
	}
	bc.extensions = bc.ws.Get("extensions").String()
	hs := &handshake{dialect: RFC6455, protocol: bc.ws.Get("protocol").String()}
	c = openConn(bc, nil, hs, opts.connConfig(), true)
	bc.limit = &c.readLimit
	resp = &http.Response{
		Status:     "101 Switching Protocols",
		StatusCode: http.StatusSwitchingProtocols,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{},
		Body:   http.NoBody,
	}
	if hs.protocol != "" {
		resp.Header.Set("Sec-WebSocket-Protocol", hs.protocol)
	}
	if bc.extensions != "" {
		resp.Header.Set("Sec-WebSocket-Extensions", bc.extensions)
	}
	return c, resp, nil
}

// browserAddr is the URL dialed, as both ends' address.
type browserAddr string

func (browserAddr) Network() string  { return "websocket" }
func (a browserAddr) String() string { return string(a) }

// browserConn is the browser's WebSocket as a net.Conn of frames.
type browserConn struct {
	ws         js.Value
	url        string
	extensions string
	funcs      []js.Func
	opened     chan struct{} // closed on open
	done       chan struct{} // closed on the close event
	limit      interface{ Load() int64 }

	mu       sync.Mutex
	queue    [][]byte      // framed messages not yet read (mu)
	rbuf     []byte        // the frame being read (mu)
	ready    chan struct{} // a signal: something to read, or the deadline moved
	ended    bool          // the close event came; after the queue, EOF (mu)
	code     int           // the close event's (mu)
	reason   string        // (mu)
	clean    bool          // (mu)
	local    bool          // Close was called (mu)
	deadline time.Time     // read deadline (mu)

	wbuf []byte // the client's frames, written but not yet taken apart (wmu)
	msg  []byte // the message gathered from its frames (wmu)
	op   byte   // its opcode (wmu)
}

func newBrowserConn(url string, protocols []string) (bc *browserConn, err error) {
	defer func() {
		if r := recover(); r != nil { // a SyntaxError thrown by the constructor
			err = fmt.Errorf("websocket: dial %s: %v", url, r)
		}
	}()
	protos := make([]any, len(protocols))
	for i, p := range protocols {
		protos[i] = p
	}
	ws := js.Global().Get("WebSocket").New(url, protos)
	ws.Set("binaryType", "arraybuffer")
	bc = &browserConn{ws: ws, url: url, opened: make(chan struct{}), done: make(chan struct{}), ready: make(chan struct{}, 1)}
	// The handlers run on the browser's event loop: none may block.
	bc.on("open", func(js.Value) { close(bc.opened) })
	bc.on("message", bc.onMessage)
	bc.on("close", func(ev js.Value) {
		bc.mu.Lock()
		bc.ended = true
		bc.code = ev.Get("code").Int()
		bc.reason = ev.Get("reason").String()
		bc.clean = ev.Get("wasClean").Bool()
		if bc.clean && bc.code != int(StatusAbnormalClosure) {
			bc.queue = append(bc.queue, closeFrame(bc.code, bc.reason))
		}
		bc.mu.Unlock()
		bc.signal()
		close(bc.done)
	})
	// An error is always followed by close, which says what it can.
	return bc, nil
}

func (bc *browserConn) on(event string, f func(js.Value)) {
	fn := js.FuncOf(func(_ js.Value, args []js.Value) any {
		f(args[0])
		return nil
	})
	bc.funcs = append(bc.funcs, fn)
	bc.ws.Set("on"+event, fn)
}

func (bc *browserConn) signal() {
	select {
	case bc.ready <- struct{}{}:
	default:
	}
}

// closeEvent describes the close event (done closed).
func (bc *browserConn) closeEvent() string {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return fmt.Sprintf("close event: code %d, reason %q", bc.code, bc.reason)
}

// onMessage frames a message as a server would: unmasked, one frame. One
// beyond the read limit is framed without its content, which the Conn
// fails (1009) on seeing the header, before reading any.
func (bc *browserConn) onMessage(ev js.Value) {
	data := ev.Get("data")
	var frame []byte
	if data.Type() == js.TypeString {
		s := data.String()
		frame = appendHeader(make([]byte, 0, 10+len(s)), 0x1, len(s))
		if !bc.over(len(s)) {
			frame = append(frame, s...)
		}
	} else {
		arr := js.Global().Get("Uint8Array").New(data)
		n := arr.Length()
		frame = appendHeader(make([]byte, 0, 10+n), 0x2, n)
		if !bc.over(n) {
			frame = frame[:len(frame)+n]
			js.CopyBytesToGo(frame[len(frame)-n:], arr)
		}
	}
	bc.mu.Lock()
	bc.queue = append(bc.queue, frame)
	bc.mu.Unlock()
	bc.signal()
}

func (bc *browserConn) over(n int) bool {
	if bc.limit == nil { // not yet: the Conn is being made
		return false
	}
	limit := bc.limit.Load()
	return limit >= 0 && int64(n) > limit
}

func appendHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// closeFrame is a server's close frame with the close event's code
// (1005: none) and reason.
func closeFrame(code int, reason string) []byte {
	if code == int(StatusNoStatusRcvd) {
		return []byte{0x88, 0}
	}
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	b := []byte{0x88, byte(2 + len(reason))}
	b = binary.BigEndian.AppendUint16(b, uint16(code))
	return append(b, reason...)
}

// Read returns the framed messages in turn, then EOF after the close event.
func (bc *browserConn) Read(p []byte) (int, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	for len(bc.rbuf) == 0 {
		if len(bc.queue) > 0 {
			bc.rbuf, bc.queue[0] = bc.queue[0], nil
			bc.queue = bc.queue[1:]
			break
		}
		if bc.local {
			return 0, net.ErrClosed
		}
		if bc.ended {
			return 0, io.EOF
		}
		var t *time.Timer
		var timeout <-chan time.Time
		if !bc.deadline.IsZero() {
			wait := time.Until(bc.deadline)
			if wait <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t = time.NewTimer(wait)
			timeout = t.C
		}
		bc.mu.Unlock()
		select {
		case <-bc.ready:
		case <-timeout:
		}
		if t != nil {
			t.Stop()
		}
		bc.mu.Lock()
	}
	n := copy(p, bc.rbuf)
	bc.rbuf = bc.rbuf[n:]
	if len(bc.rbuf) == 0 {
		bc.rbuf = nil
	}
	return n, nil
}

// Write takes the client's frames apart: each whole message goes to send,
// a close to close. The Conn holds its write lock around each Write.
func (bc *browserConn) Write(p []byte) (int, error) {
	bc.wbuf = append(bc.wbuf, p...)
	for {
		n, err := bc.takeFrame()
		if err != nil {
			return 0, err
		}
		if n == 0 {
			break
		}
		bc.wbuf = bc.wbuf[:copy(bc.wbuf, bc.wbuf[n:])]
	}
	if cap(bc.wbuf) > 64<<10 && len(bc.wbuf) == 0 {
		bc.wbuf = nil
	}
	return len(p), nil
}

// takeFrame handles the first frame of wbuf if it is whole: how many
// bytes it took (0: not whole yet).
func (bc *browserConn) takeFrame() (int, error) {
	b := bc.wbuf
	if len(b) < 2 {
		return 0, nil
	}
	fin, op, masked := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	n, hdr := int(b[1]&0x7f), 2
	switch n {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		n, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		n, hdr = int(binary.BigEndian.Uint64(b[2:])), 10
	}
	var key []byte
	if masked {
		if len(b) < hdr+4 {
			return 0, nil
		}
		key, hdr = b[hdr:hdr+4], hdr+4
	}
	if len(b) < hdr+n {
		return 0, nil
	}
	payload := b[hdr : hdr+n]
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	switch op {
	case 0x1, 0x2:
		bc.op, bc.msg = op, append(bc.msg[:0], payload...)
	case 0x0:
		bc.msg = append(bc.msg, payload...)
	case 0x8:
		return hdr + n, bc.closeWith(payload)
	default: // ping or pong: the browser sends its own (Ping is refused)
		return hdr + n, nil
	}
	if fin {
		if err := bc.send(bc.op, bc.msg); err != nil {
			return 0, err
		}
		if cap(bc.msg) > 64<<10 {
			bc.msg = nil
		}
	}
	return hdr + n, nil
}

const (
	wsOpen = 1
)

func (bc *browserConn) send(op byte, msg []byte) (err error) {
	if bc.ws.Get("readyState").Int() != wsOpen {
		return net.ErrClosed
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("websocket: the browser's send: %v", r)
		}
	}()
	if op == 0x1 {
		bc.ws.Call("send", string(msg))
		return nil
	}
	arr := js.Global().Get("Uint8Array").New(len(msg))
	js.CopyBytesToJS(arr, msg)
	bc.ws.Call("send", arr)
	return nil
}

// closeWith starts the browser's closing handshake with the close frame's
// payload: its code and reason when the browser takes them (1000,
// 3000–4999), else none (the server sees 1005).
func (bc *browserConn) closeWith(payload []byte) (err error) {
	if bc.ws.Get("readyState").Int() > wsOpen {
		return nil // closing already: the server's close is being answered
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("websocket: the browser's close: %v", r)
		}
	}()
	if len(payload) >= 2 {
		code := StatusCode(binary.BigEndian.Uint16(payload))
		if reason := payload[2:]; browserSendable(code) && utf8.Valid(reason) {
			bc.ws.Call("close", int(code), string(reason))
			return nil
		}
	}
	bc.ws.Call("close")
	return nil
}

// Close closes the WebSocket (without a code unless a close frame went
// already) and lets go of its handlers.
func (bc *browserConn) Close() error {
	bc.mu.Lock()
	if bc.local {
		bc.mu.Unlock()
		return net.ErrClosed
	}
	bc.local = true
	bc.mu.Unlock()
	bc.signal()
	if bc.ws.Get("readyState").Int() <= wsOpen {
		bc.ws.Call("close")
	}
	for _, event := range []string{"open", "message", "close"} {
		bc.ws.Set("on"+event, js.Null())
	}
	for _, f := range bc.funcs {
		f.Release()
	}
	return nil
}

func (bc *browserConn) LocalAddr() net.Addr  { return browserAddr(bc.url) }
func (bc *browserConn) RemoteAddr() net.Addr { return browserAddr(bc.url) }

func (bc *browserConn) SetDeadline(t time.Time) error {
	return bc.SetReadDeadline(t)
}

// SetReadDeadline bounds reads as a socket's does.
func (bc *browserConn) SetReadDeadline(t time.Time) error {
	bc.mu.Lock()
	bc.deadline = t
	bc.mu.Unlock()
	bc.signal()
	return nil
}

// SetWriteDeadline has nothing to bound: the browser's send never blocks.
func (bc *browserConn) SetWriteDeadline(time.Time) error { return nil }
