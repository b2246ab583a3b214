package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hybi/websocket"
)

// The scenarios below are written once and run with every client library
// through the client adapter, which each library implements with its own API
// (gorilla_test.go, coder_test.go).

const (
	textMsg   = websocket.TextMessage
	binaryMsg = websocket.BinaryMessage

	// largeLimit is the read limit of servers and clients in the tests
	// that move large messages.
	largeLimit = 64 << 20
)

// client is one connection of a client library, seen through what the
// scenarios need. Every call is bounded by its context.
type client interface {
	// write sends p as one message.
	write(ctx context.Context, typ websocket.MessageType, p []byte) error
	// writer opens a streaming writer for one message: the library frames
	// what is written to it in its own way.
	writer(ctx context.Context, typ websocket.MessageType) (io.WriteCloser, error)
	// read reads the next data message.
	read(ctx context.Context) (websocket.MessageType, []byte, error)
	// readInBackground keeps reading in a goroutine of its own (answering
	// pings, taking pongs and the peer's close) until the connection ends;
	// no data message is expected any more.
	readInBackground(ctx context.Context)
	// ping sends a ping and waits for its pong; something must be reading.
	ping(ctx context.Context) error
	// close performs the library's closing handshake with code and reason
	// (StatusNoStatusRcvd: a close frame with no payload). It returns nil
	// once the peer has answered with the same code, else what went wrong.
	close(ctx context.Context, code int, reason string) error
	// closeNow drops the connection.
	closeNow()
	subprotocol() string
}

// tcpCloseChecker is implemented by clients that can see the TCP stream
// under the WebSocket: after the peer's close frame, the server must close
// TCP (RFC 6455 section 7.1.1), so the next read finds EOF.
type tcpCloseChecker interface {
	expectEOF(ctx context.Context) error
}

// library is a client library under test.
type library struct {
	name string
	dial func(ctx context.Context, url string, o dialOptions) (client, *http.Response, error)
	// closeOf returns the code and reason of the close frame that err
	// reports the client received, if err is that.
	closeOf func(err error) (code int, reason string, ok bool)
}

type dialOptions struct {
	subprotocols []string
	header       http.Header
	// writeBufferSize bounds the frames of a streamed message (gorilla,
	// which fragments by buffer; coder sends a frame per Write).
	writeBufferSize int
	// netDial, if set, makes the TCP connection.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// compression offers permessage-deflate (RFC 7692), as browsers do.
	compression bool
	// onPing is the client's ping handler: it sees each ping from the
	// server, before the pong goes out.
	onPing func(payload string)
}

// ---------------------------------------------------------------------------
// The server under test.

type server struct {
	*httptest.Server
	h   *websocket.Handler
	url string // ws://127.0.0.1:port/
	// ends receives, from each Serve call, the error that ended it (nil when
	// it returned after a successful Close).
	ends chan error
}

// serveFunc is a Serve callback that reports how the connection ended.
type serveFunc func(c *websocket.Conn, report func(error))

// newServer serves h over httptest with serve as its callback. When the test
// ends it checks that every connection was closed by the scenario itself (no
// connection left to Shutdown), then shuts down and checks that no goroutine
// was left behind.
func newServer(t *testing.T, h *websocket.Handler, serve serveFunc) *server {
	t.Helper()
	checkLeaks(t)
	s := &server{h: h, ends: make(chan error, 1024)}
	report := func(err error) {
		select {
		case s.ends <- err:
		default: // nobody will look; a test that counts will notice
		}
	}
	h.Serve = func(c *websocket.Conn) { serve(c, report) }
	s.Server = httptest.NewServer(h)
	s.url = "ws" + strings.TrimPrefix(s.Server.URL, "http") + "/"
	t.Cleanup(func() {
		// Runs after the clients' cleanups: every connection should be gone.
		if !poll(5*time.Second, func() bool { return h.Stats().Active == 0 }) {
			t.Errorf("server still tracks %d connections after every client closed", h.Stats().Active)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		s.Server.Close()
	})
	return s
}

// end waits for the next Serve callback to report how its connection ended.
func (s *server) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.ends:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the server's Serve callback to end")
		return nil
	}
}

// echo echoes every message with its type, until reading fails.
func echo(c *websocket.Conn, report func(error)) {
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			report(err)
			return
		}
		if err := c.WriteMessage(typ, msg); err != nil {
			report(fmt.Errorf("server echo: %w", err))
			return
		}
	}
}

// closeWith closes every connection at once with code and reason.
func closeWith(code websocket.StatusCode, reason string) serveFunc {
	return func(c *websocket.Conn, report func(error)) { report(c.Close(code, reason)) }
}

// closeWhileReading closes with code and reason while another goroutine
// reads: Close must return nil and the reader must get the client's answer
// (a close with the same code) as a *CloseError.
func closeWhileReading(code websocket.StatusCode, reason string) serveFunc {
	return func(c *websocket.Conn, report func(error)) {
		readErr := make(chan error, 1)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					readErr <- err
					return
				}
			}
		}()
		if err := c.Close(code, reason); err != nil {
			report(err)
			return
		}
		select {
		case err := <-readErr:
			if websocket.CloseStatus(err) != code {
				report(fmt.Errorf("the reader got %v, want the client's answer %d", err, code))
				return
			}
			report(nil)
		case <-time.After(10 * time.Second):
			report(errors.New("the reader is still blocked after Close"))
		}
	}
}

// wantServerClose checks that the server's read ended with the client's close.
func wantServerClose(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) {
		t.Errorf("server's read ended with %v (%T), want a *websocket.CloseError{%d, %q}", err, err, code, reason)
		return
	}
	if websocket.CloseStatus(err) != websocket.StatusCode(code) || ce.Reason != reason {
		t.Errorf("server saw the client's close as %d %q, want %d %q", ce.Code, ce.Reason, code, reason)
	}
}

// wantServerFailed checks that the server failed the connection with code.
func wantServerFailed(t *testing.T, err error, code int) {
	t.Helper()
	var pe *websocket.ProtocolError
	if !errors.As(err, &pe) || pe.Code != websocket.StatusCode(code) {
		t.Errorf("server's read ended with %v (%T), want a *websocket.ProtocolError with code %d", err, err, code)
	}
}

// ---------------------------------------------------------------------------
// Clients.

// testContext bounds a test's client calls.
func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// dial connects a client and drops it when the test ends, whatever happened.
func dial(t *testing.T, ctx context.Context, lib library, url string, o dialOptions) client {
	t.Helper()
	cl, resp, err := lib.dial(ctx, url, o)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("%s dial: %v (%s)", lib.name, err, status)
	}
	t.Cleanup(cl.closeNow)
	return cl
}

// wantClientClose checks that a client's read ended with the server's close.
func wantClientClose(t *testing.T, lib library, err error, code int, reason string) {
	t.Helper()
	got, gotReason, ok := lib.closeOf(err)
	switch {
	case !ok:
		t.Errorf("%s read ended with %v (%T), want the server's close %d %q", lib.name, err, err, code, reason)
	case got != code || gotReason != reason:
		t.Errorf("%s received close %d %q, want %d %q", lib.name, got, gotReason, code, reason)
	}
}

// wantClientCloseCode checks that a client's read ended with the server's
// close with code, whatever its reason (which says why; it is logged).
func wantClientCloseCode(t *testing.T, lib library, err error, code int) {
	t.Helper()
	got, reason, ok := lib.closeOf(err)
	switch {
	case !ok:
		t.Errorf("%s read ended with %v (%T), want the server's close %d", lib.name, err, err, code)
	case got != code:
		t.Errorf("%s received close %d %q, want %d", lib.name, got, reason, code)
	default:
		t.Logf("%s received close %d %q", lib.name, got, reason)
	}
}

// closeCleanly closes cl with 1000 and checks the server saw that close.
func closeCleanly(t *testing.T, ctx context.Context, s *server, cl client) {
	t.Helper()
	if err := cl.close(ctx, 1000, ""); err != nil {
		t.Errorf("client close: %v", err)
	}
	wantServerClose(t, s.end(t), 1000, "")
}

// roundTrip sends p and checks the echo is the same message, byte for byte.
func roundTrip(ctx context.Context, cl client, typ websocket.MessageType, p []byte) error {
	if err := cl.write(ctx, typ, p); err != nil {
		return fmt.Errorf("write %s message of %d bytes: %w", typ, len(p), err)
	}
	return expectEcho(ctx, cl, typ, p)
}

func expectEcho(ctx context.Context, cl client, typ websocket.MessageType, p []byte) error {
	return checkEcho(typ, p)(cl.read(ctx))
}

// checkEcho returns a check that a read (its three results) brought back
// a message of type typ holding p.
func checkEcho(typ websocket.MessageType, p []byte) func(websocket.MessageType, []byte, error) error {
	return func(gotTyp websocket.MessageType, got []byte, err error) error {
		if err != nil {
			return fmt.Errorf("read echo of %s message of %d bytes: %w", typ, len(p), err)
		}
		if gotTyp != typ {
			return fmt.Errorf("echo of a %s message came back as %s", typ, gotTyp)
		}
		if d := diff(got, p); d != "" {
			return fmt.Errorf("echo of %s message: %s", typ, d)
		}
		return nil
	}
}

// diff describes how got differs from want, or returns "".
func diff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at byte %d", len(got), len(want), i)
}

// ---------------------------------------------------------------------------
// Payloads.

// textPattern mixes 1- to 4-byte UTF-8 sequences, so that frame and read
// boundaries fall inside characters.
const textPattern = "hello, wörld ✓ 🎉 Ωμέγα ǅ 日本語 \x00 "

// textPayload returns exactly n bytes of valid UTF-8.
func textPayload(n int) []byte {
	p := make([]byte, 0, n)
	for len(p)+len(textPattern) <= n {
		p = append(p, textPattern...)
	}
	for len(p) < n {
		p = append(p, 'x')
	}
	return p
}

// binaryPayload returns n pseudo-random bytes, every byte value included.
func binaryPayload(n int, seed uint64) []byte {
	p := make([]byte, n)
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	rand.NewChaCha8(s).Read(p)
	return p
}

func payload(typ websocket.MessageType, n int) []byte {
	if typ == textMsg {
		return textPayload(n)
	}
	return binaryPayload(n, uint64(n))
}

// ---------------------------------------------------------------------------
// Watching the wire.

// tap records the bytes a client's TCP connection carries both ways.
type tap struct {
	mu            sync.Mutex
	written, read bytes.Buffer
}

func (tp *tap) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: c, tap: tp}, nil
}

type tapConn struct {
	net.Conn
	tap *tap
	wmu sync.Mutex // one write at a time, so that the record keeps the wire's order
}

// Write records p before writing it: recorded after, it could miss the
// test's check, which a quick answer to p can let run first. A write that
// fails stays recorded whole.
func (c *tapConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.tap.mu.Lock()
	c.tap.written.Write(p)
	c.tap.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.tap.mu.Lock()
	c.tap.read.Write(p[:n])
	c.tap.mu.Unlock()
	return n, err
}

// wireFrame is a frame as it crossed the wire, unmasked.
type wireFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

// sent parses the frames the client sent after its handshake request: all
// must be masked.
func (tp *tap) sent() ([]wireFrame, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return parseFrames(tp.written.Bytes(), true)
}

// received parses the frames the client received after the handshake
// answer: none may be masked.
func (tp *tap) received() ([]wireFrame, error) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return parseFrames(tp.read.Bytes(), false)
}

// parseFrames parses the frames after the HTTP head in b, up to a frame
// still incomplete at the end.
func parseFrames(b []byte, masked bool) ([]wireFrame, error) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return nil, errors.New("no handshake on the wire")
	}
	b = b[i+4:]
	var frames []wireFrame
	for len(b) >= 2 {
		f := wireFrame{fin: b[0]&0x80 != 0, rsv: b[0] >> 4 & 7, op: b[0] & 0xF}
		if got := b[1]&0x80 != 0; got != masked {
			return frames, fmt.Errorf("frame %d: masked is %v, want %v", len(frames), got, masked)
		}
		n, h := uint64(b[1]&0x7F), 2
		switch n {
		case 126:
			if len(b) < 4 {
				return frames, nil
			}
			n, h = uint64(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			if len(b) < 10 {
				return frames, nil
			}
			n, h = binary.BigEndian.Uint64(b[2:]), 10
		}
		var key []byte
		if masked {
			if len(b) < h+4 {
				return frames, nil
			}
			key, h = b[h:h+4], h+4
		}
		if uint64(len(b)-h) < n {
			return frames, nil
		}
		f.payload = bytes.Clone(b[h : h+int(n)])
		for k := range key {
			for j := k; j < len(f.payload); j += 4 {
				f.payload[j] ^= key[k]
			}
		}
		frames = append(frames, f)
		b = b[h+int(n):]
	}
	return frames, nil
}

// checkFragmented checks that the first data message in frames is a
// fragmented message of type typ (more than one data frame, no reserved
// bits) whose fragments join into want. It returns the count of its data
// frames and of the control frames between them.
func checkFragmented(frames []wireFrame, typ websocket.MessageType, want []byte) (data, control int, err error) {
	var joined []byte
	fin := false
	for _, f := range frames {
		if f.op >= 0x8 {
			if data > 0 {
				control++ // a control frame between fragments
			}
			continue
		}
		wantOp := byte(0) // continuation
		if data == 0 {
			wantOp = byte(typ)
		}
		if f.op != wantOp || f.rsv != 0 {
			return data, control, fmt.Errorf("data frame %d: opcode %#x rsv %d, want opcode %#x rsv 0", data, f.op, f.rsv, wantOp)
		}
		data++
		joined = append(joined, f.payload...)
		if fin = f.fin; fin {
			break
		}
	}
	switch {
	case !fin:
		return data, control, fmt.Errorf("no final frame on the wire after %d data frames", data)
	case data < 2:
		return data, control, fmt.Errorf("the message went out in %d data frame(s), want it fragmented", data)
	}
	if d := diff(joined, want); d != "" {
		return data, control, fmt.Errorf("the fragments join into a different message: %s", d)
	}
	return data, control, nil
}

// ---------------------------------------------------------------------------
// Leaks.

// poll calls cond until it holds or d has passed.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// checkLeaks fails the test if, once it and its cleanups registered after
// this call have run, more goroutines run than before it.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if poll(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
			return
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutine leak: %d goroutines before the test, %d after:\n%s", before, runtime.NumGoroutine(), buf)
	})
}

// ---------------------------------------------------------------------------
// Scenarios.

// echoSizes straddle the boundaries of the frame length encodings (7 bits,
// 16 bits, 64 bits) and of buffers.
var echoSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20}

// testEcho sends text and binary messages of every size and checks the echo
// byte for byte, on one connection.
func testEcho(t *testing.T, lib library) {
	s := newServer(t, &websocket.Handler{ReadLimit: largeLimit}, echo)
	ctx := testContext(t, 2*time.Minute)
	cl := dial(t, ctx, lib, s.url, dialOptions{})
	for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
		for _, n := range echoSizes {
			t.Run(fmt.Sprintf("%s/%d", typ, n), func(t *testing.T) {
				if err := roundTrip(ctx, cl, typ, payload(typ, n)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	closeCleanly(t, ctx, s, cl)
}

// testFragmented streams messages through the library's writer in many
// Write calls, checks on the wire that they went out fragmented, and that
// the server put them back together (text split inside characters too).
func testFragmented(t *testing.T, lib library) {
	cases := []struct {
		size, chunk int
	}{
		{0, 1}, // one empty Write: coder sends it as a frame, gorilla does not
		{300, 1},
		{3000, 7},
		{1 << 20, 4093},
	}
	for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%d_bytes/writes_of_%d", typ, tc.size, tc.chunk), func(t *testing.T) {
				s := newServer(t, &websocket.Handler{ReadLimit: largeLimit}, echo)
				ctx := testContext(t, time.Minute)
				var tp tap
				cl := dial(t, ctx, lib, s.url, dialOptions{netDial: tp.dial, writeBufferSize: 16})
				p := payload(typ, tc.size)
				w, err := cl.writer(ctx, typ)
				if err != nil {
					t.Fatal(err)
				}
				// Write at least once, even with nothing to write.
				for rest, first := p, true; first || len(rest) > 0; first = false {
					n := min(tc.chunk, len(rest))
					if _, err := w.Write(rest[:n]); err != nil {
						t.Fatal(err)
					}
					rest = rest[n:]
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if err := expectEcho(ctx, cl, typ, p); err != nil {
					t.Fatal(err)
				}
				frames, err := tp.sent()
				if err != nil {
					t.Fatal(err)
				}
				n, _, err := checkFragmented(frames, typ, p)
				if err != nil && !(tc.size == 0 && n == 1) { // one empty frame is fine
					t.Fatal(err)
				}
				t.Logf("%s sent the message in %d frames", lib.name, n)
				closeCleanly(t, ctx, s, cl)
			})
		}
	}
}

// testPing: the client pings and gets the pong; the server pings, the
// client's ping handler sees it, and the server's pong handler sees the
// automatic answer.
func testPing(t *testing.T, lib library) {
	const serverPing = "server-ping ✓"
	pongs := make(chan string, 4)
	s := newServer(t, &websocket.Handler{}, func(c *websocket.Conn, report func(error)) {
		c.SetPongHandler(func(p []byte) {
			select {
			case pongs <- string(p):
			default:
			}
		})
		if err := c.Ping([]byte(serverPing)); err != nil {
			report(fmt.Errorf("server ping: %w", err))
			return
		}
		echo(c, report)
	})
	ctx := testContext(t, 30*time.Second)
	pings := make(chan string, 4)
	cl := dial(t, ctx, lib, s.url, dialOptions{onPing: func(p string) {
		select {
		case pings <- p:
		default:
		}
	}})
	cl.readInBackground(ctx)
	for i := range 3 {
		if err := cl.ping(ctx); err != nil {
			t.Fatalf("client ping %d: %v", i, err)
		}
	}
	for what, ch := range map[string]chan string{"client's ping handler": pings, "server's pong handler": pongs} {
		select {
		case p := <-ch:
			if p != serverPing {
				t.Errorf("%s got %q, want %q", what, p, serverPing)
			}
		case <-ctx.Done():
			t.Fatalf("%s never saw the server's ping: %v", what, ctx.Err())
		}
	}
	closeCleanly(t, ctx, s, cl)
}

// testClientClose: the client closes with a code and reason; the server's
// read returns them as a *CloseError, and the client's closing handshake
// completes (the server answers with the same code and closes TCP).
func testClientClose(t *testing.T, lib library) {
	cases := []struct {
		name   string
		code   int
		reason string
	}{
		{"4001", 4001, "bye ✓"},
		{"1000", 1000, ""},
		{"1001", 1001, "going away"},
		{"3000", 3000, "registered range"},
		{"4999_longest_reason", 4999, strings.Repeat("é", 61) + "!"}, // 123 bytes: a 125-byte payload
		{"no_status", 1005, ""},                                      // an empty close frame
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &websocket.Handler{}, echo)
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{})
			if err := roundTrip(ctx, cl, textMsg, []byte("before closing")); err != nil {
				t.Fatal(err)
			}
			if err := cl.close(ctx, tc.code, tc.reason); err != nil {
				t.Errorf("client close %d %q: %v", tc.code, tc.reason, err)
			}
			wantServerClose(t, s.end(t), tc.code, tc.reason)
		})
	}
}

// testServerClose: the server's Conn.Close sends a code and reason, which the
// client's read reports; the client answers and Close returns nil.
func testServerClose(t *testing.T, lib library) {
	cases := []struct {
		name   string
		code   int
		reason string
		reader bool // a goroutine of the server's is blocked in ReadMessage
	}{
		{"4002", 4002, "server says bye", false},
		{"1000", 1000, "", false},
		{"1001", 1001, "going away", false},
		{"1011", 1011, "internal error ✓", false},
		{"4999_longest_reason", 4999, strings.Repeat("✓", 41), false}, // 123 bytes
		{"4002_while_reading", 4002, "server says bye", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			serve := closeWith(websocket.StatusCode(tc.code), tc.reason)
			if tc.reader {
				serve = closeWhileReading(websocket.StatusCode(tc.code), tc.reason)
			}
			s := newServer(t, &websocket.Handler{}, serve)
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{})
			_, msg, err := cl.read(ctx)
			if err == nil {
				t.Fatalf("read a message (%q) instead of the close", msg)
			}
			wantClientClose(t, lib, err, tc.code, tc.reason)
			if err := s.end(t); err != nil {
				t.Errorf("server's Close(%d, %q): %v", tc.code, tc.reason, err)
			}
			if c, ok := cl.(tcpCloseChecker); ok {
				if err := c.expectEOF(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// testReadLimit: a message over the server's read limit fails the connection
// with 1009, which the client reads; a message at the limit goes through.
func testReadLimit(t *testing.T, lib library) {
	cases := []struct {
		name       string
		limit      int64
		size       int
		fragmented bool
	}{
		{"at_the_limit", 1024, 1024, false},
		{"one_byte_over", 1024, 1025, false},
		{"fragments_over", 1024, 4000, true},
		{"8MiB_over_1MiB", 1 << 20, 8 << 20, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &websocket.Handler{ReadLimit: tc.limit}, echo)
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{writeBufferSize: 100})
			p := binaryPayload(tc.size, 1)
			var werr error
			if tc.fragmented {
				var w io.WriteCloser
				if w, werr = cl.writer(ctx, binaryMsg); werr == nil {
					for rest := p; len(rest) > 0 && werr == nil; rest = rest[min(100, len(rest)):] {
						_, werr = w.Write(rest[:min(100, len(rest))])
					}
					if werr == nil {
						werr = w.Close()
					}
				}
			} else {
				werr = cl.write(ctx, binaryMsg, p)
			}
			if int64(tc.size) <= tc.limit {
				if werr != nil {
					t.Fatal(werr)
				}
				if err := expectEcho(ctx, cl, binaryMsg, p); err != nil {
					t.Fatal(err)
				}
				closeCleanly(t, ctx, s, cl)
				return
			}
			if werr != nil {
				// The server may close while the message is still going out.
				t.Logf("%s write of %d bytes: %v", lib.name, tc.size, werr)
			}
			_, _, err := cl.read(ctx)
			wantClientCloseCode(t, lib, err, 1009)
			wantServerFailed(t, s.end(t), 1009)
		})
	}
}

// testInvalidUTF8 sends text that is not UTF-8: the server fails the
// connection with 1007, which the client reads. In the fail_fast case the
// message never ends: the server must fail on the first fragment.
func testInvalidUTF8(t *testing.T, lib library) {
	cases := []struct {
		name     string
		p        []byte
		failFast bool
	}{
		{"0xff", []byte{0xff}, false},
		{"bad_continuation", []byte("héllo \xc3\x28 wörld"), false},
		{"surrogate", []byte("a\xed\xa0\x80b"), false},
		{"ends_inside_a_character", []byte("check \xe2\x9c"), false},
		{"fail_fast", append([]byte("ok \xff"), bytes.Repeat([]byte("a"), 16<<10)...), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &websocket.Handler{}, echo)
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{})
			if tc.failFast {
				w, err := cl.writer(ctx, textMsg)
				if err != nil {
					t.Fatal(err)
				}
				// The writer stays open: no final frame is ever sent. The
				// server may fail the connection while the write is going out.
				if _, err := w.Write(tc.p); err != nil {
					t.Logf("%s write of %d bytes: %v", lib.name, len(tc.p), err)
				}
			} else if err := cl.write(ctx, textMsg, tc.p); err != nil {
				t.Fatal(err)
			}
			_, _, err := cl.read(ctx)
			wantClientCloseCode(t, lib, err, 1007)
			wantServerFailed(t, s.end(t), 1007)
		})
	}
}

// testConcurrent runs many clients at once, each echoing messages of both
// types whose content names the client and the message.
func testConcurrent(t *testing.T, lib library) {
	const clients, messages = 200, 50
	s := newServer(t, &websocket.Handler{}, echo)
	ctx := testContext(t, time.Minute)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			if err := echoSession(ctx, lib, s.url, i, messages); err != nil {
				errs <- fmt.Errorf("client %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 10 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Fatalf("%d of %d clients failed", failed, clients)
	}
	for range clients {
		wantServerClose(t, s.end(t), 1000, "")
	}
	if st := s.h.Stats(); st.Accepted != clients {
		t.Errorf("server accepted %d connections, want %d", st.Accepted, clients)
	}
}

func echoSession(ctx context.Context, lib library, url string, i, messages int) error {
	cl, _, err := lib.dial(ctx, url, dialOptions{})
	if err != nil {
		return err
	}
	defer cl.closeNow()
	for j := range messages {
		typ := textMsg
		p := []byte(fmt.Sprintf("client %d, message %d: %s", i, j, strings.Repeat("✓", (i+j)%300)))
		if j%2 == 1 {
			typ = binaryMsg
			p = binaryPayload((i*messages+j)%4000, uint64(i*messages+j))
		}
		if err := roundTrip(ctx, cl, typ, p); err != nil {
			return fmt.Errorf("message %d: %w", j, err)
		}
	}
	return cl.close(ctx, 1000, "")
}

// testSubprotocol: the server picks, in its own order of preference, the
// first subprotocol the client offers, or none.
func testSubprotocol(t *testing.T, lib library) {
	cases := []struct {
		offered []string
		want    string
	}{
		{[]string{"b", "a"}, "a"},
		{[]string{"b"}, "b"},
		{[]string{"c", "b"}, "b"},
		{[]string{"c"}, ""},
		{nil, ""},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(strings.Join(tc.offered, ",")), func(t *testing.T) {
			s := newServer(t, &websocket.Handler{Subprotocols: []string{"a", "b"}}, func(c *websocket.Conn, report func(error)) {
				if err := c.WriteText(c.Subprotocol()); err != nil {
					report(err)
					return
				}
				echo(c, report)
			})
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{subprotocols: tc.offered})
			if got := cl.subprotocol(); got != tc.want {
				t.Errorf("client's subprotocol %q, want %q", got, tc.want)
			}
			if _, got, err := cl.read(ctx); err != nil || string(got) != tc.want {
				t.Errorf("server's Conn.Subprotocol() = %q (%v), want %q", got, err, tc.want)
			}
			closeCleanly(t, ctx, s, cl)
		})
	}
}

// testOrigin: a browser origin other than the server's host (or its
// allow-list) is refused with 403 before any upgrade; an allowed one, or
// none, is accepted.
func testOrigin(t *testing.T, lib library) {
	cases := []struct {
		name    string
		origins []string
		origin  string // "self": the server's own http://host:port
		want    int
	}{
		{"foreign_origin", nil, "http://evil.example", http.StatusForbidden},
		{"foreign_port", nil, "http://127.0.0.1:1", http.StatusForbidden},
		{"same_origin", nil, "self", http.StatusSwitchingProtocols},
		{"no_origin", nil, "", http.StatusSwitchingProtocols},
		{"not_in_allow_list", []string{"https://good.example"}, "http://evil.example", http.StatusForbidden},
		{"in_allow_list", []string{"https://good.example"}, "https://good.example", http.StatusSwitchingProtocols},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &websocket.Handler{Origins: tc.origins}, echo)
			ctx := testContext(t, 30*time.Second)
			header := http.Header{}
			switch tc.origin {
			case "":
			case "self":
				header.Set("Origin", s.Server.URL)
			default:
				header.Set("Origin", tc.origin)
			}
			cl, resp, err := lib.dial(ctx, s.url, dialOptions{header: header})
			if tc.want == http.StatusSwitchingProtocols {
				if err != nil {
					t.Fatalf("dial with Origin %q: %v", header.Get("Origin"), err)
				}
				t.Cleanup(cl.closeNow)
				if err := roundTrip(ctx, cl, textMsg, []byte("hello")); err != nil {
					t.Fatal(err)
				}
				closeCleanly(t, ctx, s, cl)
				return
			}
			if err == nil {
				cl.closeNow()
				t.Fatalf("dial with Origin %q succeeded, want HTTP %d", header.Get("Origin"), tc.want)
			}
			if resp == nil {
				t.Fatalf("dial with Origin %q: %v, and no HTTP response", header.Get("Origin"), err)
			}
			if resp.StatusCode != tc.want {
				t.Errorf("dial with Origin %q: HTTP %s, want %d", header.Get("Origin"), resp.Status, tc.want)
			}
			st := s.h.Stats()
			if st.Refused.Origin != 1 || st.Accepted != 0 {
				t.Errorf("server stats %+v, want one origin refusal and nothing accepted", st)
			}
		})
	}
}

// testServerFragmented: the server streams messages with NextWriter in
// writes of mixed sizes and pings between two fragments; the client
// reassembles them and its ping handler sees the ping.
func testServerFragmented(t *testing.T, lib library) {
	const serverPing = "between fragments"
	chunks := []int{1, 100, 5000, 3, 70000, 4096, 2}
	total := 0
	for _, n := range chunks {
		total += n
	}
	for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
		t.Run(typ.String(), func(t *testing.T) {
			p := payload(typ, total)
			pongs := make(chan string, 4)
			s := newServer(t, &websocket.Handler{}, func(c *websocket.Conn, report func(error)) {
				c.SetPongHandler(func(p []byte) {
					select {
					case pongs <- string(p):
					default:
					}
				})
				w, err := c.NextWriter(typ)
				if err != nil {
					report(err)
					return
				}
				rest := p
				for i, n := range chunks {
					if _, err := w.Write(rest[:n]); err != nil {
						report(err)
						return
					}
					rest = rest[n:]
					// After the 5000-byte write, a frame has gone out: the
					// ping comes between fragments.
					if i == 2 {
						if err := c.Ping([]byte(serverPing)); err != nil {
							report(err)
							return
						}
					}
				}
				if err := w.Close(); err != nil {
					report(err)
					return
				}
				echo(c, report)
			})
			ctx := testContext(t, 30*time.Second)
			var tp tap
			pings := make(chan string, 4)
			cl := dial(t, ctx, lib, s.url, dialOptions{netDial: tp.dial, onPing: func(p string) {
				select {
				case pings <- p:
				default:
				}
			}})
			if err := expectEcho(ctx, cl, typ, p); err != nil {
				t.Fatal(err)
			}
			for what, ch := range map[string]chan string{"client's ping handler": pings, "server's pong handler": pongs} {
				select {
				case got := <-ch:
					if got != serverPing {
						t.Errorf("%s got %q, want %q", what, got, serverPing)
					}
				case <-ctx.Done():
					t.Fatalf("%s never saw the ping: %v", what, ctx.Err())
				}
			}
			closeCleanly(t, ctx, s, cl)
			frames, err := tp.received()
			if err != nil {
				t.Fatal(err)
			}
			data, control, err := checkFragmented(frames, typ, p)
			if err != nil {
				t.Fatal(err)
			}
			if control != 1 {
				t.Errorf("%d control frames between the fragments, want the ping", control)
			}
			t.Logf("the server sent the message in %d frames, with %d control frame between them", data, control)
		})
	}
}

// testShutdown: Handler.Shutdown closes every connection with 1001, which the
// clients read and answer, and then refuses handshakes with 503.
func testShutdown(t *testing.T, lib library) {
	const clients = 10
	s := newServer(t, &websocket.Handler{}, echo)
	ctx := testContext(t, 30*time.Second)
	var cls []client
	for range clients {
		cl := dial(t, ctx, lib, s.url, dialOptions{})
		if err := roundTrip(ctx, cl, textMsg, []byte("before shutdown")); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
	}
	shutdown := make(chan error, 1)
	go func() { shutdown <- s.h.Shutdown(ctx) }()
	for _, cl := range cls {
		_, _, err := cl.read(ctx)
		wantClientCloseCode(t, lib, err, 1001)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	for range clients {
		if err := s.end(t); websocket.CloseStatus(err) != websocket.StatusGoingAway {
			t.Errorf("server's read ended with %v, want the client's answer 1001", err)
		}
	}
	_, resp, err := lib.dial(ctx, s.url, dialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Errorf("dial after Shutdown: %v (%s), want HTTP 503", err, status)
	}
}

// testPingBetweenFragments: the client pings while it is in the middle of
// sending a fragmented message; the server answers the ping at once and
// still puts the message together.
func testPingBetweenFragments(t *testing.T, lib library) {
	s := newServer(t, &websocket.Handler{}, echo)
	ctx := testContext(t, 30*time.Second)
	var tp tap
	cl := dial(t, ctx, lib, s.url, dialOptions{netDial: tp.dial, writeBufferSize: 16})
	p := textPayload(1000)
	w, err := cl.writer(ctx, textMsg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(p[:500]); err != nil {
		t.Fatal(err)
	}
	pinged := make(chan error, 1)
	go func() { pinged <- cl.ping(ctx) }()
	pingSent := func() bool {
		frames, _ := tp.sent()
		for _, f := range frames {
			if f.op == 0x9 {
				return true
			}
		}
		return false
	}
	if !poll(10*time.Second, pingSent) {
		t.Fatal("the ping never went out")
	}
	if _, err := w.Write(p[500:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := expectEcho(ctx, cl, textMsg, p); err != nil { // reading takes the pong too
		t.Fatal(err)
	}
	if err := <-pinged; err != nil {
		t.Errorf("ping between fragments: %v", err)
	}
	frames, err := tp.sent()
	if err != nil {
		t.Fatal(err)
	}
	data, control, err := checkFragmented(frames, textMsg, p)
	if err != nil {
		t.Fatal(err)
	}
	if control != 1 {
		t.Errorf("%d control frames between the fragments, want the ping", control)
	}
	t.Logf("%s sent the message in %d frames, with %d control frame between them", lib.name, data, control)
	closeCleanly(t, ctx, s, cl)
}

// testConcurrentWriters: many goroutines of the server write at once, whole
// messages and streamed ones; the client must receive every message whole,
// never interleaved with another, in each writer's order.
func testConcurrentWriters(t *testing.T, lib library) {
	const writers, messages = 10, 100
	s := newServer(t, &websocket.Handler{}, func(c *websocket.Conn, report func(error)) {
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for i := range writers {
			wg.Go(func() {
				for j := range messages {
					if err := writeNumbered(c, i, j); err != nil {
						errs <- fmt.Errorf("writer %d, message %d: %w", i, j, err)
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			report(err)
			return
		}
		echo(c, report)
	})
	ctx := testContext(t, 30*time.Second)
	cl := dial(t, ctx, lib, s.url, dialOptions{})
	next := make([]int, writers)
	for range writers * messages {
		typ, got, err := cl.read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var i, j int
		if _, err := fmt.Sscanf(string(got), "writer %d message %d:", &i, &j); err != nil || i < 0 || i >= writers {
			t.Fatalf("unexpected %s message of %d bytes starting %q", typ, len(got), got[:min(len(got), 40)])
		}
		if j != next[i] {
			t.Fatalf("writer %d: message %d arrived, want %d", i, j, next[i])
		}
		next[i]++
		want := numbered(i, j)
		if wantTyp := numberedType(j); typ != wantTyp {
			t.Fatalf("writer %d, message %d: %s, want %s", i, j, typ, wantTyp)
		}
		if d := diff(got, want); d != "" {
			t.Fatalf("writer %d, message %d: %s", i, j, d)
		}
	}
	closeCleanly(t, ctx, s, cl)
}

func numbered(i, j int) []byte {
	return append([]byte(fmt.Sprintf("writer %d message %d:", i, j)), textPayload(j*97%9000)...)
}

func numberedType(j int) websocket.MessageType {
	if j%2 == 1 {
		return binaryMsg
	}
	return textMsg
}

// writeNumbered writes message j of writer i: every third one whole, the
// others streamed in pieces.
func writeNumbered(c *websocket.Conn, i, j int) error {
	p, typ := numbered(i, j), numberedType(j)
	if j%3 == 0 {
		return c.WriteMessage(typ, p)
	}
	w, err := c.NextWriter(typ)
	if err != nil {
		return err
	}
	for len(p) > 0 {
		n := min(len(p), 1+j*31%5000)
		if _, err := w.Write(p[:n]); err != nil {
			w.Close()
			return err
		}
		p = p[n:]
	}
	return w.Close()
}

// testCompressionOffered: the client offers permessage-deflate, as every
// browser does. Whether the server accepts it or not, messages must go
// through intact; if it does not, it must not answer the extension, and no
// frame either way may carry RSV1.
func testCompressionOffered(t *testing.T, lib library) {
	s := newServer(t, &websocket.Handler{ReadLimit: largeLimit}, echo)
	ctx := testContext(t, 30*time.Second)
	var tp tap
	cl := dial(t, ctx, lib, s.url, dialOptions{netDial: tp.dial, compression: true})
	for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
		for _, n := range []int{0, 10, 1000, 100 << 10} {
			if err := roundTrip(ctx, cl, typ, payload(typ, n)); err != nil {
				t.Fatal(err)
			}
		}
	}
	closeCleanly(t, ctx, s, cl)

	tp.mu.Lock()
	request, answer := tp.written.String(), tp.read.String()
	tp.mu.Unlock()
	request, answer = request[:strings.Index(request, "\r\n\r\n")], answer[:strings.Index(answer, "\r\n\r\n")]
	if !strings.Contains(strings.ToLower(request), "permessage-deflate") {
		t.Fatalf("%s did not offer permessage-deflate:\n%s", lib.name, request)
	}
	if strings.Contains(strings.ToLower(answer), "sec-websocket-extensions") {
		t.Logf("the server accepted an extension:\n%s", answer)
		return
	}
	sent, err := tp.sent()
	if err != nil {
		t.Fatal(err)
	}
	received, err := tp.received()
	if err != nil {
		t.Fatal(err)
	}
	for what, frames := range map[string][]wireFrame{"client": sent, "server": received} {
		for i, f := range frames {
			if f.rsv != 0 {
				t.Errorf("%s frame %d (opcode %#x) has RSV bits %03b with no extension agreed", what, i, f.op, f.rsv)
			}
		}
	}
}

// testServeEnds: when Serve returns, the connection is closed with 1000;
// when it panics, with 1011. Either way the client reads what was written
// before, then the close, then EOF.
func testServeEnds(t *testing.T, lib library) {
	cases := []struct {
		name  string
		panic bool
		code  int
	}{
		{"returns", false, 1000},
		{"panics", true, 1011},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &websocket.Handler{}, func(c *websocket.Conn, report func(error)) {
				report(c.WriteText("last words"))
				if tc.panic {
					panic(http.ErrAbortHandler) // net/http does not log this one
				}
			})
			ctx := testContext(t, 30*time.Second)
			cl := dial(t, ctx, lib, s.url, dialOptions{})
			if _, got, err := cl.read(ctx); err != nil || string(got) != "last words" {
				t.Fatalf("read %q, %v; want the last words", got, err)
			}
			_, _, err := cl.read(ctx)
			wantClientClose(t, lib, err, tc.code, "")
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			if c, ok := cl.(tcpCloseChecker); ok {
				if err := c.expectEOF(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
