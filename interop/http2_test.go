package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hybi/websocket"
	_ "github.com/hybi/websocket/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// WebSockets over HTTP/2 (RFC 8441) against the Handler served by
// net/http's HTTP/2 server, from a raw HTTP/2 client written here on
// x/net's framer and HPACK: many WebSockets multiplexed on one TCP
// connection, streams closed and reset among others, flow control, bad
// requests, shutdown with streams open.

// h2Conn is one TCP (TLS) connection of the raw client.
type h2Conn struct {
	t    *testing.T
	conn *tls.Conn
	fr   *http2.Framer
	host string

	wmu  sync.Mutex // frames written, HPACK state, stream IDs
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32 // the next stream ID

	mu            sync.Mutex
	cond          *sync.Cond // broadcast on every change below
	streams       map[uint32]*h2Stream
	settings      bool  // the server's SETTINGS arrived
	xconnect      bool  // SETTINGS_ENABLE_CONNECT_PROTOCOL = 1
	initialWindow int32 // the server's SETTINGS_INITIAL_WINDOW_SIZE
	sendWindow    int32 // the connection's
	goAway        bool
	readErr       error
	done          chan struct{}
	closed        atomic.Bool // by the test: writes may fail
}

// h2Stream is one stream of an h2Conn: a WebSocket once answered 200.
type h2Stream struct {
	c          *h2Conn
	id         uint32
	status     string // the answer's :status
	fields     []hpack.HeaderField
	buf        []byte // DATA received, not yet read
	ended      bool   // the server's END_STREAM
	reset      bool   // the server's RST_STREAM
	code       http2.ErrCode
	sendWindow int32
}

const h2Timeout = 10 * time.Second

// dialH2 opens a raw HTTP/2 connection to srv and waits for its SETTINGS.
func dialH2(t *testing.T, srv *httptest.Server) *h2Conn {
	t.Helper()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	c := &h2Conn{t: t, conn: conn, fr: http2.NewFramer(conn, conn), host: srv.Listener.Addr().String(), next: 1,
		streams: map[uint32]*h2Stream{}, initialWindow: 65535, sendWindow: 65535, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	c.enc = hpack.NewEncoder(&c.hbuf)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	c.write(func() error { return c.fr.WriteSettings() })
	go c.readLoop()
	go func() { // wakes the waiters, which check their deadlines
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-c.done:
				return
			case <-tick.C:
				c.cond.Broadcast()
			}
		}
	}()
	t.Cleanup(c.close)
	c.wait("the server's SETTINGS", func() bool { return c.settings })
	return c
}

func (c *h2Conn) close() {
	c.closed.Store(true)
	c.conn.Close()
	<-c.done
}

// write writes a frame (or frames) with f, failing the test on an error.
func (c *h2Conn) write(f func() error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := f(); err != nil && !c.closed.Load() {
		c.t.Errorf("writing a frame: %v", err)
	}
}

// wait waits until ok (called with mu held) or h2Timeout.
func (c *h2Conn) wait(what string, ok func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(h2Timeout)
	c.mu.Lock()
	defer c.mu.Unlock()
	for !ok() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s (read error: %v)", what, c.readErr)
		}
		c.cond.Wait()
	}
}

func (c *h2Conn) readLoop() {
	defer close(c.done)
	for {
		f, err := c.fr.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		var ack func() error
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				break
			}
			if v, ok := f.Value(http2.SettingEnableConnectProtocol); ok {
				c.xconnect = v == 1
			}
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				for _, s := range c.streams {
					s.sendWindow += int32(v) - c.initialWindow
				}
				c.initialWindow = int32(v)
			}
			c.settings = true
			ack = c.fr.WriteSettingsAck
		case *http2.MetaHeadersFrame:
			if s := c.streams[f.StreamID]; s != nil {
				s.status, s.fields = f.PseudoValue("status"), f.RegularFields()
				s.ended = s.ended || f.StreamEnded()
			}
		case *http2.DataFrame:
			if s := c.streams[f.StreamID]; s != nil {
				s.buf = append(s.buf, f.Data()...)
				s.ended = s.ended || f.StreamEnded()
			}
			// The connection's window is given back at once: a stream
			// that is not read holds up only itself.
			if n := f.Length; n > 0 {
				ack = func() error { return c.fr.WriteWindowUpdate(0, n) }
			}
		case *http2.RSTStreamFrame:
			if s := c.streams[f.StreamID]; s != nil {
				s.reset, s.code = true, f.ErrCode
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.sendWindow += int32(f.Increment)
			} else if s := c.streams[f.StreamID]; s != nil {
				s.sendWindow += int32(f.Increment)
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				data := f.Data
				ack = func() error { return c.fr.WritePing(true, data) }
			}
		case *http2.GoAwayFrame:
			c.goAway = true
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		if ack != nil {
			c.write(ack)
		}
	}
}

// request opens a stream with a HEADERS frame of pseudo and regular
// fields, in order.
func (c *h2Conn) request(fields ...string) *h2Stream {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hbuf.Reset()
	for i := 0; i < len(fields); i += 2 {
		c.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	s := &h2Stream{c: c, id: c.next}
	c.next += 2
	c.mu.Lock()
	s.sendWindow = c.initialWindow
	c.streams[s.id] = s
	c.mu.Unlock()
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.hbuf.Bytes(), EndHeaders: true}); err != nil {
		c.t.Errorf("writing HEADERS: %v", err)
	}
	return s
}

// connect opens a WebSocket with RFC 8441's extended CONNECT to path,
// with extra fields, and returns the stream, answered or not.
func (c *h2Conn) connect(path string, extra ...string) *h2Stream {
	fields := []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", path, ":authority", c.host,
		"sec-websocket-version", "13"}
	return c.request(append(fields, extra...)...)
}

// answer waits for the stream's answer and returns its status.
func (s *h2Stream) answer() string {
	s.c.t.Helper()
	s.c.wait(fmt.Sprintf("the answer on stream %d", s.id), func() bool { return s.status != "" || s.reset || s.c.readErr != nil })
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	if s.status == "" && s.reset {
		return "RST_STREAM " + s.code.String()
	}
	return s.status
}

// field is the value of the answer's field name.
func (s *h2Stream) field(name string) string {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	for _, f := range s.fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// send writes p as DATA frames, within the server's windows.
func (s *h2Stream) send(p []byte, end bool) {
	c := s.c
	for first := true; first || len(p) > 0; first = false {
		var n int32
		if len(p) > 0 {
			c.wait(fmt.Sprintf("window to send on stream %d", s.id), func() bool { return min(c.sendWindow, s.sendWindow) > 0 || s.reset })
			c.mu.Lock()
			if s.reset {
				c.mu.Unlock()
				return
			}
			n = min(c.sendWindow, s.sendWindow, 16384, int32(len(p)))
			c.sendWindow -= n
			s.sendWindow -= n
			c.mu.Unlock()
		}
		chunk := p[:n]
		p = p[n:]
		c.write(func() error { return c.fr.WriteData(s.id, end && len(p) == 0, chunk) })
	}
}

// Read reads what the stream received, giving its window back.
func (s *h2Stream) Read(p []byte) (int, error) {
	c := s.c
	var err error
	c.wait(fmt.Sprintf("data on stream %d", s.id), func() bool { return len(s.buf) > 0 || s.ended || s.reset || c.readErr != nil })
	c.mu.Lock()
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	switch {
	case n > 0:
	case s.ended: // a RST_STREAM(NO_ERROR) may follow: the server is done reading
		err = io.EOF
	case s.reset:
		err = fmt.Errorf("stream %d reset: %v", s.id, s.code)
	default:
		err = c.readErr
	}
	c.mu.Unlock()
	if n > 0 {
		c.write(func() error { return c.fr.WriteWindowUpdate(s.id, uint32(n)) })
	}
	return n, err
}

// sendMessage sends one masked frame: a whole message, or a control frame.
func (s *h2Stream) sendMessage(op byte, payload []byte) {
	s.send(maskedFrame(op, payload), false)
}

// maskedFrame is a client's frame, masked with a random key, written here
// from RFC 6455 section 5.2.
func maskedFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n < 1<<16:
		f = binary.BigEndian.AppendUint16(append(f, 0x80|126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 0x80|127), uint64(n))
	}
	var key [4]byte
	rand.Read(key[:])
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// readMessage reads one unfragmented, unmasked frame of the server's.
func (s *h2Stream) readMessage() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(s, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("frame %x: want FIN and no mask", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		_, err = io.ReadFull(s, b[:])
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		_, err = io.ReadFull(s, b[:])
		n = binary.BigEndian.Uint64(b[:])
	}
	if err != nil {
		return 0, nil, err
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(s, payload)
	return h[0] & 0x0F, payload, err
}

func (s *h2Stream) expectMessage(op byte, want []byte) {
	s.c.t.Helper()
	got, payload, err := s.readMessage()
	if err != nil || got != op || !bytes.Equal(payload, want) {
		s.c.t.Fatalf("stream %d: opcode %d, %d bytes (%.40q), %v; want opcode %d, %.40q", s.id, got, len(payload), payload, err, op, want)
	}
}

// expectEnd reads to the stream's end: nothing more, then END_STREAM.
func (s *h2Stream) expectEnd() {
	s.c.t.Helper()
	if rest, err := io.ReadAll(s); err != nil || len(rest) > 0 {
		s.c.t.Fatalf("stream %d: %d bytes, %v before its end", s.id, len(rest), err)
	}
}

func closePayload(code websocket.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// h2EchoServer serves an echo Handler over TLS with HTTP/2.
func h2EchoServer(t *testing.T, cfg func(*websocket.Handler)) (*httptest.Server, *websocket.Handler) {
	h := &websocket.Handler{ReadLimit: largeLimit, Serve: func(c *websocket.Conn) {
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(typ, msg) != nil {
				return
			}
		}
	}}
	if cfg != nil {
		cfg(h)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		h.Shutdown(context.Background())
		srv.Close()
	})
	return srv, h
}

// waitHandler polls h's Stats until ok.
func waitHandler(t *testing.T, h *websocket.Handler, what string, ok func(websocket.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(h2Timeout)
	for st := h.Stats(); !ok(st); st = h.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitGoroutines polls until at most n goroutines run.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, want at most %d:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// 100 WebSockets on one TCP connection, each echoing its own messages;
// one closed with the close handshake and one reset while the others go
// on; then all close, and nothing is left running.
func TestHTTP2Multiplexed(t *testing.T) {
	base := runtime.NumGoroutine()
	srv, h := h2EchoServer(t, nil)
	c := dialH2(t, srv)
	if !c.xconnect {
		t.Fatal("the server did not send SETTINGS_ENABLE_CONNECT_PROTOCOL = 1")
	}
	const n = 100
	streams := make([]*h2Stream, n)
	for i := range streams {
		streams[i] = c.connect("/")
	}
	for _, s := range streams {
		if st := s.answer(); st != "200" {
			t.Fatalf("stream %d: %s, want 200", s.id, st)
		}
		if s.field("sec-websocket-accept") != "" {
			t.Errorf("stream %d: Sec-WebSocket-Accept in an RFC 8441 answer", s.id)
		}
	}
	waitHandler(t, h, "100 streams open", func(st websocket.Stats) bool { return st.ActiveHTTP2 == n && st.AcceptedHTTP2 == n })

	// Every stream echoes, all at once.
	round := func(streams []*h2Stream, r int) {
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Go(func() {
				msg := fmt.Appendf(nil, "round %d on stream %d", r, s.id)
				s.sendMessage(1, msg)
				s.expectMessage(1, msg)
				bin := bytes.Repeat([]byte{byte(s.id)}, 1000+int(s.id))
				s.sendMessage(2, bin)
				s.expectMessage(2, bin)
			})
		}
		wg.Wait()
	}
	round(streams, 1)

	// Stream 0 closes properly: its close is echoed and the stream ends.
	closing := streams[0]
	closing.sendMessage(8, closePayload(4000, "this one only"))
	closing.expectMessage(8, closePayload(4000, "this one only"))
	closing.expectEnd()
	// Stream 1 is reset by the client.
	c.write(func() error { return c.fr.WriteRSTStream(streams[1].id, http2.ErrCodeCancel) })
	waitHandler(t, h, "the two closed", func(st websocket.Stats) bool {
		return st.ActiveHTTP2 == n-2 && st.Closed.PeerClose == 1 && st.Closed.Dropped == 1
	})
	round(streams[2:], 2)

	// The rest close; the connection and the server's goroutines end.
	for _, s := range streams[2:] {
		s.sendMessage(8, closePayload(1000, ""))
	}
	for _, s := range streams[2:] {
		s.expectMessage(8, closePayload(1000, ""))
		s.expectEnd()
	}
	waitHandler(t, h, "all closed", func(st websocket.Stats) bool { return st.ActiveHTTP2 == 0 && st.Active == 0 })
	c.close()
	srv.Close()
	waitGoroutines(t, base)
}

// A stream whose reader stops: the server's writes to it wait for its
// window, the other streams of the connection go on meanwhile, and once
// its write times out it is reset (ErrWriteTimeout) with the connection
// unharmed.
func TestHTTP2StreamStopsReading(t *testing.T) {
	srv, h := h2EchoServer(t, func(h *websocket.Handler) { h.WriteTimeout = 3 * time.Second })
	c := dialH2(t, srv)
	stuck, other := c.connect("/"), c.connect("/")
	for _, s := range []*h2Stream{stuck, other} {
		if st := s.answer(); st != "200" {
			t.Fatalf("stream %d: %s", s.id, st)
		}
	}
	// 256 KiB of echoes, four times the stream's window, never read: the
	// server sends a window's worth, then its write waits.
	big := bytes.Repeat([]byte("x"), 64<<10)
	for range 4 {
		stuck.sendMessage(2, big)
	}
	// The client's window: SETTINGS_INITIAL_WINDOW_SIZE is left at its default.
	const window = 65535
	c.wait("the stuck stream's window filled", func() bool { return len(stuck.buf) == window })
	// Meanwhile the other stream echoes, many times, while the stuck
	// stream's write still waits (it has not timed out).
	for i := range 50 {
		msg := fmt.Appendf(nil, "still flowing %d", i)
		other.sendMessage(1, msg)
		other.expectMessage(1, msg)
	}
	if st := h.Stats(); st.Closed.WriteTimeout != 0 || st.ActiveHTTP2 != 2 {
		t.Fatalf("stats %+v: the stuck stream's write gave up before the other stream's echoes were done", st)
	}
	c.mu.Lock()
	if n := len(stuck.buf); n != window {
		t.Errorf("the stuck stream received %d bytes, its window being %d", n, window)
	}
	c.mu.Unlock()
	waitHandler(t, h, "the stuck stream's write timeout", func(st websocket.Stats) bool { return st.Closed.WriteTimeout == 1 })
	c.wait("the stuck stream's reset", func() bool { return stuck.reset })
	other.sendMessage(1, []byte("after the reset"))
	other.expectMessage(1, []byte("after the reset"))
	if st := h.Stats(); st.ActiveHTTP2 != 1 {
		t.Errorf("stats %+v, want the other stream open", st)
	}
}

// Bad requests: each refused with its status (net/http's server resets
// what HTTP/2 itself forbids), the connection serving on.
func TestHTTP2BadRequests(t *testing.T) {
	srv, h := h2EchoServer(t, func(h *websocket.Handler) { h.Subprotocols = []string{"chat"} })
	c := dialH2(t, srv)
	host := c.host
	for _, tc := range []struct {
		name    string
		fields  []string
		status  string
		version string // Sec-WebSocket-Version of the answer
	}{
		{"no :protocol", []string{":method", "CONNECT", ":scheme", "https", ":path", "/", ":authority", host, "sec-websocket-version", "13"},
			"RST_STREAM PROTOCOL_ERROR", ""}, // a CONNECT without :protocol has no :path: malformed
		{"GET with :protocol", []string{":method", "GET", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", host, "sec-websocket-version", "13"},
			"400", ""},
		{"GET with Upgrade", []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", host, "upgrade", "websocket", "connection", "upgrade", "sec-websocket-version", "13"},
			"400", ""}, // net/http's own: connection-specific fields are malformed in HTTP/2
		{"GET", []string{":method", "GET", ":scheme", "https", ":path", "/", ":authority", host}, "400", ""},
		{"unknown :protocol", []string{":method", "CONNECT", ":protocol", "webtransport", ":scheme", "https", ":path", "/", ":authority", host, "sec-websocket-version", "13"},
			"400", ""},
		{"no version", []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", host}, "426", "13"},
		{"version 8", []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", host, "sec-websocket-version", "8"}, "426", "13"},
		{"foreign origin", []string{":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/", ":authority", host, "sec-websocket-version", "13", "origin", "https://evil.example"}, "403", ""},
	} {
		s := c.request(tc.fields...)
		if got := s.answer(); got != tc.status {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.status)
		}
		if got := s.field("sec-websocket-version"); got != tc.version {
			t.Errorf("%s: Sec-WebSocket-Version %q, want %q", tc.name, got, tc.version)
		}
	}
	want := websocket.Refusals{NotWebSocket: 3, Version: 2, Origin: 1}
	if got := h.Stats().Refused; got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
	// A same-origin one with a subprotocol is accepted on the same
	// connection; an unmasked frame then fails it with 1002, as over TCP.
	s := c.connect("/", "origin", "https://"+host, "sec-websocket-protocol", "other, chat")
	if st := s.answer(); st != "200" || s.field("sec-websocket-protocol") != "chat" {
		t.Fatalf("answer %s, subprotocol %q", st, s.field("sec-websocket-protocol"))
	}
	s.send([]byte{0x81, 0x02, 'h', 'i'}, false) // not masked
	if op, payload, err := s.readMessage(); err != nil || op != 8 || !bytes.HasPrefix(payload, closePayload(websocket.StatusProtocolError, "")) {
		t.Fatalf("after an unmasked frame: opcode %d, %q, %v; want a close with 1002", op, payload, err)
	}
	s.expectEnd()
}

// Shutdown with streams open: each gets 1001, its answer ends the stream,
// Shutdown returns once every Serve has, and the server closes cleanly.
func TestHTTP2ShutdownStreamsOpen(t *testing.T) {
	base := runtime.NumGoroutine()
	srv, h := h2EchoServer(t, nil)
	c := dialH2(t, srv)
	streams := make([]*h2Stream, 10)
	for i := range streams {
		streams[i] = c.connect("/")
		if st := streams[i].answer(); st != "200" {
			t.Fatalf("stream %d: %s", streams[i].id, st)
		}
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h2Timeout)
		defer cancel()
		done <- h.Shutdown(ctx)
	}()
	for _, s := range streams {
		op, payload, err := s.readMessage()
		if err != nil || op != 8 || !bytes.HasPrefix(payload, closePayload(websocket.StatusGoingAway, "")) {
			t.Fatalf("stream %d: opcode %d, %q, %v; want a close with 1001", s.id, op, payload, err)
		}
		s.sendMessage(8, closePayload(websocket.StatusGoingAway, ""))
		s.expectEnd()
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if st := h.Stats(); st.Closed.Shutdown != 10 || st.ActiveHTTP2 != 0 {
		t.Errorf("stats %+v", st)
	}
	// New streams are refused with 503, on the same connection.
	if st := c.connect("/").answer(); st != "503" {
		t.Errorf("after Shutdown: %s, want 503", st)
	}
	c.close()
	srv.Close()
	waitGoroutines(t, base)
}
