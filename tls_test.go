package websocket

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TLS: every dialect over wss://, the hixie Locations a browser compares
// exactly, and the same behind a TLS-terminating proxy (plain HTTP to the
// handler), where the scheme comes from Handler.Location or, when trusted,
// the proxy's Forwarded / X-Forwarded-* fields. Helpers (hos...) are in
// hostile_test.go.

// tlsDial opens a TLS connection to srv, verifying its certificate with
// the pool of the server's own client.
func tlsDial(t *testing.T, srv *httptest.Server) *rawClient {
	t.Helper()
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

// tlsLocationField is the field of the hixie answer naming the URL.
var tlsLocationField = map[Dialect]string{Hixie75: "WebSocket-Location", Hixie76: "Sec-WebSocket-Location"}

// tlsHandshake sends req and expects a 101; it returns the answer's
// fields, having read (and checked) hixie-76's 16 bytes.
func tlsHandshake(t *testing.T, c *rawClient, d Dialect, req string) http.Header {
	t.Helper()
	c.write([]byte(req))
	status, header, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("%s: expected 101, got %q", d, raw)
	}
	switch d {
	case Hixie76:
		htExpectBytes(t, c, "8jKS'y:G*Co,Wxa-")
	case Hybi07, Hybi08, RFC6455:
		if got := header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
			t.Errorf("%s: Sec-WebSocket-Accept %q", d, got)
		}
	}
	return header
}

// Every dialect handshakes and echoes over TLS (certificate verified); the
// callback sees the TLS request, and the hixie answers name wss:// URLs.
func TestTLSEveryDialect(t *testing.T) {
	h := &Handler{ReadLimit: 1 << 20, Serve: func(c *Conn) {
		c.WriteText(fmt.Sprintf("tls=%v", c.Request().TLS != nil))
		echoMessages(c)
	}}
	srv := hosStart(t, h, nil, true)
	big := strings.Repeat("wss ✓ ", 12000) // 96 KB
	for _, d := range allDialects {
		t.Run(d.String(), func(t *testing.T) {
			c := tlsDial(t, srv)
			header := tlsHandshake(t, c, d, htRequest(d, "example.com", "/chat?room=1", "https://example.com"))
			if f, ok := tlsLocationField[d]; ok {
				if got := header.Get(f); got != "wss://example.com/chat?room=1" {
					t.Errorf("%s %q, want wss://example.com/chat?room=1", f, got)
				}
				if got := header.Get(strings.Replace(f, "Location", "Origin", 1)); got != "https://example.com" {
					t.Errorf("origin answered %q", got)
				}
			}
			if _, msg := c.readMessage(d); string(msg) != "tls=true" {
				t.Errorf("the callback said %q", msg)
			}
			checkEcho(t, c, d, "hello over TLS")
			c.writeText(d, big)
			if _, msg := c.readMessage(d); string(msg) != big {
				t.Errorf("echo of %d bytes came back as %d", len(big), len(msg))
			}
			if d.hybi() {
				bin := bytes.Repeat([]byte{0, 1, 2, 0xFF}, 20000)
				c.write(clientFrame(true, 2, bin))
				if op, msg := c.readMessage(d); op != 2 || !bytes.Equal(msg, bin) {
					t.Errorf("binary echo: op %d, %d bytes", op, len(msg))
				}
			}
			htClientClose(t, c, d)
		})
	}
	hosWaitActive(t, h)
	if s := h.Stats(); s.Accepted != uint64(len(allDialects)) {
		t.Errorf("stats %+v", s)
	}
}

// Over TLS the hixie Location is wss://, with the Host the client sent,
// lower-cased, without the default port 443 but with any other (80
// included), then the path and query.
func TestTLSHixieLocation(t *testing.T) {
	h := &Handler{Serve: echoMessages}
	srv := hosStart(t, h, nil, true)
	addr := srv.Listener.Addr().String()
	for _, tc := range []struct{ host, want string }{
		{"example.com", "wss://example.com/p/q?x=1&y=%20"},
		{"example.com:443", "wss://example.com/p/q?x=1&y=%20"},
		{"Example.COM:443", "wss://example.com/p/q?x=1&y=%20"},
		{"example.com:8443", "wss://example.com:8443/p/q?x=1&y=%20"},
		{"example.com:80", "wss://example.com:80/p/q?x=1&y=%20"},
		{addr, "wss://" + addr + "/p/q?x=1&y=%20"},
	} {
		for _, d := range []Dialect{Hixie75, Hixie76} {
			t.Run(d.String()+" "+tc.host, func(t *testing.T) {
				c := tlsDial(t, srv)
				header := tlsHandshake(t, c, d, htRequest(d, tc.host, "/p/q?x=1&y=%20", "https://"+tc.host))
				if got := header.Get(tlsLocationField[d]); got != tc.want {
					t.Errorf("Host %s: %s %q, want %q", tc.host, tlsLocationField[d], got, tc.want)
				}
				checkEcho(t, c, d, "located")
				htClientClose(t, c, d)
			})
		}
	}
}

// Behind a TLS terminator the handler gets plain HTTP. Unless
// TrustProxyHeaders is set, the proxy's fields are ignored: ws:// and the
// request's Host, for the Location and the same-origin check alike. When it
// is set, the scheme and host come from Forwarded (its first element) or
// else X-Forwarded-Proto/-Host, and the same-origin check compares the
// origin with that public host: the internal Host is then refused. The
// check compares hosts only (a default port aside), not schemes: an
// http:// origin naming the public host is accepted.
func TestTLSTerminatorProxyHeaders(t *testing.T) {
	const path = "/chat?x=1"
	for _, tc := range []struct {
		name   string
		trust  bool
		host   string
		origin string
		fields []string
		want   string // the Location; "" for 403
	}{
		{"untrusted X-Forwarded-Proto", false, "example.com", "https://example.com",
			[]string{"X-Forwarded-Proto: https"}, "ws://example.com" + path},
		{"untrusted Forwarded, public origin", false, "backend:8080", "https://public.example",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, ""},
		{"untrusted Forwarded, internal origin", false, "backend:8080", "http://backend:8080",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, "ws://backend:8080" + path},
		{"trusted, no proxy fields", true, "example.com", "http://example.com", nil, "ws://example.com" + path},
		{"trusted X-Forwarded-Proto", true, "example.com", "https://example.com",
			[]string{"X-Forwarded-Proto: https"}, "wss://example.com" + path},
		{"trusted X-Forwarded-Proto and -Host", true, "backend:8080", "https://public.example",
			[]string{"X-Forwarded-Proto: https", "X-Forwarded-Host: public.example"}, "wss://public.example" + path},
		{"trusted Forwarded", true, "backend:8080", "https://public.example",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, "wss://public.example" + path},
		{"trusted Forwarded, internal origin refused", true, "backend:8080", "http://backend:8080",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, ""},
		{"trusted Forwarded, other origin refused", true, "backend:8080", "https://evil.example",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, ""},
		{"trusted Forwarded, http origin of the public host", true, "backend:8080", "http://public.example",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example"}, "wss://public.example" + path},
		{"trusted Forwarded, quoted, default port", true, "backend:8080", "https://public.example",
			[]string{`Forwarded: for="[2001:db8::1]:4711";proto=https;host="public.example:443"`}, "wss://public.example" + path},
		{"trusted Forwarded, other port", true, "backend:8080", "https://public.example:8443",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example:8443"}, "wss://public.example:8443" + path},
		{"trusted Forwarded, parameter case", true, "backend:8080", "https://public.example",
			[]string{"Forwarded: For=1.2.3.4;Proto=HTTPS;Host=Public.Example"}, "wss://public.example" + path},
		{"trusted Forwarded, first element of a chain", true, "backend:8080", "https://public.example",
			[]string{"Forwarded: for=1.2.3.4;proto=https;host=public.example, for=10.0.0.1;proto=http;host=lb.internal"}, "wss://public.example" + path},
		{"trusted Forwarded over X-Forwarded-*", true, "backend:8080", "https://public.example",
			[]string{"X-Forwarded-Proto: http", "X-Forwarded-Host: other.example", "Forwarded: proto=https;host=public.example"}, "wss://public.example" + path},
		{"trusted Forwarded proto=http", true, "backend:8080", "http://public.example",
			[]string{"Forwarded: for=1.2.3.4;proto=http;host=public.example"}, "ws://public.example" + path},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Handler{TrustProxyHeaders: tc.trust, Serve: echoMessages}
			srv := hosStart(t, h, nil, false)
			for _, d := range []Dialect{Hixie75, Hixie76, RFC6455} {
				c := dialRaw(t, srv)
				req := htRequest(d, tc.host, path, tc.origin, tc.fields...)
				if tc.want == "" {
					c.write([]byte(req))
					resp, err := http.ReadResponse(c.br, nil)
					if err != nil {
						t.Fatalf("%s: %v", d, err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("%s: origin %s answered %s, want 403", d, tc.origin, resp.Status)
					}
					continue
				}
				header := tlsHandshake(t, c, d, req)
				if f, ok := tlsLocationField[d]; ok {
					if got := header.Get(f); got != tc.want {
						t.Errorf("%s: %s %q, want %q", d, f, got, tc.want)
					}
				}
				checkEcho(t, c, d, "behind a proxy")
				htClientClose(t, c, d)
			}
		})
	}
}

// A configured wss:// Location, served over plain HTTP (a TLS terminator
// in front), answers hixie clients wss:// and serves every dialect; other
// hosts and paths are refused.
func TestTLSConfiguredLocationBehindTerminator(t *testing.T) {
	h := &Handler{Location: "wss://example.com/chat", Serve: echoMessages}
	srv := hosStart(t, h, nil, false)
	for _, tc := range []struct {
		host, path, want string
	}{
		{"example.com", "/chat", "wss://example.com/chat"},
		{"example.com", "/chat?room=1", "wss://example.com/chat?room=1"},
		{"example.com:443", "/chat", "wss://example.com/chat"},
	} {
		for _, d := range allDialects {
			c := dialRaw(t, srv)
			header := tlsHandshake(t, c, d, htRequest(d, tc.host, tc.path, "https://example.com"))
			if f, ok := tlsLocationField[d]; ok {
				if got := header.Get(f); got != tc.want {
					t.Errorf("%s, Host %s, %s: %s %q, want %q", d, tc.host, tc.path, f, got, tc.want)
				}
			}
			checkEcho(t, c, d, "terminated")
			htClientClose(t, c, d)
		}
	}
	for _, tc := range []struct {
		host, path string
		status     int
	}{
		{"other.example", "/chat", http.StatusBadRequest},
		{"example.com:8443", "/chat", http.StatusBadRequest},
		{"example.com", "/other", http.StatusNotFound},
	} {
		c := dialRaw(t, srv)
		c.write([]byte(htRequest(RFC6455, tc.host, tc.path, "")))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("Host %s, %s: %s, want %d", tc.host, tc.path, resp.Status, tc.status)
		}
	}
}
