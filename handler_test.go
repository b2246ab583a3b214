package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of the Handler over real sockets: raw clients (client_test.go) talk
// to an httptest server byte by byte. Helpers here are prefixed "ht".

// htBuffer is a bytes.Buffer that server goroutines may write to while the
// test reads it.
type htBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *htBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *htBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// htServer serves h; net/http's own log (a handler's panic) goes to the
// returned buffer rather than to the test output.
func htServer(t *testing.T, h http.Handler) (*httptest.Server, *htBuffer) {
	t.Helper()
	errLog := &htBuffer{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(errLog, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, errLog
}

// htPoll waits, polling, until cond holds; it fails the test after 5 s.
func htPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// htHead builds a request head from its lines.
func htHead(lines ...string) string { return strings.Join(lines, "\r\n") + "\r\n\r\n" }

// The RFC 6455 example key and its accept value (section 1.3).
const (
	htKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	htAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// The worked examples of draft-hixie-76.
const (
	htKey1Ex1 = "4 @1  46546xW%0l 1 5"
	htKey2Ex1 = "12998 5 Y3 1  .P00"
	htKey3Ex1 = "^n:ds[4U"
	htAnsEx1  = "8jKS'y:G*Co,Wxa-"
	htKey1Ex2 = "18x 6]8vM;54 *(5:  {   U1]8  z [  8"
	htKey2Ex2 = "1_ tx7X d  <  nw  334J702) 7]o}` 0"
	htKey3Ex2 = "Tm[K T2u"
	htAnsEx2  = "fQJ,fN/4F4!~K~MH"
)

// htRFC is an RFC 6455 request for example.com from a client that sends no
// Origin (not a browser), which every origin policy admits.
func htRFC(path string, extra ...string) string {
	return htHead(append([]string{"GET " + path + " HTTP/1.1", "Host: example.com", "Upgrade: websocket",
		"Connection: Upgrade", "Sec-WebSocket-Key: " + htKey, "Sec-WebSocket-Version: 13"}, extra...)...)
}

// htRequest is a handshake of dialect d for host and path with the origin in
// the field that dialect uses ("" for none); hixie-76 uses the first worked
// example's keys and appends its key3.
func htRequest(d Dialect, host, path, origin string, extra ...string) string {
	lines := []string{"GET " + path + " HTTP/1.1", "Host: " + host}
	originField := "Origin"
	switch d {
	case Hixie75:
		lines = append(lines, "Upgrade: WebSocket", "Connection: Upgrade")
	case Hixie76:
		lines = append(lines, "Upgrade: WebSocket", "Connection: Upgrade", "Sec-WebSocket-Key1: "+htKey1Ex1, "Sec-WebSocket-Key2: "+htKey2Ex1)
	case Hybi07, Hybi08:
		originField = "Sec-WebSocket-Origin"
		lines = append(lines, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: "+htKey,
			fmt.Sprintf("Sec-WebSocket-Version: %d", map[Dialect]int{Hybi07: 7, Hybi08: 8}[d]))
	case RFC6455:
		lines = append(lines, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 13")
	}
	if origin != "" {
		lines = append(lines, originField+": "+origin)
	}
	req := htHead(append(lines, extra...)...)
	if d == Hixie76 {
		req += htKey3Ex1
	}
	return req
}

// htReadHTTP reads a whole HTTP response, head and body.
func htReadHTTP(t *testing.T, c *rawClient) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the response body: %v", err)
	}
	return resp, string(body)
}

// htUpgrade reads a handshake answer and fails unless it is a 101; for
// hixie-76 it also reads the 16-byte answer to the challenge and checks it
// against want.
func htUpgrade(t *testing.T, c *rawClient, d Dialect, want string) http.Header {
	t.Helper()
	status, header, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("%s: expected 101, got %q", d, raw)
	}
	if d == Hixie76 {
		var answer [16]byte
		if _, err := io.ReadFull(c.br, answer[:]); err != nil {
			t.Fatalf("reading the hixie-76 answer: %v", err)
		}
		if string(answer[:]) != want {
			t.Fatalf("hixie-76 answer %q, want %q", answer, want)
		}
	}
	return header
}

// htClientClose closes from the client side: the server must answer the
// close (echoing 1000) and close TCP. A hixie-75 client just hangs up.
func htClientClose(t *testing.T, c *rawClient, d Dialect) {
	t.Helper()
	switch {
	case d.hybi():
		c.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
		if code := c.expectClose(); code != StatusNormalClosure {
			t.Fatalf("%s: server answered the close with %v", d, code)
		}
	case d == Hixie76:
		c.write([]byte{0xFF, 0x00})
		htExpectBytes(t, c, "\xff\x00")
		c.expectEOF()
	default:
		c.conn.Close()
	}
}

// htAnswerClose waits for the server's close, answers it and checks that the
// server then closes TCP. It returns the close code (1005 for hixie-76, 1006
// for hixie-75, which closes TCP with no handshake).
func htAnswerClose(t *testing.T, c *rawClient, d Dialect) StatusCode {
	t.Helper()
	switch {
	case d.hybi():
		f := c.readFrame()
		if f.op != 8 {
			t.Fatalf("%s: expected a close frame, got opcode %d %q", d, f.op, f.payload)
		}
		code := StatusNoStatusRcvd
		if len(f.payload) >= 2 {
			code = StatusCode(int(f.payload[0])<<8 | int(f.payload[1]))
		}
		if code == StatusNoStatusRcvd {
			c.write(clientFrame(true, 8, nil))
		} else {
			c.write(clientFrame(true, 8, closePayload(code, "")))
		}
		c.expectEOF()
		return code
	case d == Hixie76:
		htExpectBytes(t, c, "\xff\x00")
		c.write([]byte{0xFF, 0x00})
		c.expectEOF()
		return StatusNoStatusRcvd
	default:
		c.expectEOF()
		return StatusAbnormalClosure
	}
}

// htExpectBytes reads len(want) bytes and compares them with want.
func htExpectBytes(t *testing.T, c *rawClient, want string) {
	t.Helper()
	got := make([]byte, len(want))
	n, err := io.ReadFull(c.br, got)
	if err != nil {
		t.Fatalf("reading %d bytes: %v; got %q", len(want), err, got[:n])
	}
	if string(got) != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// htExpectSilence checks that the server sends nothing for d.
func htExpectSilence(t *testing.T, c *rawClient, d time.Duration) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(d))
	b, err := c.br.Peek(1)
	if !isTimeout(err) {
		t.Fatalf("expected silence, got %q, %v", b, err)
	}
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
}

// htCountingEcho is an echo callback that counts the callbacks that returned.
func htCountingEcho(returned *atomic.Int32) func(*Conn) {
	return func(c *Conn) {
		defer returned.Add(1)
		echoMessages(c)
	}
}

// 1. Each dialect's handshake, byte for byte.

func TestHandshakeBytes(t *testing.T) {
	h := &Handler{
		Subprotocols: []string{"sample", "superchat"},
		Serve:        func(c *Conn) { c.WriteText("ok") },
	}
	srv, _ := htServer(t, h)

	const hybi101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + htAccept + "\r\n"
	// After the answer: the callback's "ok", then the dialect's close.
	const hixieOK, hybiOK = "\x00ok\xff", "\x81\x02ok"
	const hybiClose = "\x88\x02\x03\xe8"

	for _, tc := range []struct {
		name string
		d    Dialect
		req  string
		want string
	}{
		{
			name: "hixie-75",
			d:    Hixie75,
			req:  handshakeRequest(Hixie75, "example.com", "/demo?x=1&y=%20"),
			want: "HTTP/1.1 101 Web Socket Protocol Handshake\r\n" +
				"Upgrade: WebSocket\r\n" +
				"Connection: Upgrade\r\n" +
				"WebSocket-Origin: http://example.com\r\n" +
				"WebSocket-Location: ws://example.com/demo?x=1&y=%20\r\n" +
				"\r\n" + hixieOK,
		},
		{
			name: "hixie-75 with protocol",
			d:    Hixie75,
			req:  handshakeRequest(Hixie75, "example.com", "/demo", "WebSocket-Protocol: sample"),
			want: "HTTP/1.1 101 Web Socket Protocol Handshake\r\n" +
				"Upgrade: WebSocket\r\n" +
				"Connection: Upgrade\r\n" +
				"WebSocket-Origin: http://example.com\r\n" +
				"WebSocket-Location: ws://example.com/demo\r\n" +
				"WebSocket-Protocol: sample\r\n" +
				"\r\n" + hixieOK,
		},
		{
			name: "hixie-76 example 1",
			d:    Hixie76,
			req:  handshakeRequest(Hixie76, "example.com", "/demo", "Sec-WebSocket-Protocol: sample"),
			want: "HTTP/1.1 101 WebSocket Protocol Handshake\r\n" +
				"Upgrade: WebSocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Origin: http://example.com\r\n" +
				"Sec-WebSocket-Location: ws://example.com/demo\r\n" +
				"Sec-WebSocket-Protocol: sample\r\n" +
				"\r\n" + htAnsEx1 + hixieOK + "\xff\x00",
		},
		{
			name: "hixie-76 example 2",
			d:    Hixie76,
			req: htHead("GET /demo HTTP/1.1", "Host: example.com", "Connection: Upgrade", "Sec-WebSocket-Key2: "+htKey2Ex2,
				"Upgrade: WebSocket", "Sec-WebSocket-Key1: "+htKey1Ex2, "Origin: http://example.com") + htKey3Ex2,
			want: "HTTP/1.1 101 WebSocket Protocol Handshake\r\n" +
				"Upgrade: WebSocket\r\n" +
				"Connection: Upgrade\r\n" +
				"Sec-WebSocket-Origin: http://example.com\r\n" +
				"Sec-WebSocket-Location: ws://example.com/demo\r\n" +
				"\r\n" + htAnsEx2 + hixieOK + "\xff\x00",
		},
		{
			name: "hybi-07",
			d:    Hybi07,
			req:  handshakeRequest(Hybi07, "example.com", "/chat"),
			want: hybi101 + "\r\n" + hybiOK + hybiClose,
		},
		{
			name: "hybi-08 with subprotocol",
			d:    Hybi08,
			req:  handshakeRequest(Hybi08, "example.com", "/chat", "Sec-WebSocket-Protocol: chat, superchat"),
			want: hybi101 + "Sec-WebSocket-Protocol: superchat\r\n\r\n" + hybiOK + hybiClose,
		},
		{
			name: "RFC 6455",
			d:    RFC6455,
			req:  handshakeRequest(RFC6455, "example.com", "/chat"),
			want: hybi101 + "\r\n" + hybiOK + hybiClose,
		},
		{
			name: "RFC 6455 with subprotocol",
			d:    RFC6455,
			req:  handshakeRequest(RFC6455, "example.com", "/chat", "Sec-WebSocket-Protocol: chat, superchat"),
			want: hybi101 + "Sec-WebSocket-Protocol: superchat\r\n\r\n" + hybiOK + hybiClose,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv)
			c.write([]byte(tc.req))
			htExpectBytes(t, c, tc.want)
			switch {
			case tc.d.hybi():
				c.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
			case tc.d == Hixie76:
				c.write([]byte{0xFF, 0x00})
			}
			c.expectEOF() // and nothing more was sent
		})
	}
}

// The hixie Location is built from the request: lower-cased host, the port
// only when it is not 80, the path and query as sent.
func TestHixieLocationFromRequest(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: func(*Conn) {}})
	for _, tc := range []struct{ host, path, want string }{
		{"example.com", "/demo", "ws://example.com/demo"},
		{"EXAMPLE.com", "/Demo", "ws://example.com/Demo"},
		{"example.com:80", "/demo", "ws://example.com/demo"},
		{"example.com:8080", "/demo?a=1&b", "ws://example.com:8080/demo?a=1&b"},
		{"example.com", "/a%2Fb/c%20d?q=%41", "ws://example.com/a%2Fb/c%20d?q=%41"},
		{"127.0.0.1:9", "/", "ws://127.0.0.1:9/"},
	} {
		for _, d := range []Dialect{Hixie75, Hixie76} {
			c := dialRaw(t, srv)
			c.write([]byte(htRequest(d, tc.host, tc.path, "")))
			header := htUpgrade(t, c, d, htAnsEx1)
			field := map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}[d]
			if got := header.Get(field); got != tc.want {
				t.Errorf("%s Host %q, %s: %s %q, want %q", d, tc.host, tc.path, field, got, tc.want)
			}
			htAnswerClose(t, c, d)
		}
	}
}

func TestRFC6455RandomKeys(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: func(*Conn) {}})
	for range 10 {
		var raw [16]byte
		for i := range raw {
			raw[i] = byte(rand.Uint32())
		}
		key := base64.StdEncoding.EncodeToString(raw[:])
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		want := base64.StdEncoding.EncodeToString(sum[:])
		c := dialRaw(t, srv)
		c.write([]byte(htHead("GET / HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: 13")))
		if got := htUpgrade(t, c, RFC6455, "").Get("Sec-WebSocket-Accept"); got != want {
			t.Fatalf("key %s: accept %q, want %q", key, got, want)
		}
		htAnswerClose(t, c, RFC6455)
	}
}

// Browsers and proxies spelled the upgrade fields in many ways.
func TestUpgradeFieldSpellings(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: func(*Conn) {}})
	for _, fields := range [][2]string{
		{"Upgrade: websocket", "Connection: keep-alive, Upgrade"}, // Firefox
		{"Upgrade: WebSocket", "Connection: upgrade"},
		{"upgrade: WEBSOCKET", "connection: UPGRADE"},
	} {
		c := dialRaw(t, srv)
		c.write([]byte(htHead("GET / HTTP/1.1", "Host: example.com", fields[0], fields[1],
			"Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 13")))
		htUpgrade(t, c, RFC6455, "")
		htAnswerClose(t, c, RFC6455)
	}
}

// 2. hixie-76's key3: with the headers, later, split, never.

func TestHixie76Key3InSameWrite(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: echoMessages})
	c := dialRaw(t, srv)
	// Headers, key3 and a first message in a single write: the message
	// must not be lost in net/http's buffer.
	c.write([]byte(handshakeRequest(Hixie76, "example.com", "/demo") + "\x00first\xff"))
	htUpgrade(t, c, Hixie76, htAnsEx1)
	if _, msg := c.readMessage(Hixie76); string(msg) != "first" {
		t.Fatalf("first message echoed as %q", msg)
	}
	checkEcho(t, c, Hixie76, "second")
	htClientClose(t, c, Hixie76)
}

func TestRFC6455FirstFrameInHandshakeWrite(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: echoMessages})
	c := dialRaw(t, srv)
	c.write(append([]byte(htRFC("/")), clientFrame(true, 1, []byte("first"))...))
	htUpgrade(t, c, RFC6455, "")
	if _, msg := c.readMessage(RFC6455); string(msg) != "first" {
		t.Fatalf("first message echoed as %q", msg)
	}
	htClientClose(t, c, RFC6455)
}

func TestHixie76Key3Later(t *testing.T) {
	srv, _ := htServer(t, &Handler{Serve: echoMessages})
	c := dialRaw(t, srv)
	req := handshakeRequest(Hixie76, "example.com", "/demo")
	head, key3 := req[:len(req)-8], req[len(req)-8:]
	c.write([]byte(head))
	// No answer may go out before key3 has arrived.
	htExpectSilence(t, c, 50*time.Millisecond)
	c.write([]byte(key3[:3]))
	htExpectSilence(t, c, 30*time.Millisecond)
	c.write([]byte(key3[3:]))
	htUpgrade(t, c, Hixie76, htAnsEx1)
	checkEcho(t, c, Hixie76, "late but fine")
	htClientClose(t, c, Hixie76)
}

func TestHixie76Key3Timeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	for _, tc := range []struct {
		name string
		sent string // of key3
	}{
		{"no key3", ""},
		{"half of key3", htKey3Ex1[:4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, h := echoServer(t, func(h *Handler) { h.HandshakeTimeout = timeout })
			c := dialRaw(t, srv)
			req := handshakeRequest(Hixie76, "example.com", "/demo")
			start := time.Now()
			c.write([]byte(req[:len(req)-8] + tc.sent))
			rest, err := io.ReadAll(c.br)
			elapsed := time.Since(start)
			if err != nil || len(rest) != 0 {
				t.Fatalf("expected the connection dropped with nothing written, got %q, %v", rest, err)
			}
			if elapsed < timeout-20*time.Millisecond || elapsed > timeout+2*time.Second {
				t.Errorf("dropped after %v, HandshakeTimeout is %v", elapsed, timeout)
			}
			if s := h.Stats(); s.Refused != (Refusals{Timeout: 1}) || s.Accepted != 0 || s.Active != 0 {
				t.Errorf("stats %+v, want one timeout refusal", s)
			}
			dialDialect(t, srv, RFC6455, "/") // the server still serves
		})
	}
}

// A client that hangs up in the middle of key3 is not a timeout.
func TestHixie76Key3HangUp(t *testing.T) {
	srv, h := echoServer(t, nil)
	c := dialRaw(t, srv)
	req := handshakeRequest(Hixie76, "example.com", "/demo")
	c.write([]byte(req[:len(req)-4]))
	if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Fatalf("expected the connection dropped with nothing written, got %q, %v", rest, err)
	}
	htPoll(t, "the dropped handshake to be counted", func() bool { return h.Stats().Refused.BadHandshake == 1 })
	if s := h.Stats(); s.Refused != (Refusals{BadHandshake: 1}) || s.Accepted != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Keys made the way browsers made them, checked against this test's own MD5.
func TestHixie76RandomKeys(t *testing.T) {
	h := &Handler{Serve: func(*Conn) {}}
	srv, _ := htServer(t, h)
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1976))
	const n = 25
	for i := range n {
		key1, n1 := browserKey(r)
		key2, n2 := browserKey(r)
		key3 := make([]byte, 8)
		for j := range key3 {
			key3[j] = byte(r.Uint32())
		}
		want := md5Challenge(n1, n2, key3)
		c := dialRaw(t, srv)
		req := htHead("GET /random HTTP/1.1", "Host: example.com", "Upgrade: WebSocket", "Connection: Upgrade",
			"Sec-WebSocket-Key1: "+key1, "Sec-WebSocket-Key2: "+key2, "Origin: http://example.com")
		// Alternate key3 with the headers and key3 in a write of its own.
		if i%2 == 0 {
			c.write(append([]byte(req), key3...))
		} else {
			c.write([]byte(req))
			c.write(key3)
		}
		htUpgrade(t, c, Hixie76, string(want[:]))
		htAnswerClose(t, c, Hixie76)
	}
	if s := h.Stats(); s.Accepted != n || s.Refused != (Refusals{}) {
		t.Errorf("stats %+v", s)
	}
}

// The HandshakeTimeout deadline must not outlive the handshake.
func TestHandshakeTimeoutClearedAfterHandshake(t *testing.T) {
	const timeout = 100 * time.Millisecond
	srv, _ := echoServer(t, func(h *Handler) { h.HandshakeTimeout = timeout })
	clients := map[Dialect]*rawClient{}
	for _, d := range allDialects {
		clients[d] = dialDialect(t, srv, d, "/")
	}
	time.Sleep(timeout + 100*time.Millisecond) // idle past the handshake's deadline
	for _, d := range allDialects {
		checkEcho(t, clients[d], d, "still here")
		htClientClose(t, clients[d], d)
	}
}

// 3. Refusals: the right status, nothing hijacked, the server keeps serving.

func TestRefusals(t *testing.T) {
	hixie76 := func(key1, key2 string) string {
		lines := []string{"GET /chat HTTP/1.1", "Host: example.com", "Upgrade: WebSocket", "Connection: Upgrade", "Origin: http://example.com"}
		if key1 != "" {
			lines = append(lines, "Sec-WebSocket-Key1: "+key1)
		}
		if key2 != "" {
			lines = append(lines, "Sec-WebSocket-Key2: "+key2)
		}
		return htHead(lines...) + htKey3Ex1
	}
	hybi := func(method string, fields ...string) string {
		return htHead(append([]string{method + " /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Connection: Upgrade"}, fields...)...)
	}
	location := func(h *Handler) { h.Location = "ws://example.com/chat" }
	const evil = "http://evil.example"

	for _, tc := range []struct {
		name   string
		cfg    func(*Handler)
		req    string
		status int
		field  [2]string // a field the answer must carry
		want   Refusals
		// trailing reports whether bytes follow the request head (hixie-76's
		// key3), which then spoil the connection for a second request.
		trailing bool
	}{
		{name: "plain GET", req: htHead("GET /chat HTTP/1.1", "Host: example.com"), status: 400, want: Refusals{NotWebSocket: 1}},
		{name: "Upgrade without Connection", req: htHead("GET /chat HTTP/1.1", "Host: example.com", "Upgrade: websocket", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{NotWebSocket: 1}},
		{name: "Connection without Upgrade", req: htHead("GET /chat HTTP/1.1", "Host: example.com", "Connection: Upgrade", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{NotWebSocket: 1}},
		{name: "Upgrade h2c", req: htHead("GET /chat HTTP/1.1", "Host: example.com", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"), status: 400, want: Refusals{NotWebSocket: 1}},
		{name: "POST", req: hybi("POST", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 13", "Content-Length: 0"), status: 405, field: [2]string{"Allow", "GET"}, want: Refusals{BadHandshake: 1}},
		{name: "version 9", req: hybi("GET", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 9"), status: 426, field: [2]string{"Sec-WebSocket-Version", "13, 8, 7"}, want: Refusals{Version: 1}},
		{name: "version 14", req: hybi("GET", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 14"), status: 426, field: [2]string{"Sec-WebSocket-Version", "13, 8, 7"}, want: Refusals{Version: 1}},
		{name: "version 6", req: hybi("GET", "Sec-WebSocket-Key: "+htKey, "Sec-WebSocket-Version: 6"), status: 426, field: [2]string{"Sec-WebSocket-Version", "13, 8, 7"}, want: Refusals{Version: 1}},
		{name: "key without version", req: hybi("GET", "Sec-WebSocket-Key: "+htKey), status: 426, field: [2]string{"Sec-WebSocket-Version", "13, 8, 7"}, want: Refusals{Version: 1}},
		{name: "version without key", req: hybi("GET", "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{BadHandshake: 1}},
		{name: "key not base64", req: hybi("GET", "Sec-WebSocket-Key: not*base64*at*all!", "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{BadHandshake: 1}},
		{name: "key unpadded", req: hybi("GET", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ", "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{BadHandshake: 1}},
		{name: "key of 15 bytes", req: hybi("GET", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 15)), "Sec-WebSocket-Version: 13"), status: 400, want: Refusals{BadHandshake: 1}},
		{name: "key of 17 bytes", req: hybi("GET", "Sec-WebSocket-Key: "+base64.StdEncoding.EncodeToString(make([]byte, 17)), "Sec-WebSocket-Version: 8"), status: 400, want: Refusals{BadHandshake: 1}},
		{name: "hixie-76 key with no space", req: hixie76("4@146546xW%0l15", htKey2Ex1), status: 400, want: Refusals{BadHandshake: 1}, trailing: true},
		{name: "hixie-76 key not a multiple of its spaces", req: hixie76(htKey1Ex1, "12998 5 Y3 1  .P01"), status: 400, want: Refusals{BadHandshake: 1}, trailing: true},
		{name: "hixie-76 key over 4294967295", req: hixie76("4294 967 296", htKey2Ex1), status: 400, want: Refusals{BadHandshake: 1}, trailing: true},
		{name: "hixie-76 Key1 only", req: hixie76(htKey1Ex1, ""), status: 400, want: Refusals{BadHandshake: 1}, trailing: true},
		{name: "hixie-76 Key2 only", req: hixie76("", htKey2Ex1), status: 400, want: Refusals{BadHandshake: 1}, trailing: true},
		{name: "cross-origin hixie-75", req: htRequest(Hixie75, "example.com", "/chat", evil), status: 403, want: Refusals{Origin: 1}},
		{name: "cross-origin hixie-76", req: htRequest(Hixie76, "example.com", "/chat", evil), status: 403, want: Refusals{Origin: 1}, trailing: true},
		{name: "cross-origin hybi-07", req: htRequest(Hybi07, "example.com", "/chat", evil), status: 403, want: Refusals{Origin: 1}},
		{name: "cross-origin hybi-08", req: htRequest(Hybi08, "example.com", "/chat", evil), status: 403, want: Refusals{Origin: 1}},
		{name: "cross-origin RFC 6455", req: htRequest(RFC6455, "example.com", "/chat", evil), status: 403, want: Refusals{Origin: 1}},
		{name: "origin null", req: htRequest(RFC6455, "example.com", "/chat", "null"), status: 403, want: Refusals{Origin: 1}},
		{name: "origin of another port", req: htRequest(RFC6455, "example.com", "/chat", "http://example.com:8080"), status: 403, want: Refusals{Origin: 1}},
		{name: "Location other host", cfg: location, req: htRequest(RFC6455, "other.example", "/chat", ""), status: 400, want: Refusals{Location: 1}},
		{name: "Location other host hixie-75", cfg: location, req: htRequest(Hixie75, "other.example", "/chat", "http://other.example"), status: 400, want: Refusals{Location: 1}},
		{name: "Location other port", cfg: location, req: htRequest(RFC6455, "example.com:8080", "/chat", ""), status: 400, want: Refusals{Location: 1}},
		{name: "Location other path", cfg: location, req: htRequest(RFC6455, "example.com", "/other", ""), status: 404, want: Refusals{Location: 1}},
		{name: "Location other path hixie-76", cfg: location, req: htRequest(Hixie76, "example.com", "/chat/more?x", "http://example.com"), status: 404, want: Refusals{Location: 1}, trailing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Serve: echoMessages}
			if tc.cfg != nil {
				tc.cfg(h)
			}
			srv, _ := htServer(t, h)
			c := dialRaw(t, srv)
			c.write([]byte(tc.req))
			resp, body := htReadHTTP(t, c)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %s (%q), want %d", resp.Status, body, tc.status)
			}
			if tc.field[0] != "" && resp.Header.Get(tc.field[0]) != tc.field[1] {
				t.Errorf("%s: %q, want %q", tc.field[0], resp.Header.Get(tc.field[0]), tc.field[1])
			}
			for _, f := range []string{"Upgrade", "Sec-WebSocket-Accept", "Sec-WebSocket-Location", "WebSocket-Location"} {
				if v := resp.Header.Get(f); v != "" {
					t.Errorf("a refusal carries %s: %s", f, v)
				}
			}
			if s := h.Stats(); s.Refused != tc.want || s.Accepted != 0 || s.Active != 0 {
				t.Errorf("stats %+v, want refusals %+v", s, tc.want)
			}
			// Nothing was hijacked: the same connection carries a good
			// handshake, unless hixie-76's key3 is in the way.
			if tc.trailing {
				c = dialRaw(t, srv)
			}
			c.write([]byte(htRFC("/chat")))
			htUpgrade(t, c, RFC6455, "")
			checkEcho(t, c, RFC6455, "after the refusal")
			htClientClose(t, c, RFC6455)
			if s := h.Stats(); s.Refused != tc.want || s.Accepted != 1 {
				t.Errorf("stats after a good handshake %+v", s)
			}
		})
	}
}

func TestRefusedAfterShutdown(t *testing.T) {
	h := &Handler{Serve: echoMessages}
	srv, _ := htServer(t, h)
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown with no connection: %v", err)
	}
	c := dialRaw(t, srv)
	for _, d := range allDialects {
		// hixie-76 without its key3, so that the connection stays usable.
		req := htRequest(d, "example.com", "/chat", "http://example.com")
		req = strings.TrimSuffix(req, htKey3Ex1)
		c.write([]byte(req))
		if resp, body := htReadHTTP(t, c); resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("%s after Shutdown: %s %q", d, resp.Status, body)
		}
	}
	// A request that is no handshake is still answered as before.
	c.write([]byte(htHead("GET /chat HTTP/1.1", "Host: example.com")))
	if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET after Shutdown: %s", resp.Status)
	}
	if s := h.Stats(); s.Refused != (Refusals{ShuttingDown: uint64(len(allDialects)), NotWebSocket: 1}) || s.Accepted != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestFallback(t *testing.T) {
	var fallbackCalls atomic.Int32
	h := &Handler{
		Serve: echoMessages,
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fallbackCalls.Add(1)
			fmt.Fprintf(w, "fallback for %s", r.URL.Path)
		}),
	}
	srv, _ := htServer(t, h)
	c := dialRaw(t, srv)
	c.write([]byte(htHead("GET /page HTTP/1.1", "Host: example.com")))
	if resp, body := htReadHTTP(t, c); resp.StatusCode != 200 || body != "fallback for /page" {
		t.Fatalf("fallback answered %s %q", resp.Status, body)
	}
	// A handshake on the same connection goes to the WebSocket side.
	c.write([]byte(htRFC("/chat")))
	htUpgrade(t, c, RFC6455, "")
	checkEcho(t, c, RFC6455, "ws")
	htClientClose(t, c, RFC6455)
	// A handshake refused for its own reasons is not handed to the fallback.
	c = dialRaw(t, srv)
	c.write([]byte(htRequest(RFC6455, "example.com", "/chat", "http://evil.example")))
	if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin handshake with a Fallback: %s", resp.Status)
	}
	if n := fallbackCalls.Load(); n != 1 {
		t.Errorf("fallback called %d times, want 1", n)
	}
	if s := h.Stats(); s.Refused != (Refusals{Origin: 1}) || s.Accepted != 1 {
		t.Errorf("stats %+v (NotWebSocket is not counted when the fallback serves)", s)
	}
}

func TestNilServe(t *testing.T) {
	h := &Handler{}
	srv, _ := htServer(t, h)
	c := dialRaw(t, srv)
	for range 2 {
		c.write([]byte(htRFC("/")))
		if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("handshake with no Serve: %s", resp.Status)
		}
	}
	if s := h.Stats(); s.Accepted != 0 || s.Active != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Origin policies, for every dialect's origin field.
func TestOrigins(t *testing.T) {
	type try struct {
		host, origin string
		ok           bool
	}
	for _, tc := range []struct {
		name    string
		origins []string
		tries   []try
	}{
		{"same origin by default", nil, []try{
			{"example.com", "", true}, // not a browser
			{"example.com", "http://example.com", true},
			{"example.com", "https://example.com", true},
			{"example.com", "http://EXAMPLE.COM", true},
			{"example.com", "http://example.com:80", true},
			{"example.com:80", "http://example.com", true},
			{"example.com", "https://example.com:443", true},
			{"example.com:8080", "http://example.com:8080", true},
			{"example.com", "http://example.com:8080", false},
			{"example.com:8080", "http://example.com", false},
			{"example.com", "http://sub.example.com", false},
			{"example.com", "http://example.com.evil.example", false},
			{"example.com", "null", false},
			{"example.com", "garbage", false},
		}},
		{"exact origin", []string{"https://app.example.com"}, []try{
			{"example.com", "", true},
			{"example.com", "https://app.example.com", true},
			{"example.com", "https://APP.example.com", true},
			{"example.com", "https://app.example.com:443", true},
			{"example.com", "http://app.example.com", false},
			{"example.com", "https://app.example.com:8443", false},
			{"example.com", "http://example.com", false}, // the list replaces the same-origin default
			{"example.com", "null", false},
		}},
		{"host pattern", []string{"*.example.com"}, []try{
			{"example.com", "http://chat.example.com", true},
			{"example.com", "https://chat.example.com", true},
			{"example.com", "http://a.b.example.com", true},
			{"example.com", "http://example.com", false},
			{"example.com", "http://chat.example.com:8080", false},
			{"example.com", "http://chat.example.com.evil.example", false},
			{"example.com", "http://evil.example", false},
		}},
		{"host and port pattern", []string{"localhost:8080"}, []try{
			{"example.com", "http://localhost:8080", true},
			{"example.com", "http://localhost", false},
			{"example.com", "http://localhost:8081", false},
		}},
		{"any", []string{"*"}, []try{
			{"example.com", "http://evil.example", true},
			{"example.com", "null", true},
			{"example.com", "https://x.y:1", true},
		}},
		{"null allowed explicitly", []string{"null"}, []try{
			{"example.com", "null", true},
			{"example.com", "http://example.com", false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{Origins: tc.origins, Serve: func(*Conn) {}}
			srv, _ := htServer(t, h)
			var refused uint64
			for _, tr := range tc.tries {
				for _, d := range allDialects {
					c := dialRaw(t, srv)
					c.write([]byte(htRequest(d, tr.host, "/", tr.origin)))
					if tr.ok {
						status, _, raw := c.readResponse()
						if !strings.Contains(status, " 101 ") {
							t.Errorf("%s: Host %s, origin %q refused: %q", d, tr.host, tr.origin, raw)
							continue
						}
						if d == Hixie76 {
							htExpectBytes(t, c, htAnsEx1)
						}
						htAnswerClose(t, c, d)
						continue
					}
					refused++
					if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s: Host %s, origin %q: %s, want 403", d, tr.host, tr.origin, resp.Status)
					}
				}
			}
			if s := h.Stats(); s.Refused != (Refusals{Origin: refused}) {
				t.Errorf("stats %+v, want %d origin refusals", s, refused)
			}
		})
	}
}

// hybi-07 and -08 put the origin in Sec-WebSocket-Origin; RFC 6455 browsers
// in Origin. Each dialect is judged by its own field.
func TestOriginFieldPerDialect(t *testing.T) {
	h := &Handler{Serve: func(*Conn) {}}
	srv, _ := htServer(t, h)
	for _, tc := range []struct {
		d      Dialect
		fields []string
		status int
	}{
		{Hybi08, []string{"Sec-WebSocket-Origin: http://evil.example"}, 403},
		{Hybi07, []string{"Sec-WebSocket-Origin: http://evil.example", "Origin: http://example.com"}, 403},
		{Hybi08, []string{"Origin: http://evil.example"}, 403}, // no Sec-WebSocket-Origin: Origin is used
		{Hybi08, []string{"Sec-WebSocket-Origin: http://example.com"}, 101},
		{RFC6455, []string{"Origin: http://evil.example"}, 403},
	} {
		c := dialRaw(t, srv)
		c.write([]byte(htRequest(tc.d, "example.com", "/", "", tc.fields...)))
		resp, _ := htReadHTTP(t, c)
		if resp.StatusCode != tc.status {
			t.Errorf("%s with %q: %s, want %d", tc.d, tc.fields, resp.Status, tc.status)
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			htAnswerClose(t, c, tc.d)
		}
	}
}

func TestLocation(t *testing.T) {
	h := &Handler{Location: "ws://example.com/chat", Serve: func(*Conn) {}}
	srv, _ := htServer(t, h)
	accepted := 0
	for _, tc := range []struct {
		host, path, want string
	}{
		{"example.com", "/chat", "ws://example.com/chat"},
		{"example.com", "/chat?room=1&x", "ws://example.com/chat?room=1&x"},
		{"EXAMPLE.com:80", "/chat?room=2", "ws://example.com/chat?room=2"},
	} {
		for _, d := range allDialects {
			c := dialRaw(t, srv)
			c.write([]byte(htRequest(d, tc.host, tc.path, "http://example.com")))
			header := htUpgrade(t, c, d, htAnsEx1)
			accepted++
			field := map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}[d]
			if field != "" && header.Get(field) != tc.want {
				t.Errorf("%s Host %s %s: %s %q, want %q", d, tc.host, tc.path, field, header.Get(field), tc.want)
			}
			htAnswerClose(t, c, d)
		}
	}
	if s := h.Stats(); s.Accepted != uint64(accepted) || s.Refused != (Refusals{}) {
		t.Errorf("stats %+v", s)
	}
}

// A Location with no path names the resource "/" (RFC 6455 section 3).
func TestLocationWithoutPath(t *testing.T) {
	h := &Handler{Location: "ws://example.com", Serve: func(*Conn) {}}
	srv, _ := htServer(t, h)
	c := dialRaw(t, srv)
	c.write([]byte(htRequest(Hixie76, "example.com", "/", "http://example.com")))
	status, header, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("Location %q refused a request for /: %q", h.Location, raw)
	}
	if got := header.Get("Sec-WebSocket-Location"); got != "ws://example.com/" {
		t.Errorf("Sec-WebSocket-Location %q", got)
	}
}

// Behind a TLS terminator the request arrives over plain HTTP, yet the
// browser asked for wss:// and compares the hixie Location exactly
// (PROTOCOL.md). A configured wss:// Location is the only way the handler
// can know.
func TestLocationWSSBehindTLSTerminator(t *testing.T) {
	h := &Handler{Location: "wss://example.com/chat", Serve: func(*Conn) {}}
	srv, _ := htServer(t, h)
	for _, d := range []Dialect{Hixie75, Hixie76} {
		c := dialRaw(t, srv)
		c.write([]byte(htRequest(d, "example.com", "/chat?x=1", "https://example.com")))
		status, header, raw := c.readResponse()
		if !strings.Contains(status, " 101 ") {
			t.Errorf("%s for %s over a TLS terminator refused: %q", d, h.Location, raw)
			continue
		}
		field := map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}[d]
		if got := header.Get(field); got != "wss://example.com/chat?x=1" {
			t.Errorf("%s: %s %q, want wss://example.com/chat?x=1", d, field, got)
		}
	}
}

// Mounted under a prefix that a router strips (http.StripPrefix rewrites
// r.URL.Path, not r.RequestURI), the handler still answers the URL the
// client asked for: the configured Location is that public URL.
func TestLocationUnderStripPrefix(t *testing.T) {
	h := &Handler{Location: "ws://example.com/api/chat", Serve: func(c *Conn) { c.WriteText(c.Request().URL.Path) }}
	mux := http.NewServeMux()
	mux.Handle("/api/", http.StripPrefix("/api", h))
	srv, _ := htServer(t, mux)
	for _, d := range []Dialect{Hixie76, RFC6455} {
		c := dialRaw(t, srv)
		c.write([]byte(htRequest(d, "example.com", "/api/chat?x=1", "http://example.com")))
		status, header, raw := c.readResponse()
		if !strings.Contains(status, " 101 ") {
			t.Errorf("%s: Location %s refused a request for /api/chat under StripPrefix: %q", d, h.Location, raw)
			continue
		}
		if d == Hixie76 {
			htExpectBytes(t, c, htAnsEx1)
			if got := header.Get("Sec-WebSocket-Location"); got != "ws://example.com/api/chat?x=1" {
				t.Errorf("Sec-WebSocket-Location %q", got)
			}
		}
		if _, msg := c.readMessage(d); string(msg) != "/chat" {
			t.Errorf("%s: the callback saw path %q", d, msg)
		}
		htAnswerClose(t, c, d)
	}
	// Another path under the prefix is still refused.
	c := dialRaw(t, srv)
	c.write([]byte(htRequest(RFC6455, "example.com", "/api/other", "")))
	if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api/other: %s, want 404", resp.Status)
	}
}

// Over TLS the hixie Location says wss://, and the default port is 443.
func TestHixieLocationOverTLS(t *testing.T) {
	for _, tc := range []struct {
		location, host, path, want string
	}{
		{"", "example.com", "/demo?x=1", "wss://example.com/demo?x=1"},
		{"", "example.com:443", "/demo", "wss://example.com/demo"},
		{"", "example.com:8443", "/demo", "wss://example.com:8443/demo"},
		{"wss://example.com/chat", "example.com", "/chat?room=1", "wss://example.com/chat?room=1"},
	} {
		h := &Handler{Location: tc.location, Serve: func(*Conn) {}}
		srv := htTLSServer(t, h)
		for _, d := range []Dialect{Hixie75, Hixie76} {
			c := htDialTLS(t, srv)
			c.write([]byte(htRequest(d, tc.host, tc.path, "https://"+tc.host)))
			header := htUpgrade(t, c, d, htAnsEx1)
			field := map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}[d]
			if got := header.Get(field); got != tc.want {
				t.Errorf("%s over TLS, Location %q, Host %s: %s %q, want %q", d, tc.location, tc.host, field, got, tc.want)
			}
			htAnswerClose(t, c, d)
		}
	}
}

// A client that came over TLS asked for wss://. With a ws:// Location
// configured, the handler may refuse it (not this endpoint) but must not
// answer a hixie client with a ws:// Location, which the browser would
// reject after the 101.
func TestWSLocationOverTLS(t *testing.T) {
	h := &Handler{Location: "ws://example.com/chat", Serve: func(*Conn) {}}
	srv := htTLSServer(t, h)
	for _, d := range []Dialect{Hixie75, Hixie76} {
		c := htDialTLS(t, srv)
		c.write([]byte(htRequest(d, "example.com", "/chat", "https://example.com")))
		status, header, _ := c.readResponse()
		field := map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}[d]
		if strings.Contains(status, " 101 ") && !strings.HasPrefix(header.Get(field), "wss://") {
			t.Errorf("%s over TLS answered %s: %s", d, field, header.Get(field))
		}
	}
}

// 4. Subprotocols.

func TestSubprotocols(t *testing.T) {
	h := &Handler{
		Subprotocols: []string{"a", "b"},
		Serve:        func(c *Conn) { c.WriteText("protocol=" + c.Subprotocol()) },
	}
	srv, _ := htServer(t, h)
	for _, tc := range []struct {
		name   string
		d      Dialect
		fields []string
		want   string
	}{
		{"server preference", RFC6455, []string{"Sec-WebSocket-Protocol: b, a"}, "a"},
		{"offers on two lines", RFC6455, []string{"Sec-WebSocket-Protocol: c", "Sec-WebSocket-Protocol: b"}, "b"},
		{"one match", RFC6455, []string{"Sec-WebSocket-Protocol: x,b , y"}, "b"},
		{"none matching", RFC6455, []string{"Sec-WebSocket-Protocol: c, d"}, ""},
		{"case matters", RFC6455, []string{"Sec-WebSocket-Protocol: A"}, ""},
		{"none offered", RFC6455, nil, ""},
		{"hybi-08", Hybi08, []string{"Sec-WebSocket-Protocol: b, a"}, "a"},
		{"hybi-07", Hybi07, []string{"Sec-WebSocket-Protocol: b"}, "b"},
		{"hixie-76", Hixie76, []string{"Sec-WebSocket-Protocol: b"}, "b"},
		{"hixie-76 web-socket-js", Hixie76, []string{"Cookie: ", "WebSocket-Protocol: b"}, "b"},
		{"hixie-76 none matching", Hixie76, []string{"Sec-WebSocket-Protocol: c"}, ""},
		{"hixie-75", Hixie75, []string{"WebSocket-Protocol: a"}, "a"},
		{"hixie-75 none matching", Hixie75, []string{"WebSocket-Protocol: c"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, srv)
			c.write([]byte(htRequest(tc.d, "example.com", "/", "", tc.fields...)))
			_, header, raw := c.readResponse()
			if tc.d == Hixie76 {
				htExpectBytes(t, c, htAnsEx1)
			}
			answerField, otherField := "Sec-WebSocket-Protocol", "WebSocket-Protocol"
			if tc.d == Hixie75 {
				answerField, otherField = otherField, answerField
			}
			if vs := header.Values(answerField); (tc.want == "" && len(vs) != 0) || (tc.want != "" && (len(vs) != 1 || vs[0] != tc.want)) {
				t.Errorf("%s: %q, want %q in\n%s", answerField, vs, tc.want, raw)
			}
			if vs := header.Values(otherField); len(vs) != 0 {
				t.Errorf("%s answers with %s: %q", tc.d, otherField, vs)
			}
			if _, msg := c.readMessage(tc.d); string(msg) != "protocol="+tc.want {
				t.Errorf("Conn.Subprotocol: %q, want %q", msg, "protocol="+tc.want)
			}
			htAnswerClose(t, c, tc.d)
		})
	}
}

// 5. Conn accessors in the callback.

func TestConnAccessors(t *testing.T) {
	type seen struct {
		dialect              Dialect
		path, query          string
		remote, local, proto string
	}
	got := make(chan seen, 1)
	h := &Handler{Serve: func(c *Conn) {
		got <- seen{c.Dialect(), c.Request().URL.Path, c.Request().URL.RawQuery, c.RemoteAddr().String(), c.LocalAddr().String(), c.Subprotocol()}
		echoMessages(c)
	}}
	srv, _ := htServer(t, h)
	for _, d := range allDialects {
		c := dialDialect(t, srv, d, "/where/"+strings.ReplaceAll(d.String(), " ", "")+"?x=1")
		var s seen
		select {
		case s = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: Serve not called", d)
		}
		want := seen{d, "/where/" + strings.ReplaceAll(d.String(), " ", ""), "x=1", c.conn.LocalAddr().String(), c.conn.RemoteAddr().String(), ""}
		if s != want {
			t.Errorf("%s: the callback saw %+v, want %+v", d, s, want)
		}
		checkEcho(t, c, d, "hi")
		htClientClose(t, c, d)
	}
}

// 6. Shutdown.

func TestShutdownEveryDialect(t *testing.T) {
	var returned atomic.Int32
	h := &Handler{Serve: htCountingEcho(&returned)}
	srv, _ := htServer(t, h)
	clients := map[Dialect]*rawClient{}
	for _, d := range allDialects {
		clients[d] = dialDialect(t, srv, d, "/")
		checkEcho(t, clients[d], d, "before")
	}
	if s := h.Stats(); s.Active != len(allDialects) || s.Accepted != uint64(len(allDialects)) {
		t.Fatalf("stats before Shutdown %+v", s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutdown := make(chan error, 1)
	go func() { shutdown <- h.Shutdown(ctx) }()

	// Shutdown closes them all at once; each client answers its
	// dialect's close (the order of the answers does not matter).
	codes := make(map[Dialect]StatusCode)
	for _, d := range allDialects {
		if d == RFC6455 {
			select {
			case err := <-shutdown:
				t.Fatalf("Shutdown returned (%v) before every client answered its close", err)
			default:
			}
		}
		codes[d] = htAnswerClose(t, clients[d], d)
	}
	for d, want := range map[Dialect]StatusCode{Hixie75: StatusAbnormalClosure, Hixie76: StatusNoStatusRcvd, Hybi07: StatusGoingAway, Hybi08: StatusGoingAway, RFC6455: StatusGoingAway} {
		if codes[d] != want {
			t.Errorf("%s: closed with %v, want %v", d, codes[d], want)
		}
	}

	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the clients answered")
	}
	if n := returned.Load(); n != int32(len(allDialects)) {
		t.Errorf("Shutdown returned with %d of %d callbacks returned", n, len(allDialects))
	}
	if s := h.Stats(); s.Active != 0 {
		t.Errorf("Active %d after Shutdown", s.Active)
	}
	c := dialRaw(t, srv)
	c.write([]byte(htRFC("/")))
	if resp, _ := htReadHTTP(t, c); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake after Shutdown: %s", resp.Status)
	}
}

// Shutdown waits for the callbacks themselves, not only for the
// connections: a callback still busy after its connection closed holds it up.
// A second Shutdown is harmless.
func TestShutdownWaitsForCallbacks(t *testing.T) {
	release := make(chan struct{})
	readEnded := make(chan struct{})
	h := &Handler{Serve: func(c *Conn) {
		echoMessages(c)
		close(readEnded)
		<-release
	}}
	srv, _ := htServer(t, h)
	c := dialDialect(t, srv, RFC6455, "/")
	checkEcho(t, c, RFC6455, "x")
	shutdown := make(chan error, 1)
	go func() { shutdown <- h.Shutdown(context.Background()) }()
	if code := htAnswerClose(t, c, RFC6455); code != StatusGoingAway {
		t.Errorf("closed with %v", code)
	}
	select {
	case <-readEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("the callback's read did not end")
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a callback was still running", err)
	default:
	}
	close(release)
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return once the callback returned")
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
	if s := h.Stats(); s.Active != 0 || s.Accepted != 1 {
		t.Errorf("stats %+v", s)
	}
}

// A client that never answers the close holds Shutdown up for CloseTimeout
// at most, however many such clients there are.
func TestShutdownSilentClients(t *testing.T) {
	const closeTimeout = 300 * time.Millisecond
	var returned atomic.Int32
	h := &Handler{Serve: htCountingEcho(&returned), CloseTimeout: closeTimeout}
	srv, _ := htServer(t, h)
	dialects := []Dialect{RFC6455, Hybi08, Hixie76, RFC6455, Hixie76}
	var clients []*rawClient
	for _, d := range dialects {
		c := dialDialect(t, srv, d, "/")
		checkEcho(t, c, d, "ping")
		clients = append(clients, c)
	}
	start := time.Now()
	err := h.Shutdown(context.Background())
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if elapsed < closeTimeout-20*time.Millisecond || elapsed > closeTimeout+time.Second {
		t.Errorf("Shutdown took %v with CloseTimeout %v", elapsed, closeTimeout)
	}
	if n := returned.Load(); n != int32(len(dialects)) {
		t.Errorf("Shutdown returned with %d of %d callbacks returned", n, len(dialects))
	}
	if s := h.Stats(); s.Active != 0 {
		t.Errorf("Active %d after Shutdown", s.Active)
	}
	// Each got its close, then a TCP close.
	for i, d := range dialects {
		c := clients[i]
		if d.hybi() {
			f := c.readFrame()
			if f.op != 8 || len(f.payload) < 2 || StatusCode(int(f.payload[0])<<8|int(f.payload[1])) != StatusGoingAway {
				t.Errorf("%s: got opcode %d %q, want close 1001", d, f.op, f.payload)
			}
		} else {
			htExpectBytes(t, c, "\xff\x00")
		}
		c.expectEOF()
	}
}

func TestShutdownExpiredContext(t *testing.T) {
	var returned atomic.Int32
	h := &Handler{Serve: htCountingEcho(&returned), CloseTimeout: 30 * time.Second}
	srv, _ := htServer(t, h)
	var clients []*rawClient
	for _, d := range allDialects {
		c := dialDialect(t, srv, d, "/")
		checkEcho(t, c, d, "ping")
		clients = append(clients, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	err := h.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a cancelled context: %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Shutdown with a cancelled context took %v", elapsed)
	}
	// The connections are dropped, long before CloseTimeout: whatever close
	// got out first, the TCP connection ends.
	for i, d := range allDialects {
		c := clients[i]
		c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err := io.ReadAll(c.br)
		if isTimeout(err) {
			t.Errorf("%s: connection not dropped", d)
		}
	}
	htPoll(t, "the callbacks to return", func() bool { return returned.Load() == int32(len(allDialects)) })
	htPoll(t, "Active to reach 0", func() bool { return h.Stats().Active == 0 })
}

// htHijackSignal reports when the handler takes the connection over.
type htHijackSignal struct {
	http.ResponseWriter
	hijacked chan<- struct{}
}

func (w htHijackSignal) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	w.hijacked <- struct{}{}
	return conn, brw, err
}

// A hixie-76 handshake waiting for its key3 when Shutdown begins is not in
// the registry yet: Shutdown waits for it and closes it once it completes.
func TestShutdownDuringHixie76Handshake(t *testing.T) {
	var returned atomic.Int32
	h := &Handler{Serve: htCountingEcho(&returned)}
	hijacked := make(chan struct{}, 100)
	srv, _ := htServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(htHijackSignal{w, hijacked}, r)
	}))
	c := dialRaw(t, srv)
	req := handshakeRequest(Hixie76, "example.com", "/demo")
	c.write([]byte(req[:len(req)-8]))
	select {
	case <-hijacked:
	case <-time.After(5 * time.Second):
		t.Fatal("the handshake was not hijacked")
	}

	shutdown := make(chan error, 1)
	go func() { shutdown <- h.Shutdown(context.Background()) }()
	// Wait until Shutdown refuses new handshakes. A probe that slips in
	// before is accepted and then closed by Shutdown like the others.
	htPoll(t, "Shutdown to begin", func() bool {
		p := dialRaw(t, srv)
		defer p.conn.Close()
		p.write([]byte(htRequest(Hixie75, "example.com", "/probe", "")))
		status, _, _ := p.readResponse()
		return strings.Contains(status, " 503 ")
	})
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a handshake was in progress", err)
	default:
	}

	c.write([]byte(htKey3Ex1))
	htUpgrade(t, c, Hixie76, htAnsEx1)
	htAnswerClose(t, c, Hixie76)
	select {
	case err := <-shutdown:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	if s := h.Stats(); s.Active != 0 {
		t.Errorf("Active %d after Shutdown", s.Active)
	}
}

// 7. Logging.

func TestLogging(t *testing.T) {
	logBuf := &htBuffer{}
	h := &Handler{Serve: echoMessages, Logger: slog.New(slog.NewTextHandler(logBuf, nil))}
	srv, _ := htServer(t, h)

	linesWith := func(parts ...string) int {
		n := 0
	lines:
		for line := range strings.Lines(logBuf.String()) {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					continue lines
				}
			}
			n++
		}
		return n
	}

	c := dialDialect(t, srv, RFC6455, "/logged")
	addr := c.conn.LocalAddr().String()
	checkEcho(t, c, RFC6455, "x") // the callback runs, so the open was logged
	if linesWith(addr, "/logged", "RFC 6455", "level=INFO") == 0 {
		t.Errorf("no log line for the accepted connection of %s:\n%s", addr, logBuf)
	}
	before := linesWith(addr)
	htClientClose(t, c, RFC6455)
	htPoll(t, "a log line for the closed connection", func() bool { return linesWith(addr) > before })

	r := dialRaw(t, srv)
	r.write([]byte(htRequest(RFC6455, "example.com", "/refused", "http://evil.example")))
	if resp, _ := htReadHTTP(t, r); resp.StatusCode != 403 {
		t.Fatalf("cross-origin: %s", resp.Status)
	}
	if linesWith(r.conn.LocalAddr().String(), "/refused", "403") == 0 {
		t.Errorf("no log line for the refusal:\n%s", logBuf)
	}
}

// A nil Logger logs nothing and breaks nothing, on every path that logs.
func TestNilLogger(t *testing.T) {
	h := &Handler{Serve: func(c *Conn) {
		if c.Request().URL.Path == "/panic" {
			panic("boom")
		}
		echoMessages(c)
	}, HandshakeTimeout: 50 * time.Millisecond, Logger: nil}
	srv, _ := htServer(t, h)
	c := dialDialect(t, srv, RFC6455, "/")
	checkEcho(t, c, RFC6455, "x")
	htClientClose(t, c, RFC6455)
	p := dialDialect(t, srv, RFC6455, "/panic")
	if code := htAnswerClose(t, p, RFC6455); code != StatusInternalError {
		t.Errorf("panic closed with %v", code)
	}
	r := dialRaw(t, srv)
	r.write([]byte(htRequest(RFC6455, "example.com", "/", "http://evil.example")))
	if resp, _ := htReadHTTP(t, r); resp.StatusCode != 403 {
		t.Fatalf("cross-origin: %s", resp.Status)
	}
	k := dialRaw(t, srv)
	req := handshakeRequest(Hixie76, "example.com", "/")
	k.write([]byte(req[:len(req)-8]))
	k.expectEOF()
	live := dialDialect(t, srv, Hixie75, "/")
	checkEcho(t, live, Hixie75, "x")
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	live.expectEOF()
	if s := h.Stats(); s.Accepted != 3 || s.Refused != (Refusals{Origin: 1, Timeout: 1}) {
		t.Errorf("stats %+v", s)
	}
}

// 8. Counters.

func TestCounters(t *testing.T) {
	activeInCallback := make(chan int, 10)
	h := &Handler{}
	h.Serve = func(c *Conn) {
		activeInCallback <- h.Stats().Active
		echoMessages(c)
	}
	srv, _ := htServer(t, h)
	if s := h.Stats(); s != (Stats{}) {
		t.Fatalf("stats of a new handler %+v", s)
	}
	a := dialDialect(t, srv, RFC6455, "/")
	if n := <-activeInCallback; n != 1 {
		t.Errorf("Active in the first callback %d, want 1", n)
	}
	b := dialDialect(t, srv, Hixie76, "/")
	if n := <-activeInCallback; n != 2 {
		t.Errorf("Active in the second callback %d, want 2", n)
	}
	checkEcho(t, a, RFC6455, "a")
	checkEcho(t, b, Hixie76, "b")
	if s := h.Stats(); s.Accepted != 2 || s.Active != 2 {
		t.Errorf("stats with two connections %+v", s)
	}
	htClientClose(t, a, RFC6455)
	htPoll(t, "Active to drop to 1", func() bool { return h.Stats().Active == 1 })
	htClientClose(t, b, Hixie76)
	htPoll(t, "Active to drop to 0", func() bool { return h.Stats().Active == 0 })
	if s := h.Stats(); s.Accepted != 2 || s.Refused != (Refusals{}) {
		t.Errorf("stats after both closed %+v", s)
	}
	// A client that just vanishes is accounted for too.
	v := dialDialect(t, srv, RFC6455, "/")
	<-activeInCallback
	v.conn.Close()
	htPoll(t, "Active to drop to 0 after a client vanished", func() bool { return h.Stats().Active == 0 })
	if s := h.Stats(); s.Accepted != 3 {
		t.Errorf("Accepted %d, want 3", s.Accepted)
	}
}

// 9. A panicking callback.

func TestServePanics(t *testing.T) {
	h := &Handler{Serve: func(c *Conn) {
		if strings.HasPrefix(c.Request().URL.Path, "/panic") {
			panic("boom")
		}
		echoMessages(c)
	}}
	srv, _ := htServer(t, h)
	for _, tc := range []struct {
		d    Dialect
		want StatusCode
	}{
		{RFC6455, StatusInternalError},
		{Hybi08, StatusInternalError},
		{Hybi07, StatusInternalError},
		{Hixie76, StatusNoStatusRcvd},
		{Hixie75, StatusAbnormalClosure},
	} {
		c := dialDialect(t, srv, tc.d, "/panic")
		if code := htAnswerClose(t, c, tc.d); code != tc.want {
			t.Errorf("%s: a panic closed with %v, want %v", tc.d, code, tc.want)
		}
	}
	htPoll(t, "the panicked connections to leave the registry", func() bool { return h.Stats().Active == 0 })
	// The server keeps serving.
	c := dialDialect(t, srv, RFC6455, "/echo")
	checkEcho(t, c, RFC6455, "still serving")
	if s := h.Stats(); s.Active != 1 || s.Accepted != 6 {
		t.Errorf("stats %+v", s)
	}
	htClientClose(t, c, RFC6455)
}

// htTLSServer serves h over TLS, with net/http's own log discarded.
func htTLSServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// htDialTLS connects a raw client to srv over TLS.
func htDialTLS(t *testing.T, srv *httptest.Server) *rawClient {
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// Conn.Request keeps what the application may want of the handshake
// request (headers, query, path values, context values) and drops the
// headers of the handshake itself.
func TestRequestKept(t *testing.T) {
	type ctxKey struct{}
	got := make(chan *http.Request, 1)
	mux := http.NewServeMux()
	mux.Handle("GET /rooms/{room}", &Handler{Serve: func(c *Conn) { got <- c.Request() }})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "user 7")))
	}))
	defer srv.Close()
	c := dialRaw(t, srv)
	c.write([]byte(handshakeRequest(RFC6455, srv.Listener.Addr().String(), "/rooms/42?since=9",
		"X-Token: abc", "Cookie: s=1", "Sec-WebSocket-Protocol: chat")))
	if status, _, raw := c.readResponse(); !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake: %q", raw)
	}
	r := <-got
	for name, want := range map[string]string{"X-Token": "abc", "Cookie": "s=1", "Origin": "http://" + srv.Listener.Addr().String(), "Sec-WebSocket-Protocol": "chat"} {
		if v := r.Header.Get(name); v != want {
			t.Errorf("header %s: %q, want %q", name, v, want)
		}
	}
	for _, name := range []string{"Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version"} {
		if v, ok := r.Header[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("header %s kept: %q", name, v)
		}
	}
	if r.URL.Path != "/rooms/42" || r.URL.Query().Get("since") != "9" || r.PathValue("room") != "42" {
		t.Errorf("URL %v, path value %q", r.URL, r.PathValue("room"))
	}
	if v := r.Context().Value(ctxKey{}); v != "user 7" {
		t.Errorf("context value %v", v)
	}
	if r.Method != http.MethodGet || r.Host != srv.Listener.Addr().String() || r.RemoteAddr == "" || r.Body != http.NoBody {
		t.Errorf("method %q host %q remote %q body %v", r.Method, r.Host, r.RemoteAddr, r.Body)
	}
}

// ReleaseRequest: what Serve took from the request before stays, Request
// is nil afterwards, a Context made before carries the request's values,
// and the close is still logged with the client's address.
func TestReleaseRequest(t *testing.T) {
	type ctxKey struct{}
	logBuf := &htBuffer{}
	got := make(chan string, 1)
	mux := http.NewServeMux()
	mux.Handle("GET /rooms/{room}", &Handler{Logger: slog.New(slog.NewTextHandler(logBuf, nil)), Serve: func(c *Conn) {
		room := c.Request().PathValue("room")
		ctx := c.Context()
		c.ReleaseRequest()
		got <- fmt.Sprint(room, " ", c.Request() == nil, " ", ctx.Value(ctxKey{}))
		echoMessages(c)
	}})
	srv, _ := htServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, "user 7")))
	}))
	c := dialDialect(t, srv, RFC6455, "/rooms/42")
	if s := <-got; s != "42 true user 7" {
		t.Errorf("room, released, context value: %q, want %q", s, "42 true user 7")
	}
	checkEcho(t, c, RFC6455, "after the release")
	addr := c.conn.LocalAddr().String()
	htClientClose(t, c, RFC6455)
	htPoll(t, "the close logged with the client's address", func() bool {
		for line := range strings.Lines(logBuf.String()) {
			if strings.Contains(line, "connection closed") && strings.Contains(line, "remote="+addr) {
				return true
			}
		}
		return false
	})
}
