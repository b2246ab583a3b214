package websocket

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Our client against our Handler, over real sockets.


// echoHandler echoes every message, with no read limit.
func echoHandler(cfg func(*Handler)) *Handler {
	h := &Handler{ReadLimit: -1, Serve: func(c *Conn) {
		var buf []byte
		for {
			typ, msg, err := c.AppendMessage(buf[:0])
			if err != nil {
				return
			}
			buf = msg
			if c.WriteMessage(typ, msg) != nil {
				return
			}
		}
	}}
	if cfg != nil {
		cfg(h)
	}
	return h
}

// testServer serves h over plain HTTP or TLS and returns its ws(s) URL and
// the options that dial it.
func testServer(t testing.TB, h http.Handler, useTLS bool) (string, *DialOptions) {
	t.Helper()
	var srv *httptest.Server
	opts := &DialOptions{ReadLimit: -1}
	if useTLS {
		srv = httptest.NewTLSServer(h)
		opts.TLSConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), opts
}

func dialTest(t testing.TB, url string, opts *DialOptions) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("Dial %s (%v): %v", url, opts.Dialect, err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// testMessage is n bytes of text that hixie can carry too, varied enough
// to compress a little.
func testMessage(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefghijklmnopqrstuvwxyz0123456789 \n"[(i*7+i/13)%38]
	}
	return b
}

var echoSizes = []int{0, 125, 126, 65535, 65536, 16 << 20}

func TestDialEchoEveryDialect(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		for _, d := range allDialects {
			for _, compress := range []bool{false, true} {
				if compress && !d.hybi() {
					continue
				}
				name := d.String()
				if useTLS {
					name += "/TLS"
				}
				if compress {
					name += "/deflate"
				}
				t.Run(name, func(t *testing.T) {
					var cfg func(*Handler)
					if compress {
						cfg = func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: true} }
					}
					url, opts := testServer(t, echoHandler(cfg), useTLS)
					opts.Dialect = d
					if compress {
						opts.Compression = &CompressionOptions{ContextTakeover: true}
					}
					c := dialTest(t, url+"/echo", opts)
					if c.Dialect() != d {
						t.Fatalf("dialect %v", c.Dialect())
					}
					if compress && !strings.HasPrefix(c.Extensions(), "permessage-deflate") {
						t.Fatalf("extensions %q", c.Extensions())
					}
					if c.Request() != nil {
						t.Fatal("a client's Request is not nil")
					}
					echo(t, c, TextMessage)
					if d.hybi() {
						echo(t, c, BinaryMessage)
					}
					if err := c.Close(StatusNormalClosure, ""); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}

// echo sends a message of every size of echoSizes and checks the answers
// byte for byte, and that the sent buffers are left as they were.
func echo(t testing.TB, c *Conn, typ MessageType) {
	t.Helper()
	var buf []byte
	for _, n := range echoSizes {
		msg := testMessage(n)
		sent := bytes.Clone(msg)
		if err := c.WriteMessage(typ, msg); err != nil {
			t.Fatalf("write %d: %v", n, err)
		}
		if !bytes.Equal(msg, sent) {
			t.Fatalf("writing %d bytes changed the caller's buffer", n)
		}
		gotTyp, got, err := c.AppendMessage(buf[:0])
		if err != nil {
			t.Fatalf("read %d: %v", n, err)
		}
		buf = got
		if gotTyp != typ || !bytes.Equal(got, msg) {
			t.Fatalf("echo of %d bytes: %v of %d bytes, not the same", n, gotTyp, len(got))
		}
	}
}
