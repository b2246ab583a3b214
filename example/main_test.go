package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hybi/websocket"
)

// testTimeout bounds every connection and request of a test.
const testTimeout = 10 * time.Second

// startServer serves the app on a test server that, with the app's
// WebSocket endpoints, is shut down when the test ends.
func startServer(t *testing.T, cfg config) (*httptest.Server, func(context.Context) error) {
	t.Helper()
	cfg.logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	handler, shutdown := newServer(cfg)
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv, shutdown
}

// client is a minimal WebSocket client on a raw TCP connection, written from
// the drafts and RFC 6455 rather than from the server's code.
type client struct {
	t       *testing.T
	conn    net.Conn
	br      *bufio.Reader
	dialect websocket.Dialect
}

// handshakeRequest is a handshake of dialect d for path, from origin (none
// if empty), using the worked examples of hixie-76 and RFC 6455.
func handshakeRequest(d websocket.Dialect, host, path, origin string) string {
	fields := []string{"GET " + path + " HTTP/1.1", "Host: " + host}
	originField := "Origin"
	switch d {
	case websocket.Hixie75, websocket.Hixie76:
		fields = append(fields, "Upgrade: WebSocket", "Connection: Upgrade")
		if d == websocket.Hixie76 {
			fields = append(fields, "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5", "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00")
		}
	default:
		version := map[websocket.Dialect]string{websocket.Hybi07: "7", websocket.Hybi08: "8", websocket.RFC6455: "13"}[d]
		fields = append(fields, "Upgrade: websocket", "Connection: Upgrade",
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: "+version)
		if d != websocket.RFC6455 {
			originField = "Sec-WebSocket-Origin"
		}
	}
	if origin != "" {
		fields = append(fields, originField+": "+origin)
	}
	req := strings.Join(fields, "\r\n") + "\r\n\r\n"
	if d == websocket.Hixie76 {
		req += "^n:ds[4U" // key3
	}
	return req
}

// handshake connects to srv, sends a handshake and returns the response.
func handshake(t *testing.T, srv *httptest.Server, d websocket.Dialect, path, origin string) (*client, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(testTimeout))
	c := &client{t: t, conn: conn, br: bufio.NewReader(conn), dialect: d}
	c.write([]byte(handshakeRequest(d, srv.Listener.Addr().String(), path, origin)))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("%s handshake: %v", d, err)
	}
	return c, resp
}

// dial completes a handshake of dialect d for path, from srv's own origin.
func dial(t *testing.T, srv *httptest.Server, d websocket.Dialect, path string) *client {
	t.Helper()
	c, resp := handshake(t, srv, d, path, srv.URL)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%s handshake on %s: %s", d, path, resp.Status)
	}
	switch d {
	case websocket.Hixie76:
		answer := make([]byte, 16)
		if _, err := io.ReadFull(c.br, answer); err != nil {
			t.Fatal(err)
		}
		if string(answer) != "8jKS'y:G*Co,Wxa-" {
			t.Fatalf("hixie-76 answer %q", answer)
		}
	case websocket.Hybi07, websocket.Hybi08, websocket.RFC6455:
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Fatalf("Sec-WebSocket-Accept %q", got)
		}
	}
	return c
}

func (c *client) hixie() bool {
	return c.dialect == websocket.Hixie75 || c.dialect == websocket.Hixie76
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// send writes a masked RFC 6455 frame of opcode op or, in the hixie
// dialects, the text frame 0x00 <payload> 0xFF.
func (c *client) send(op byte, payload []byte) {
	c.t.Helper()
	c.write(c.frame(op, payload))
}

// frame is what send writes.
func (c *client) frame(op byte, payload []byte) []byte {
	if c.hixie() {
		return append(append([]byte{0x00}, payload...), 0xFF)
	}
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b = append(b, mask[:]...)
	for i, x := range payload {
		b = append(b, x^mask[i%4])
	}
	return b
}

// read reads one frame and returns its opcode and payload; hixie text
// frames read as opcode 1 and hixie-76's closing 0xFF 0x00 as 8.
func (c *client) read() (op byte, payload []byte) {
	c.t.Helper()
	op, payload, err := c.tryRead()
	if err != nil {
		c.t.Fatalf("%s: %v", c.dialect, err)
	}
	return op, payload
}

// tryRead is read that returns what went wrong rather than failing the
// test, for a client read on a goroutine of its own.
func (c *client) tryRead() (op byte, payload []byte, err error) {
	if c.hixie() {
		b, err := c.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		switch b {
		case 0x00:
			p, err := c.br.ReadBytes(0xFF)
			if err != nil {
				return 0, nil, err
			}
			return 1, p[:len(p)-1], nil
		case 0xFF:
			if b, err := c.br.ReadByte(); err != nil || b != 0x00 {
				return 0, nil, fmt.Errorf("0xFF followed by %#x, %v", b, err)
			}
			return 8, nil, nil
		default:
			return 0, nil, fmt.Errorf("unexpected hixie frame type %#x", b)
		}
	}
	h, err := c.tryReadN(2)
	if err != nil {
		return 0, nil, err
	}
	if h[0]&0x70 != 0 || h[1]&0x80 != 0 || h[0]&0x80 == 0 {
		return 0, nil, fmt.Errorf("server frame with reserved bits, a mask or no FIN: % x", h)
	}
	n := uint64(h[1] & 0x7F)
	var ext []byte
	switch n {
	case 126:
		ext, err = c.tryReadN(2)
		if err == nil {
			n = uint64(binary.BigEndian.Uint16(ext))
		}
	case 127:
		ext, err = c.tryReadN(8)
		if err == nil {
			n = binary.BigEndian.Uint64(ext)
		}
	}
	if err != nil {
		return 0, nil, err
	}
	payload, err = c.tryReadN(int(n))
	return h[0] & 0x0F, payload, err
}

func (c *client) tryReadN(n int) ([]byte, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(c.br, b)
	return b, err
}

func (c *client) readText() string {
	c.t.Helper()
	op, p := c.read()
	if op != 1 {
		c.t.Fatalf("got opcode %d, want a text frame", op)
	}
	return string(p)
}

// expectEOF checks that the server has closed the TCP connection.
func (c *client) expectEOF() {
	c.t.Helper()
	if b, err := c.br.ReadByte(); err != io.EOF {
		c.t.Fatalf("want EOF, got %#x, %v", b, err)
	}
}

func closePayload(code websocket.StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := (&http.Client{Timeout: testTimeout}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestPage(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Second})
	resp, body := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, id := range []string{"url", "connect", "disconnect", "message", "send", "log"} {
		if !bytes.Contains(body, []byte(`id="`+id+`"`)) {
			t.Errorf("page has no element with id %q", id)
		}
	}
	if !bytes.Contains(body, []byte("window.ws")) {
		t.Error("page does not expose window.ws")
	}
	if u := regexp.MustCompile(`https?://[^\s"'<>]*`).Find(body); u != nil {
		t.Errorf("page refers to an external resource: %s", u)
	}
}

func TestTestEndpoint(t *testing.T) {
	srv, _ := startServer(t, config{interval: 50 * time.Millisecond})
	for _, d := range []websocket.Dialect{websocket.RFC6455, websocket.Hybi08, websocket.Hixie76, websocket.Hixie75} {
		t.Run(d.String(), func(t *testing.T) {
			c := dial(t, srv, d, "/test")
			if got := c.readText(); got != greeting {
				t.Fatalf("first message %q, want the greeting", got)
			}
			c.send(1, []byte("Hi there!"))
			echoed, times := false, 0
			for !echoed || times < 2 {
				msg := c.readText()
				if msg == "Hi there!" {
					echoed = true
					continue
				}
				s, ok := strings.CutPrefix(msg, "Time at the server: ")
				tm, err := time.Parse(time.RFC1123, s)
				if !ok || err != nil || websocket.ServerTime(tm) != msg {
					t.Fatalf("unexpected message %q (%v)", msg, err)
				}
				times++
			}
		})
	}
}

func TestEcho(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Second})
	for _, d := range []websocket.Dialect{websocket.RFC6455, websocket.Hybi08, websocket.Hybi07, websocket.Hixie76, websocket.Hixie75} {
		t.Run(d.String(), func(t *testing.T) {
			c := dial(t, srv, d, "/echo")
			for _, msg := range []string{"Hello, wörld! ☺", ""} {
				c.send(1, []byte(msg))
				if got := c.readText(); got != msg {
					t.Errorf("echo of %q: %q", msg, got)
				}
			}
			switch d {
			case websocket.Hixie75: // no closing handshake
			case websocket.Hixie76:
				c.write([]byte{0xFF, 0x00})
				if op, _ := c.read(); op != 8 {
					t.Fatalf("answer to the close: opcode %d", op)
				}
				c.expectEOF()
			default:
				// Over the default read limit of 1 MiB, under /echo's 64 MiB.
				big := make([]byte, 2<<20+1)
				for i := range big {
					big[i] = byte(i)
				}
				c.send(2, big)
				if op, p := c.read(); op != 2 || !bytes.Equal(p, big) {
					t.Errorf("echo of %d binary bytes: opcode %d, %d bytes", len(big), op, len(p))
				}
				c.send(8, closePayload(websocket.StatusNormalClosure, "bye"))
				if op, p := c.read(); op != 8 || !bytes.HasPrefix(p, closePayload(websocket.StatusNormalClosure, "")) {
					t.Fatalf("answer to the close: opcode %d, payload % x", op, p)
				}
				c.expectEOF()
			}
		})
	}
}

func TestFlags(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	addr, cfg, err := parseFlags(nil, logger)
	if err != nil || addr != ":8080" || cfg.interval != 10*time.Second || len(cfg.origins) != 0 || cfg.logger != logger {
		t.Errorf("defaults: %q, %+v, %v", addr, cfg, err)
	}
	addr, cfg, err = parseFlags([]string{"-addr", "127.0.0.1:0", "-interval", "50ms", "-log=false"}, logger)
	if err != nil || addr != "127.0.0.1:0" || cfg.interval != 50*time.Millisecond || cfg.logger != nil {
		t.Errorf("-addr, -interval, -log=false: %q, %+v, %v", addr, cfg, err)
	}
	if _, _, err := parseFlags([]string{"-interval", "0s"}, logger); err == nil {
		t.Error("-interval 0s accepted")
	}
	_, cfg, err = parseFlags([]string{"-tls-cert", "c.pem", "-tls-key", "k.pem"}, logger)
	if err != nil || cfg.certFile != "c.pem" || cfg.keyFile != "k.pem" || cfg.selfSigned {
		t.Errorf("-tls-cert, -tls-key: %+v, %v", cfg, err)
	}
	if _, cfg, err = parseFlags([]string{"-tls-self-signed"}, logger); err != nil || !cfg.selfSigned {
		t.Errorf("-tls-self-signed: %+v, %v", cfg, err)
	}
	for _, args := range [][]string{{"-tls-cert", "c.pem"}, {"-tls-key", "k.pem"}, {"-tls-self-signed", "-tls-cert", "c.pem", "-tls-key", "k.pem"}} {
		if _, _, err := parseFlags(args, logger); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// /status?page=ID tells, once, which HTTP version carried the handshake
// that a page named ID.
func TestStatusPage(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Hour})
	dial(t, srv, websocket.RFC6455, "/echo?page=abc")
	for i, want := range []string{`{"http":"HTTP/1.1"}`, `{"http":""}`} {
		if _, body := get(t, srv.URL+"/status?page=abc"); strings.TrimSpace(string(body)) != want {
			t.Errorf("GET %d: %s, want %s", i+1, body, want)
		}
	}
}

func TestOrigin(t *testing.T) {
	for _, tc := range []struct {
		origins string // the -origins flag
		want    int
	}{
		{"", http.StatusForbidden},
		{"http://good.example", http.StatusForbidden},
		{"http://good.example, http://evil.example", http.StatusSwitchingProtocols},
		{"*.example", http.StatusSwitchingProtocols},
	} {
		t.Run("-origins="+tc.origins, func(t *testing.T) {
			_, cfg, err := parseFlags([]string{"-origins", tc.origins}, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv, _ := startServer(t, cfg)
			for _, d := range []websocket.Dialect{websocket.RFC6455, websocket.Hybi08, websocket.Hixie76, websocket.Hixie75} {
				for _, path := range []string{"/test", "/echo", "/chat"} {
					if _, resp := handshake(t, srv, d, path, "http://evil.example"); resp.StatusCode != tc.want {
						t.Errorf("%s on %s from http://evil.example: %s, want %d", d, path, resp.Status, tc.want)
					}
				}
			}
		})
	}
}

func TestStatus(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Second})
	c := dial(t, srv, websocket.RFC6455, "/echo")
	c.send(1, []byte("x"))
	c.readText()
	handshake(t, srv, websocket.RFC6455, "/test", "http://evil.example")

	stats := status(t, srv)
	if s := stats["/echo"]; s.Accepted != 1 || s.Active != 1 || s.Group != nil {
		t.Errorf("/echo stats %+v, group %+v: want 1 accepted and active, no group", s.Stats, s.Group)
	}
	if s := stats["/test"]; s.Accepted != 0 || s.Refused.Origin != 1 || s.Group == nil || *s.Group != (websocket.GroupStats{}) {
		t.Errorf("/test stats %+v, group %+v: want 1 refused for its origin, an empty group", s.Stats, s.Group)
	}
	if s, ok := stats["/chat"]; !ok || s.Accepted != 0 || s.Group == nil || *s.Group != (websocket.GroupStats{}) {
		t.Errorf("/chat stats %+v, group %+v (present: %v): want present, none accepted, an empty group", s.Stats, s.Group, ok)
	}
}

func TestShutdown(t *testing.T) {
	srv, shutdown := startServer(t, config{interval: time.Hour})
	hybi := dial(t, srv, websocket.RFC6455, "/test")
	hixie := dial(t, srv, websocket.Hixie76, "/test")
	for _, c := range []*client{hybi, hixie} {
		if got := c.readText(); got != greeting {
			t.Fatalf("%s: first message %q", c.dialect, got)
		}
	}

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		done <- shutdown(ctx)
	}()
	if op, p := hybi.read(); op != 8 || !bytes.HasPrefix(p, closePayload(websocket.StatusGoingAway, "")) {
		t.Fatalf("RFC 6455: got opcode %d, payload % x, want a close with 1001", op, p)
	}
	hybi.send(8, closePayload(websocket.StatusGoingAway, ""))
	if op, _ := hixie.read(); op != 8 {
		t.Fatalf("hixie-76: got opcode %d, want the close", op)
	}
	hixie.write([]byte{0xFF, 0x00})
	hybi.expectEOF()
	hixie.expectEOF()
	// Shutdown stops the ticker and waits for serveTest.
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, resp := handshake(t, srv, websocket.RFC6455, "/echo", ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("handshake after shutdown: %s", resp.Status)
	}
}

// expectText reads a message that must be want.
func (c *client) expectText(want string) {
	c.t.Helper()
	if got := c.readText(); got != want {
		c.t.Fatalf("%s: got %q, want %q", c.dialect, got, want)
	}
}

// TestChat puts an RFC 6455 client and a hixie-76 client in /chat: each is
// welcomed, sees the other join, receives its own and the other's messages
// with the sender's name, and sees the other leave.
func TestChat(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Hour})
	a := dial(t, srv, websocket.RFC6455, "/chat")
	a.expectText("Welcome to the chat, user 1! 0 other(s) here.")
	a.expectText("user 1 joined")
	b := dial(t, srv, websocket.Hixie76, "/chat")
	b.expectText("Welcome to the chat, user 2! 1 other(s) here.")
	b.expectText("user 2 joined")
	a.expectText("user 2 joined")

	a.send(1, []byte("Hello from RFC 6455 ✓"))
	for _, c := range []*client{a, b} {
		c.expectText("user 1: Hello from RFC 6455 ✓")
	}
	b.send(1, []byte("And hello from hixie-76, κόσμε"))
	for _, c := range []*client{a, b} {
		c.expectText("user 2: And hello from hixie-76, κόσμε")
	}
	// Binary cannot reach hixie members: everyone is told of it instead.
	a.send(2, []byte{0, 1, 2})
	for _, c := range []*client{a, b} {
		c.expectText("user 1 sent 3 bytes of binary data")
	}

	// b leaves with hixie-76's close; a is told.
	b.write([]byte{0xFF, 0x00})
	if op, _ := b.read(); op != 8 {
		t.Fatalf("hixie-76: opcode %d, want the answer to the close", op)
	}
	b.expectEOF()
	a.expectText("user 2 left")
	a.send(8, closePayload(websocket.StatusNormalClosure, ""))
	if op, _ := a.read(); op != 8 {
		t.Fatalf("RFC 6455: opcode %d, want the answer to the close", op)
	}
	a.expectEOF()
}

// TestChatManyDialects puts one client of each dialect in /chat and has
// each send a line: every client receives every line, in the same order.
func TestChatManyDialects(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Hour})
	dialects := []websocket.Dialect{websocket.Hixie75, websocket.Hixie76, websocket.Hybi07, websocket.Hybi08, websocket.RFC6455}
	var clients []*client
	for i, d := range dialects {
		c := dial(t, srv, d, "/chat")
		c.expectText(fmt.Sprintf("Welcome to the chat, user %d! %d other(s) here.", i+1, i))
		for _, member := range append(clients, c) {
			member.expectText(fmt.Sprintf("user %d joined", i+1))
		}
		clients = append(clients, c)
	}
	for i, c := range clients {
		c.send(1, []byte("line from "+c.dialect.String()))
		for _, member := range clients {
			member.expectText(fmt.Sprintf("user %d: line from %s", i+1, c.dialect))
		}
	}
}

// TestTestPushOneTimer checks that /test's time push comes from one timer
// for all its clients: two clients that connected half an interval apart
// receive each push at the same moment, with the same text. (With a ticker
// per connection, their pushes would come half an interval apart.)
func TestTestPushOneTimer(t *testing.T) {
	const interval = 300 * time.Millisecond
	srv, _ := startServer(t, config{interval: interval})
	a := dial(t, srv, websocket.RFC6455, "/test")
	a.expectText(greeting)
	time.Sleep(interval / 2)
	b := dial(t, srv, websocket.Hixie75, "/test")
	b.expectText(greeting)

	type push struct {
		text string
		at   time.Time
	}
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	receive := func(c *client) <-chan push {
		ch := make(chan push)
		go func() {
			for {
				op, p, err := c.tryRead()
				if err != nil || op != 1 {
					return
				}
				select {
				case ch <- push{string(p), time.Now()}:
				case <-done:
					return
				}
			}
		}()
		return ch
	}
	fromA, fromB := receive(a), receive(b)
	var pushesA, pushesB []push
	deadline := time.After(3*interval + interval/2)
collect:
	for {
		select {
		case p := <-fromA:
			pushesA = append(pushesA, p)
		case p := <-fromB:
			pushesB = append(pushesB, p)
		case <-deadline:
			break collect
		}
	}
	// The twins of b's last pushes may reach a just after the window: wait
	// for them as long as a twin may lag.
	grace := time.After(interval / 4)
wait:
	for {
		select {
		case p := <-fromA:
			pushesA = append(pushesA, p)
		case <-grace:
			break wait
		}
	}
	if len(pushesB) < 2 {
		t.Fatalf("b received %d pushes in %v", len(pushesB), 3*interval+interval/2)
	}
	for _, pb := range pushesB {
		if _, err := time.Parse(time.RFC1123, strings.TrimPrefix(pb.text, "Time at the server: ")); err != nil {
			t.Errorf("push %q: %v", pb.text, err)
		}
		var nearest time.Duration = time.Hour
		matched := false
		for _, pa := range pushesA {
			d := pa.at.Sub(pb.at).Abs()
			nearest = min(nearest, d)
			if d < interval/4 && pa.text == pb.text {
				matched = true
			}
		}
		if !matched {
			t.Errorf("b's push %q has no twin at a: the nearest push at a came %v apart", pb.text, nearest)
		}
	}
	t.Logf("a received %d pushes, b %d", len(pushesA), len(pushesB))
}

// status returns /status.
func status(t *testing.T, srv *httptest.Server) map[string]endpointStats {
	t.Helper()
	resp, body := get(t, srv.URL+"/status")
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || ct != "application/json" {
		t.Fatalf("GET /status: %s, Content-Type %q", resp.Status, ct)
	}
	var stats map[string]endpointStats
	if err := json.Unmarshal(body, &stats); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
	return stats
}

// chatLine is line j of member i in a busy room: of 30 to 70 bytes, some
// of them multi-byte.
func chatLine(i, j int) string {
	return fmt.Sprintf("line %d from member %d, κόσμε %s", j, i, strings.Repeat("-", i%40))
}

// sendBursts sends c's lines as member i of a busy room, in bursts of 4
// lines 400 ms apart (some 2 s in all), and returns what went wrong. The
// members' bursts start 20 ms apart, 20 at a time.
func sendBursts(c *client, i, lines int) error {
	time.Sleep(time.Duration(i%20) * 20 * time.Millisecond)
	for j := range lines {
		if j > 0 && j%4 == 0 {
			time.Sleep(400 * time.Millisecond)
		}
		if _, err := c.conn.Write(c.frame(1, []byte(chatLine(i, j)))); err != nil {
			return fmt.Errorf("member %d sending line %d: %w", i, j, err)
		}
	}
	return nil
}

// TestChatBusyRoom is a busy /chat, with the example's logging on: 200
// members of every dialect, each sending 20 lines in bursts over some 2 s,
// every member reading. Each member gets every line exactly once, in order
// per sender, and none is disconnected: /status shows all 200 open and no
// member disconnected or skipped by the room.
func TestChatBusyRoom(t *testing.T) {
	const members, lines = 200, 20
	srv, _ := startServer(t, config{interval: time.Hour})
	dialects := []websocket.Dialect{websocket.Hixie75, websocket.Hixie76, websocket.Hybi07, websocket.Hybi08, websocket.RFC6455}
	clients := make([]*client, members)
	for i := range clients {
		c := dial(t, srv, dialects[i%len(dialects)], "/chat")
		c.expectText(fmt.Sprintf("Welcome to the chat, user %d! %d other(s) here.", i+1, i))
		c.expectText(fmt.Sprintf("user %d joined", i+1))
		clients[i] = c
	}
	deadline := time.Now().Add(time.Minute) // bounds every read and write below: some 10 s under -race
	for _, c := range clients {
		c.conn.SetDeadline(deadline)
	}

	// Each reader reports on had once it had every line, then on ended
	// once it had the last message, "user 1: done", which comes after them.
	had, ended := make(chan error, members), make(chan error, members)
	want := make([][]string, members) // by sender: its lines as relayed
	for i := range want {
		for j := range lines {
			want[i] = append(want[i], fmt.Sprintf("user %d: %s", i+1, chatLine(i, j)))
		}
	}
	for i, c := range clients {
		go func() {
			fail := func(format string, args ...any) {
				had <- fmt.Errorf("member %d (%s): %s", i, c.dialect, fmt.Sprintf(format, args...))
			}
			next := make([]int, members) // by sender: the line due next
			for k := i + 2; k <= members; k++ {
				if _, p, err := c.tryRead(); err != nil || string(p) != fmt.Sprintf("user %d joined", k) {
					fail("%q, %v, want user %d's join", p, err, k)
					return
				}
			}
			for range members * lines {
				_, p, err := c.tryRead()
				if err != nil {
					fail("after %v lines: %v", next, err)
					return
				}
				name, _, _ := strings.Cut(string(p), ":")
				from, err := strconv.Atoi(strings.TrimPrefix(name, "user "))
				if from--; err != nil || from < 0 || from >= members || next[from] == lines || string(p) != want[from][next[from]] {
					fail("%q, want the next line of its sender (lines had by sender: %v)", p, next)
					return
				}
				next[from]++
			}
			had <- nil
			_, p, err := c.tryRead()
			if err != nil || string(p) != "user 1: done" {
				err = fmt.Errorf("member %d (%s): %q, %v, want user 1's done", i, c.dialect, p, err)
			}
			ended <- err
		}()
	}

	start := time.Now()
	sent := make(chan error, members)
	for i, c := range clients {
		go func() { sent <- sendBursts(c, i, lines) }()
	}
	for range members {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d members sent %d lines each in %v", members, lines, time.Since(start).Round(time.Millisecond))
	for range members {
		if err := <-had; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("every member had every line %v after the first was sent", time.Since(start).Round(time.Millisecond))
	clients[0].send(1, []byte("done"))
	for range members {
		if err := <-ended; err != nil {
			t.Fatal(err)
		}
	}

	s := status(t, srv)["/chat"]
	if s.Accepted != members || s.Active != members || s.Group == nil || *s.Group != (websocket.GroupStats{Members: members}) {
		t.Errorf("/chat status %+v, group %+v: want %d accepted, open and members, none disconnected or skipped", s.Stats, s.Group, members)
	}
}

// TestChatSlowMember puts two members that never read, RFC 6455 and
// hixie-75, in /chat with one that talks: 32 KiB lines every 5 ms. Once
// a slow member's 1 MiB queue has stayed full for 5 s, it is disconnected:
// it reads the lines that had reached its socket, in order, then EOF (in
// the middle of a line if the server was writing one), without a close
// frame; the talker gets its leave notice, and /status counts it.
func TestChatSlowMember(t *testing.T) {
	srv, _ := startServer(t, config{interval: time.Hour})
	var slow []*client
	for i, d := range []websocket.Dialect{websocket.RFC6455, websocket.Hixie75} {
		c := dial(t, srv, d, "/chat")
		c.expectText(fmt.Sprintf("Welcome to the chat, user %d! %d other(s) here.", i+1, i))
		c.expectText(fmt.Sprintf("user %d joined", i+1))
		slow = append(slow, c)
	}
	talker := dial(t, srv, websocket.RFC6455, "/chat")
	talker.expectText("Welcome to the chat, user 3! 2 other(s) here.")
	talker.expectText("user 3 joined")
	deadline := time.Now().Add(time.Minute) // bounds every read and write below: some 7 s
	for _, c := range append(slow, talker) {
		c.conn.SetDeadline(deadline)
	}
	line := func(k int) string { return fmt.Sprintf("%06d %s", k, strings.Repeat("x", 32<<10)) }

	// The talker reads its own lines, in order, until both slow members
	// have left.
	left := make(chan error, 1)
	go func() {
		next, gone := 0, []string{}
		for len(gone) < 2 {
			_, p, err := talker.tryRead()
			switch {
			case err != nil:
				left <- fmt.Errorf("talker, after %d lines: %v", next, err)
				return
			case strings.HasSuffix(string(p), " left"):
				gone = append(gone, string(p))
			case string(p) != "user 3: "+line(next):
				left <- fmt.Errorf("talker: %.20q, want its line %d", p, next)
				return
			default:
				next++
			}
		}
		if slices.Sort(gone); !slices.Equal(gone, []string{"user 1 left", "user 2 left"}) {
			left <- fmt.Errorf("talker: leave notices %q", gone)
			return
		}
		left <- nil
	}()

	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	sent := 0
talk:
	for {
		select {
		case err := <-left:
			if err != nil {
				t.Fatal(err)
			}
			break talk
		case <-tick.C:
			if _, err := talker.conn.Write(talker.frame(1, []byte(line(sent)))); err != nil {
				t.Fatalf("talker sending line %d: %v", sent, err)
			}
			sent++
		}
	}
	after := time.Since(start)
	t.Logf("both slow members left %v after the first of %d lines", after.Round(time.Millisecond), sent)
	if after < websocket.DefaultStallTimeout {
		t.Errorf("slow members left after %v, before the stall timeout (%v)", after, websocket.DefaultStallTimeout)
	}

	for i, c := range slow {
		for u := i + 2; u <= 3; u++ {
			c.expectText(fmt.Sprintf("user %d joined", u))
		}
		k := 0
		for ; ; k++ {
			op, p, err := c.tryRead()
			if err == io.EOF || err == io.ErrUnexpectedEOF { // the server closed in the middle of a write
				t.Logf("%s: %d lines, then %v", c.dialect, k, err)
				break
			}
			if err != nil || op != 1 || string(p) != "user 3: "+line(k) {
				t.Fatalf("%s, after %d lines: opcode %d, %.20q, %v; want line %d or EOF", c.dialect, k, op, p, err, k)
			}
		}
	}
	s := status(t, srv)["/chat"]
	if s.Accepted != 3 || s.Active != 1 || s.Group == nil || *s.Group != (websocket.GroupStats{Members: 1, Disconnected: 2}) {
		t.Errorf("/chat status %+v, group %+v: want 3 accepted, 1 open and member, 2 disconnected", s.Stats, s.Group)
	}
}
