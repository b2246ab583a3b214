package websocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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
		if n == 16<<20 && typ == BinaryMessage && raceEnabled == 1 {
			continue // slow under -race; text carries it there
		}
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

func TestDialStreamingPingClose(t *testing.T) {
	closed := make(chan error, 2)
	pinged := make(chan []byte, 1)
	url, opts := testServer(t, &Handler{Serve: func(c *Conn) {
		c.SetPongHandler(func(p []byte) { pinged <- bytes.Clone(p) })
		if err := c.Ping([]byte("from the server")); err != nil {
			t.Error(err)
		}
		typ, r, err := c.NextReader()
		if err != nil {
			t.Error(err)
			return
		}
		w, _ := c.NextWriter(typ)
		io.Copy(w, r)
		w.Close()
		_, _, err = c.ReadMessage()
		closed <- err
		closed <- c.CloseCause()
	}}, false)
	c := dialTest(t, url, opts)
	clientPongs := make(chan []byte, 1)
	c.SetPongHandler(func(p []byte) { clientPongs <- bytes.Clone(p) })
	w, err := c.NextWriter(BinaryMessage)
	if err != nil {
		t.Fatal(err)
	}
	want := testMessage(100_000)
	for i := 0; i < len(want); i += 999 {
		w.Write(want[i:min(i+999, len(want))])
	}
	w.Close()
	c.Ping([]byte("from the client"))
	typ, r, err := c.NextReader()
	if err != nil || typ != BinaryMessage {
		t.Fatal(typ, err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("streamed echo: %d bytes, %v", len(got), err)
	}
	if p := <-pinged; string(p) != "from the server" {
		t.Fatalf("server's pong handler got %q", p)
	}
	// The client answered the server's ping as it read; the pong to its
	// own ping comes to its pong handler.
	go c.ReadMessage()
	if p := <-clientPongs; string(p) != "from the client" {
		t.Fatalf("client's pong handler got %q", p)
	}
	if err := c.Close(4001, "bye now"); err != nil {
		t.Fatal(err)
	}
	var ce *CloseError
	if err := <-closed; !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye now" {
		t.Fatalf("server read %v", err)
	}
	if err := <-closed; !errors.As(err, &ce) || ce.Code != 4001 {
		t.Fatalf("server's CloseCause %v", err)
	}
	var lce *LocalCloseError
	if err := c.CloseCause(); !errors.As(err, &lce) || lce.Code != 4001 {
		t.Fatalf("client's CloseCause %v", err)
	}
}

func TestDialServerCloses(t *testing.T) {
	serverCause := make(chan error, 1)
	url, opts := testServer(t, &Handler{Serve: func(c *Conn) {
		c.Close(StatusGoingAway, "maintenance")
		serverCause <- c.CloseCause()
	}}, false)
	c := dialTest(t, url, opts)
	_, _, err := c.ReadMessage()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "maintenance" {
		t.Fatalf("client read %v", err)
	}
	if cause := c.CloseCause(); !errors.As(cause, &ce) || ce.Code != StatusGoingAway {
		t.Fatalf("client's CloseCause %v", cause)
	}
	var lce *LocalCloseError
	if cause := <-serverCause; !errors.As(cause, &lce) || lce.Code != StatusGoingAway {
		t.Fatalf("server's CloseCause %v", cause)
	}
}

func TestDialConcurrentWriters(t *testing.T) {
	url, opts := testServer(t, echoHandler(nil), false)
	c := dialTest(t, url, opts)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte('a' + w)}, 100+w*1000)
			for range each {
				if err := c.WriteMessage(BinaryMessage, msg); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	counts := map[byte]int{}
	for range writers * each {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if len(msg) != 100+int(msg[0]-'a')*1000 || bytes.Count(msg, msg[:1]) != len(msg) {
			t.Fatalf("message of %d bytes mixed", len(msg))
		}
		counts[msg[0]]++
	}
	wg.Wait()
	for w := range writers {
		if counts[byte('a'+w)] != each {
			t.Fatalf("counts %v", counts)
		}
	}
}
