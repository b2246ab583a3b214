package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/hybi/websocket/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
)

// WebSockets over HTTP/2 (RFC 8441), end to end through net/http's own
// HTTP/2 server and client: Dial with DialOptions.HTTP2, and raw streams
// (sendConnect) for the refusals and the conformance suite.

// h2Server serves h over TLS with HTTP/2 and returns its wss:// URL and
// options dialing it over HTTP/2.
func h2Server(t testing.TB, h http.Handler) (*httptest.Server, string, *DialOptions) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	opts := &DialOptions{HTTP2: true, ReadLimit: -1, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()}
	return srv, "wss" + strings.TrimPrefix(srv.URL, "https"), opts
}

func dialH2(t testing.TB, url string, opts *DialOptions) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial %s over HTTP/2: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("answer %d %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// h2Stream opens a raw stream to srv with an extended CONNECT of header
// (a :protocol of websocket and version 13 unless header says otherwise),
// and returns the answer and, for a 200, the stream as a rawClient.
func h2Stream(t testing.TB, srv *httptest.Server, path string, header http.Header) (*http.Response, *rawClient) {
	t.Helper()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cfg.NextProtos = []string{"h2"}
	tc, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	h := http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}}
	for k, v := range header {
		if v == nil {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	u := &url.URL{Scheme: "wss", Host: srv.Listener.Addr().String(), Path: path}
	resp, s, err := sendConnect(tc, u, u.Host, h)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return resp, nil
	}
	t.Cleanup(func() { s.Close() }) // and its deadlines' timers, which hold it
	s.SetDeadline(time.Now().Add(30 * time.Second))
	return resp, &rawClient{t: t, conn: s, br: bufio.NewReader(s)}
}

// The server sees an HTTP/2 CONNECT; Origin, subprotocol and
// permessage-deflate are agreed as over HTTP/1.1; text, 1 MiB binary and
// compressible messages echo byte for byte; the close code and reason
// reach the server; Stats counts the stream on its own.
func TestHTTP2Echo(t *testing.T) {
	type seen struct {
		method string
		major  int
		cause  error
	}
	seenc := make(chan seen, 1)
	h := echoHandler(func(h *Handler) {
		h.Subprotocols = []string{"chat", "superchat"}
		h.Compression = &CompressionOptions{}
		echo := h.Serve
		h.Serve = func(c *Conn) {
			r := c.Request()
			echo(c)
			c.Close(StatusNormalClosure, "")
			seenc <- seen{r.Method, r.ProtoMajor, c.CloseCause()}
		}
	})
	srv, url, opts := h2Server(t, h)
	opts.Subprotocols = []string{"superchat", "chat"}
	opts.Compression = &CompressionOptions{}
	opts.Header = http.Header{"Origin": {srv.URL}}
	c := dialH2(t, url, opts)
	if c.Subprotocol() != "chat" {
		t.Errorf("subprotocol %q, want the server's preference, chat", c.Subprotocol())
	}
	if !strings.HasPrefix(c.Extensions(), "permessage-deflate") {
		t.Errorf("extensions %q, want permessage-deflate", c.Extensions())
	}
	// The server counts the stream once it has answered: soon after.
	waitStats(t, h, func(st Stats) bool { return st.AcceptedHTTP2 == 1 && st.ActiveHTTP2 == 1 && st.Active == 1 })
	big := binaryPattern(1 << 20)
	for _, m := range []struct {
		typ MessageType
		msg []byte
	}{{TextMessage, []byte("Hello over HTTP/2")}, {BinaryMessage, big}, {TextMessage, pattern(1 << 20)}, {BinaryMessage, nil}} {
		if err := c.WriteMessage(m.typ, m.msg); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil || typ != m.typ || !bytes.Equal(got, m.msg) {
			t.Fatalf("echo of %d bytes of %v: %v, %d bytes, %v", len(m.msg), m.typ, typ, len(got), err)
		}
	}
	if err := c.Close(4000, "bye over h2"); err != nil {
		t.Fatal(err)
	}
	s := <-seenc
	if s.method != http.MethodConnect || s.major != 2 {
		t.Errorf("the server saw %s over HTTP/%d, want CONNECT over HTTP/2", s.method, s.major)
	}
	var ce *CloseError
	if !errors.As(s.cause, &ce) || ce.Code != 4000 || ce.Reason != "bye over h2" {
		t.Errorf("server's close cause %v, want the client's 4000 \"bye over h2\"", s.cause)
	}
	waitStats(t, h, func(st Stats) bool { return st.ActiveHTTP2 == 0 && st.Active == 0 && st.Closed.PeerClose == 1 })
}

// waitStats polls h's Stats until ok, up to 5 s.
func waitStats(t *testing.T, h *Handler, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for st := h.Stats(); !ok(st); st = h.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The server's close reaches the client with its code and reason, and the
// stream then ends; a Serve that returns closes with 1000.
func TestHTTP2ServerClose(t *testing.T) {
	h := &Handler{Serve: func(c *Conn) {
		if c.Request().URL.Path == "/close" {
			c.Close(4001, "server says bye")
		}
	}}
	_, url, opts := h2Server(t, h)
	for path, want := range map[string]CloseError{"/close": {Code: 4001, Reason: "server says bye"}, "/return": {Code: StatusNormalClosure}} {
		c := dialH2(t, url+path, opts)
		_, _, err := c.ReadMessage()
		var ce *CloseError
		if !errors.As(err, &ce) || *ce != want {
			t.Errorf("%s: read %v, want %v", path, err, want)
		}
	}
	waitStats(t, h, func(st Stats) bool { return st.ActiveHTTP2 == 0 && st.Closed.ServerClose == 2 })
}

// Every refusal gets the status it gets over HTTP/1.1 (426 names 13, the
// only version RFC 8441 carries); what is not an RFC 8441 handshake gets
// 400 saying what one is.
func TestHTTP2Refusals(t *testing.T) {
	h := &Handler{Location: "wss://127.0.0.1/chat", Serve: func(c *Conn) {}}
	srv, _, _ := h2Server(t, h)
	h.Location = "wss://" + srv.Listener.Addr().String() + "/chat"
	cases := []struct {
		name   string
		path   string
		header http.Header
		status int
		body   string
	}{
		{"no version", "/chat", http.Header{"Sec-Websocket-Version": nil}, http.StatusUpgradeRequired, "RFC 8441 carries 13"},
		{"version 8", "/chat", http.Header{"Sec-Websocket-Version": {"8"}}, http.StatusUpgradeRequired, "RFC 8441 carries 13"},
		{"unknown :protocol", "/chat", http.Header{":protocol": {"webtransport"}}, http.StatusBadRequest, "unknown :protocol webtransport"},
		{"foreign origin", "/chat", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden, "origin not allowed"},
		{"other path", "/other", nil, http.StatusNotFound, "this endpoint is"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, s := h2Stream(t, srv, tc.path, tc.header)
			if s != nil {
				t.Fatalf("accepted")
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%d %q, want %d with %q", resp.StatusCode, body, tc.status, tc.body)
			}
			if tc.status == http.StatusUpgradeRequired && resp.Header.Get("Sec-Websocket-Version") != "13" {
				t.Errorf("Sec-WebSocket-Version %q, want 13", resp.Header.Get("Sec-Websocket-Version"))
			}
		})
	}
	// A plain GET over HTTP/2 is not a handshake.
	resp, err := srv.Client().Get(srv.URL + "/chat")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "CONNECT with :protocol websocket") {
		t.Errorf("GET over HTTP/%d: %d %q", resp.ProtoMajor, resp.StatusCode, body)
	}
	// After Shutdown: 503.
	h.Shutdown(context.Background())
	resp, s := h2Stream(t, srv, "/chat", nil)
	if s != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Shutdown: %d", resp.StatusCode)
	}
	want := Refusals{NotWebSocket: 2, Version: 2, Origin: 1, Location: 1, ShuttingDown: 1}
	if got := h.Stats().Refused; got != want {
		t.Errorf("refusals %+v, want %+v", got, want)
	}
}

// A Dial with HTTP2 to a server without HTTP/2, or to a ws:// URL, fails
// with ErrNoHTTP2.
func TestHTTP2NotOffered(t *testing.T) {
	srv := httptest.NewTLSServer(echoHandler(nil)) // HTTP/1.1 only
	t.Cleanup(srv.Close)
	opts := &DialOptions{HTTP2: true, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	_, _, err := Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https"), opts)
	if !errors.Is(err, ErrNoHTTP2) || !strings.Contains(err.Error(), "did not agree to h2") {
		t.Fatalf("Dial: %v, want ErrNoHTTP2", err)
	}
	plain := httptest.NewServer(echoHandler(nil))
	t.Cleanup(plain.Close)
	_, _, err = Dial(context.Background(), "ws"+strings.TrimPrefix(plain.URL, "http"), &DialOptions{HTTP2: true})
	if !errors.Is(err, ErrNoHTTP2) || !strings.Contains(err.Error(), "wss://") {
		t.Fatalf("Dial ws://: %v, want ErrNoHTTP2", err)
	}
}

// Shutdown sends 1001 on every stream, waits for Serve to return, and the
// streams end; nothing is left running.
func TestHTTP2Shutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	h := echoHandler(nil)
	srv, url, opts := h2Server(t, h)
	var conns []*Conn
	for range 5 {
		c := dialH2(t, url, opts)
		if err := c.WriteText("hi"); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "hi" {
			t.Fatalf("echo: %q, %v", msg, err)
		}
		conns = append(conns, c)
	}
	errs := make(chan error, len(conns))
	for _, c := range conns {
		go func() {
			_, _, err := c.ReadMessage()
			errs <- err
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for range conns {
		var ce *CloseError
		if err := <-errs; !errors.As(err, &ce) || ce.Code != StatusGoingAway {
			t.Errorf("client read %v, want 1001", err)
		}
	}
	if st := h.Stats(); st.Closed.Shutdown != 5 || st.ActiveHTTP2 != 0 {
		t.Errorf("stats %+v", st)
	}
	for _, c := range conns {
		c.CloseNow()
	}
	srv.Close()
	waitGoroutines(t, "shutdown", base)
}

// A Conn left idle longer than its WriteTimeout after a write still works:
// the timeout armed for that write does not end the stream later.
func TestHTTP2IdleAfterWrite(t *testing.T) {
	h := echoHandler(func(h *Handler) { h.WriteTimeout = 100 * time.Millisecond })
	_, url, opts := h2Server(t, h)
	opts.WriteTimeout = 100 * time.Millisecond
	c := dialH2(t, url, opts)
	for i := range 2 {
		if err := c.WriteText("ping"); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "ping" {
			t.Fatalf("echo %d: %q, %v", i, msg, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// A client that stops reading: once its stream's window is full, the
// server's write times out (ErrWriteTimeout) and the stream is reset; a
// stream of the same handler goes on.
func TestHTTP2WriteTimeout(t *testing.T) {
	done := make(chan error, 1)
	h := &Handler{WriteTimeout: 200 * time.Millisecond, Serve: func(c *Conn) {
		if c.Request().URL.Path != "/flood" {
			echoMessages(c)
			return
		}
		msg := make([]byte, 64<<10)
		for {
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				done <- err
				return
			}
		}
	}}
	srv, url, opts := h2Server(t, h)
	_, _ = h2Stream(t, srv, "/flood", nil) // never read
	select {
	case err := <-done:
		if !errors.Is(err, ErrWriteTimeout) {
			t.Fatalf("write: %v, want ErrWriteTimeout", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the write never timed out")
	}
	c := dialH2(t, url, opts)
	if err := c.WriteText("still here"); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "still here" {
		t.Fatalf("echo: %q, %v", msg, err)
	}
	waitStats(t, h, func(st Stats) bool { return st.Closed.WriteTimeout == 1 })
}

// The conformance suite over HTTP/2 streams: the same frames in, the same
// frames and close codes out, and the stream's end for the TCP close.
func TestHTTP2Conformance(t *testing.T) {
	h := echoHandler(func(h *Handler) { h.ReadLimit = 64 << 20 })
	srv, _, _ := h2Server(t, h)
	for _, tc := range conformanceCases() {
		t.Run(tc.name, func(t *testing.T) {
			_, c := h2Stream(t, srv, "/", nil)
			if c == nil {
				t.Fatal("refused")
			}
			runConformance(t, c, tc)
		})
	}
}

// Without GODEBUG=http2xconnect=1 (a server process started with
// http2xconnect=0, which xconnect leaves as it is), net/http's server
// does not offer extended CONNECT: Dial with HTTP2 says so (ErrNoHTTP2),
// HTTP/1.1 still works on the same server, and a GET that reaches the
// Handler over HTTP/2 is told how to turn it on.
func TestHTTP2NotEnabled(t *testing.T) {
	_, stdout := startChild(t, "TestHTTP2NotEnabledServerHelper", "GODEBUG=http2xconnect=0", "WEBSOCKET_XCONNECT_OFF=1")
	line, err := stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("the server's URL: %q, %v", line, err)
	}
	srvURL := strings.TrimSpace(line)
	tlsConfig := &tls.Config{InsecureSkipVerify: true}
	wsURL := "wss" + strings.TrimPrefix(srvURL, "https")

	_, _, err = Dial(context.Background(), wsURL, &DialOptions{HTTP2: true, TLSConfig: tlsConfig})
	if !errors.Is(err, ErrNoHTTP2) || !strings.Contains(err.Error(), "GODEBUG=http2xconnect=1") {
		t.Errorf("Dial over HTTP/2: %v, want ErrNoHTTP2 naming the setting", err)
	}
	c, resp, err := Dial(context.Background(), wsURL, &DialOptions{TLSConfig: tlsConfig})
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("Dial over HTTP/1.1: %v", err)
	}
	c.WriteText("still here")
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "still here" {
		t.Errorf("echo over HTTP/1.1: %q, %v", msg, err)
	}
	c.Close(StatusNormalClosure, "")

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}}
	defer client.CloseIdleConnections()
	get, err := client.Get(srvURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if get.ProtoMajor != 2 || get.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "start it with GODEBUG=http2xconnect=1") {
		t.Errorf("GET over HTTP/%d: %d %q", get.ProtoMajor, get.StatusCode, body)
	}
}

// TestHTTP2NotEnabledServerHelper is TestHTTP2NotEnabled's server, in a
// process of its own: it prints its URL and serves until stdin ends.
func TestHTTP2NotEnabledServerHelper(t *testing.T) {
	if os.Getenv("WEBSOCKET_XCONNECT_OFF") == "" {
		t.Skip("the server of TestHTTP2NotEnabled, run by it")
	}
	srv := httptest.NewUnstartedServer(echoHandler(nil))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	fmt.Println(srv.URL)
	io.Copy(io.Discard, os.Stdin)
	srv.CloseClientConnections()
	srv.Close()
}

// Over HTTP/2 as over TCP: a Group takes HTTP/2 and HTTP/1.1 members
// alike, a PreparedMessage goes to both, and keepalive pings reach a
// client that answers them (its reads answer), while one that does not
// read is dropped with ErrPongTimeout.
func TestHTTP2GroupPreparedKeepalive(t *testing.T) {
	g := &Group{}
	h := &Handler{Serve: func(c *Conn) {
		g.Add(c)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}, PingInterval: 50 * time.Millisecond, PongTimeout: 200 * time.Millisecond, Compression: &CompressionOptions{}}
	_, url, opts := h2Server(t, h)
	h2a, h2b := dialH2(t, url, opts), dialH2(t, url, opts)
	h1 := dialTest(t, url, &DialOptions{TLSConfig: opts.TLSConfig, Compression: &CompressionOptions{}})
	waitStats(t, h, func(st Stats) bool { return g.Len() == 3 && st.ActiveHTTP2 == 2 && st.Active == 3 })
	pm, err := NewPreparedMessage(TextMessage, bytes.Repeat([]byte("prepared "), 100))
	if err != nil {
		t.Fatal(err)
	}
	g.BroadcastText("to all")
	g.BroadcastPrepared(pm)
	for i, c := range []*Conn{h2a, h2b, h1} {
		for _, want := range []string{"to all", string(bytes.Repeat([]byte("prepared "), 100))} {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, msg, err := c.ReadMessage(); err != nil || string(msg) != want {
				t.Fatalf("member %d: %.20q, %v; want %.20q", i, msg, err, want)
			}
		}
	}
	// h2a and h1 keep reading, so they answer pings; h2b stops and is
	// dropped.
	pongs := make(chan struct{}, 100)
	h2a.SetPongHandler(func([]byte) { pongs <- struct{}{} })
	for _, c := range []*Conn{h2a, h1} {
		c.SetReadDeadline(time.Time{})
		go c.ReadMessage()
	}
	waitStats(t, h, func(st Stats) bool { return st.Closed.PongTimeout == 1 && st.ActiveHTTP2 == 1 })
	if g.Len() != 2 {
		t.Errorf("%d members after the drop, want 2", g.Len())
	}
	if err := h2a.Ping([]byte("client ping")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pongs:
	case <-time.After(5 * time.Second):
		t.Fatal("no pong from the server over HTTP/2")
	}
	if st := h.Stats(); st.Closed.PongTimeout != 1 || st.Active != 2 {
		t.Errorf("stats %+v: only the member that stopped reading should be dropped", st)
	}
}

// TestHTTP2DialCredentials: over HTTP/2 as over HTTP/1.1, a URL's user
// info is sent as Basic credentials and the jar's cookies go along.
func TestHTTP2DialCredentials(t *testing.T) {
	got := make(chan http.Header, 1)
	h := &Handler{Serve: func(c *Conn) { got <- c.Request().Header }}
	srv, wsURL, opts := h2Server(t, h)
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}})
	opts.Jar = jar
	dialH2(t, strings.Replace(wsURL, "wss://", "wss://al%20ice:p%3Ass@", 1), opts)
	hdr := <-got
	if hdr.Get("Authorization") != "Basic YWwgaWNlOnA6c3M=" || hdr.Get("Cookie") != "a=1; b=2" {
		t.Fatalf("sent %v", hdr)
	}
}
