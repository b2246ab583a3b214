package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// listenServe runs Serve(ln, h) on a loopback listener until the test
// ends, and returns it as an httptest.Server of which only Listener and
// URL are set, for the raw clients' helpers and Dial; Serve's error comes
// on the channel.
func listenServe(t testing.TB, h *Handler, wrap func(net.Listener) net.Listener) (*httptest.Server, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, URL: "http://" + ln.Addr().String()}
	if wrap != nil {
		ln = wrap(ln)
	}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ln, h) }()
	t.Cleanup(func() { ln.Close() })
	return srv, errc
}

// Every dialect handshakes and echoes through Serve, on the engine and on
// a goroutine; the callback sees the request (remote address and the
// client's own headers included, the handshake's let go of), and what the
// client sent right after its handshake is read.
func TestServeDialects(t *testing.T) {
	engineStart()
	for _, mode := range []string{"engine", "goroutine"} {
		t.Run(mode, func(t *testing.T) {
			remote := make(chan string, 10)
			seen := func(c *Conn) {
				r := c.Request()
				if r.Header.Get("Upgrade") != "" || r.Header.Get("Sec-WebSocket-Version") != "" {
					t.Errorf("Request() keeps the handshake's headers: %v", r.Header)
				}
				remote <- r.RemoteAddr + "|" + r.Header.Get("X-Kept")
			}
			h := &Handler{Serve: func(c *Conn) {
				seen(c)
				echoMessages(c)
			}}
			if mode == "engine" {
				h.Serve, h.Events = nil, &Events{
					OnOpen:    seen,
					OnMessage: echoEvents.OnMessage,
				}
			}
			srv, _ := listenServe(t, h, nil)
			for _, d := range []Dialect{Hixie75, Hixie76, Hybi07, Hybi08, RFC6455} {
				c := dialDialect(t, srv, d, "/path")
				if got := <-remote; got != c.conn.LocalAddr().String()+"|" {
					t.Errorf("%s: Request().RemoteAddr %q, want %q", d, got, c.conn.LocalAddr())
				}
				checkEcho(t, c, d, "hello "+d.String())
			}
			// A handshake and a first message in one write.
			c := dialRaw(t, srv)
			c.write(append([]byte(handshakeRequest(RFC6455, srv.Listener.Addr().String(), "/")), clientFrame(true, 1, []byte("early"))...))
			if status, _, raw := c.readResponse(); !strings.Contains(status, " 101 ") {
				t.Fatalf("handshake: %q", raw)
			}
			<-remote
			if _, msg := c.readMessage(RFC6455); string(msg) != "early" {
				t.Fatalf("echo of the early message: %q", msg)
			}
			conn, _, err := Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/dial",
				&DialOptions{Header: http.Header{"X-Kept": {"header"}}})
			if err != nil {
				t.Fatal(err)
			}
			if got := <-remote; !strings.HasSuffix(got, "|header") {
				t.Errorf("Request() without the client's X-Kept: %q", got)
			}
			if err := conn.WriteText("dialed"); err != nil {
				t.Fatal(err)
			}
			if _, msg, err := conn.ReadMessage(); err != nil || string(msg) != "dialed" {
				t.Fatalf("Dial's echo: %q, %v", msg, err)
			}
			conn.Close(StatusNormalClosure, "")
			if s := h.Stats(); s.Accepted != 7 {
				t.Errorf("stats %+v, want 7 accepted", s)
			}
		})
	}
}

// What is not a handshake gets the Handler's refusal or Fallback's answer,
// and the connection closes after it; a malformed request gets 400,
// headers over the limit 431, and a client that sends nothing is closed
// once HandshakeTimeout passes, unanswered.
func TestServeRefusals(t *testing.T) {
	h := &Handler{Serve: echoMessages, HandshakeTimeout: 200 * time.Millisecond}
	srv, _ := listenServe(t, h, nil)
	addr := srv.Listener.Addr().String()
	exchange := func(req string) (string, http.Header, string) {
		t.Helper()
		c := dialRaw(t, srv)
		c.write([]byte(req))
		status, header, _ := c.readResponse()
		body, err := io.ReadAll(c.br) // until the server closes
		if err != nil {
			t.Fatalf("after %q: %v", status, err)
		}
		return status, header, string(body)
	}
	status, header, body := exchange("GET / HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	if !strings.Contains(status, " 400 ") || header.Get("Connection") != "close" || !strings.Contains(body, "expected a WebSocket handshake") {
		t.Errorf("a plain GET: %q %v %q", status, header, body)
	}
	status, header, _ = exchange(htRequest(RFC6455, addr, "/", "http://"+addr, "Sec-WebSocket-Version: 99"))
	if !strings.Contains(status, " 426 ") || header.Get("Sec-WebSocket-Version") == "" {
		t.Errorf("an unknown version: %q %v", status, header)
	}
	if status, _, _ = exchange("NOT HTTP\r\n\r\n"); !strings.Contains(status, " 400 ") {
		t.Errorf("a malformed request: %q", status)
	}
	huge := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nX-Big: " + strings.Repeat("b", maxHeaderBytes) + "\r\n\r\n"
	if status, _, _ = exchange(huge); !strings.Contains(status, " 431 ") {
		t.Errorf("headers over the limit: %q", status)
	}

	h.Fallback = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "fallback for %s %s", r.Method, r.URL.Path)
	})
	status, header, body = exchange("GET /page HTTP/1.1\r\nHost: " + addr + "\r\n\r\n")
	if !strings.Contains(status, " 418 ") || header.Get("Content-Type") != "text/plain" || body != "fallback for GET /page" {
		t.Errorf("Fallback: %q %v %q", status, header, body)
	}
	if status, _, body = exchange("HEAD /page HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"); !strings.Contains(status, " 418 ") || body != "" {
		t.Errorf("Fallback to HEAD: %q %q", status, body)
	}
	resp, err := http.Get(srv.URL + "/client")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot || string(got) != "fallback for GET /client" {
		t.Errorf("net/http's client: %d %q", resp.StatusCode, got)
	}

	silent := dialRaw(t, srv)
	start := time.Now()
	if b, err := io.ReadAll(silent.br); err != nil || len(b) != 0 {
		t.Errorf("a silent client got %q, %v", b, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Errorf("a silent client was closed after %v, want HandshakeTimeout (200ms)", d)
	}
}

// Shutdown closes Serve's listener (Serve returns ErrShutdown) and its
// connections (1001), and a Serve called after it returns at once.
func TestServeShutdown(t *testing.T) {
	engineStart()
	base := runtime.NumGoroutine()
	h := &Handler{Events: &echoEvents, CloseTimeout: 100 * time.Millisecond}
	srv, errc := listenServe(t, h, nil)
	conns := make([]*rawClient, 20)
	for i := range conns {
		conns[i] = dialDialect(t, srv, RFC6455, "/")
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrShutdown) {
			t.Fatalf("Serve returned %v, want ErrShutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	for _, c := range conns {
		if code := c.expectClose(); code != StatusGoingAway {
			t.Fatalf("close %v, want 1001", code)
		}
	}
	if _, err := net.Dial("tcp", srv.Listener.Addr().String()); err == nil {
		t.Error("the listener still accepts")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := Serve(ln, h); !errors.Is(err, ErrShutdown) {
		t.Fatalf("Serve after Shutdown: %v", err)
	}
	hosWaitGoroutines(t, base)
}

// Over a TLS listener the handshake is read after TLS's own, the request
// carries the connection's TLS state, and the connection is served on a
// goroutine (the engine takes plain TCP only).
func TestServeTLS(t *testing.T) {
	tlsSrv := httptest.NewUnstartedServer(nil)
	tlsSrv.StartTLS() // for its certificate and a client that trusts it
	defer tlsSrv.Close()
	state := make(chan *tls.ConnectionState, 1)
	h := &Handler{Events: &Events{
		OnOpen:    func(c *Conn) { state <- c.Request().TLS },
		OnMessage: echoEvents.OnMessage,
	}}
	cfg := tlsSrv.TLS.Clone()
	cfg.NextProtos = nil
	srv, _ := listenServe(t, h, func(ln net.Listener) net.Listener { return tls.NewListener(ln, cfg) })
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
	tlsHandshake(t, c, RFC6455, handshakeRequest(RFC6455, srv.Listener.Addr().String(), "/"))
	if s := <-state; s == nil || !s.HandshakeComplete {
		t.Fatalf("Request().TLS: %+v", s)
	}
	checkEcho(t, c, RFC6455, "over TLS")
	if s := h.Stats(); s.Engine != 0 || s.Active != 1 {
		t.Errorf("stats %+v: want one connection, not on the engine", s)
	}
}
