package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeRaw serves h on a memory pipe as Pipe does, with a handshake of
// dialect d, and returns a raw client on the other end, for the cases
// that write their own bytes.
func pipeRaw(t *testing.T, h *Handler, d Dialect) *rawClient {
	t.Helper()
	if !h.begin() {
		t.Fatal("the handler is shutting down")
	}
	end := h.servePipe(&handshake{dialect: d}, &http.Request{Method: http.MethodGet, URL: &url.URL{Path: "/"}, Header: http.Header{}})
	end.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { end.Close() })
	return &rawClient{t: t, conn: end, br: bufio.NewReader(end)}
}

// TestPipeConformance runs the conformance suite, which writes its own
// frames, over the memory transport that Pipe uses, against the same echo
// Serve as TestConformance.
func TestPipeConformance(t *testing.T) {
	h := &Handler{Serve: echoMessages, ReadLimit: 64 << 20}
	for _, tc := range conformanceCases() {
		t.Run(tc.name, func(t *testing.T) { runConformance(t, pipeRaw(t, h, RFC6455), tc) })
	}
}

// TestPipe: each dialect, with and without compression, both ends the
// library's: messages of every size and kind echoed, a message streamed in
// fragments, a ping answered, the subprotocol chosen by the Handler, the
// close handshake, and the server's Request.
func TestPipe(t *testing.T) {
	for _, d := range allDialects {
		for _, compress := range []bool{false, true} {
			if compress && !d.hybi() {
				continue
			}
			t.Run(fmt.Sprintf("%s compress=%v", d, compress), func(t *testing.T) {
				requests := make(chan *http.Request, 1)
				h := &Handler{Subprotocols: []string{"v2", "v1"}, Serve: func(c *Conn) {
					requests <- c.Request()
					echoMessages(c)
				}}
				opts := &DialOptions{Dialect: d, Subprotocols: []string{"v1"}, Header: http.Header{"Cookie": {"id=7"}}}
				if compress {
					h.Compression = &CompressionOptions{ContextTakeover: true}
					opts.Compression = &CompressionOptions{}
				}
				c, err := Pipe(h, opts)
				if err != nil {
					t.Fatal(err)
				}
				if c.Subprotocol() != "v1" || c.Dialect() != d {
					t.Fatalf("subprotocol %q, dialect %s", c.Subprotocol(), c.Dialect())
				}
				if want := "permessage-deflate; server_no_context_takeover; client_no_context_takeover"; compress && !strings.HasPrefix(c.Extensions(), want) {
					t.Fatalf("extensions %q, want %q", c.Extensions(), want)
				}
				if r := <-requests; r.Header.Get("Cookie") != "id=7" || r.URL.Path != "/" {
					t.Fatalf("the server's request: %+v", r)
				}
				msgs := []string{"", "hello", strings.Repeat("κόσμε ", 40000)}
				for _, m := range msgs {
					if err := c.WriteText(m); err != nil {
						t.Fatal(err)
					}
				}
				w, _ := c.NextWriter(TextMessage)
				var streamed bytes.Buffer
				for i := range 100 {
					fmt.Fprintf(io.MultiWriter(w, &streamed), "part %d;", i)
					io.MultiWriter(w, &streamed).Write(bytes.Repeat([]byte{'x'}, 5000)) // frames of their own
				}
				w.Close()
				if d.hybi() {
					c.WriteMessage(BinaryMessage, binaryPattern(100000))
					pong := make(chan string, 1)
					c.SetPongHandler(func(p []byte) { pong <- string(p) })
					c.Ping([]byte("are you there"))
					defer func() {
						if got := <-pong; got != "are you there" {
							t.Errorf("pong %q", got)
						}
					}()
				}
				for _, m := range msgs {
					if typ, got, err := c.ReadMessage(); err != nil || typ != TextMessage || string(got) != m {
						t.Fatalf("echo of %.20q: %v %.20q %v", m, typ, got, err)
					}
				}
				if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, streamed.Bytes()) {
					t.Fatalf("streamed message echoed as %d bytes, %v", len(got), err)
				}
				if d.hybi() {
					if typ, got, err := c.ReadMessage(); typ != BinaryMessage || !bytes.Equal(got, binaryPattern(100000)) || err != nil {
						t.Fatalf("binary echo: %v %d bytes %v", typ, len(got), err)
					}
				}
				if err := c.Close(StatusNormalClosure, ""); err != nil {
					t.Fatal(err)
				}
				waitStats(t, h, func(s Stats) bool { return s.Active == 0 && causeTotal(s.Closed) == 1 })
			})
		}
	}
}

// TestPipeServeReturns: when Serve returns, the client reads its close
// (1000); when it panics, 1011. CloseCause on the client is the peer's close.
func TestPipeServeReturns(t *testing.T) {
	h := &Handler{Logger: slog.New(slog.DiscardHandler), Serve: func(c *Conn) {
		if _, msg, _ := c.ReadMessage(); string(msg) == "panic" {
			panic("asked to")
		}
	}}
	for msg, code := range map[string]StatusCode{"return": StatusNormalClosure, "panic": StatusInternalError} {
		c, err := Pipe(h, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteText(msg)
		if _, _, err := c.ReadMessage(); CloseStatus(err) != code {
			t.Fatalf("after %s: %v, want a close with %d", msg, err, code)
		}
	}
	waitStats(t, h, func(s Stats) bool { return s.Closed.Panic == 1 && s.Closed.ServerClose == 1 })
}

// TestPipeCloseAtOnce: both ends close at the same moment, each writing its
// close before it reads: the buffered pipe lets both complete (a pipe
// without buffers, as net.Pipe, would hold both writes until CloseTimeout).
func TestPipeCloseAtOnce(t *testing.T) {
	for _, d := range allDialects {
		start := make(chan struct{})
		served := make(chan error, 1)
		h := &Handler{CloseTimeout: time.Minute, Serve: func(c *Conn) {
			<-start
			served <- c.Close(4001, "")
		}}
		c, err := Pipe(h, &DialOptions{Dialect: d, CloseTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		close(start)
		err = c.Close(4002, "")
		if d.hybi() && err != nil {
			t.Fatalf("%s: client's Close: %v", d, err)
		}
		if err := <-served; d.hybi() && err != nil {
			t.Fatalf("%s: server's Close: %v", d, err)
		}
		if took := time.Since(began); took > 30*time.Second {
			t.Fatalf("%s: closing at once took %v", d, took)
		}
	}
}

// TestPipeErrors: what Pipe refuses.
func TestPipeErrors(t *testing.T) {
	h := &Handler{Serve: func(*Conn) {}}
	for _, tc := range []struct {
		h    *Handler
		opts *DialOptions
		want string
	}{
		{&Handler{}, nil, "Serve and Handler.Events are nil"},
		{nil, nil, "Serve and Handler.Events are nil"},
		{h, &DialOptions{Dialect: 9}, "cannot dial Dialect(9)"},
		{h, &DialOptions{Dialect: Hixie76, Subprotocols: []string{"a", "b"}}, "offers one subprotocol"},
		{h, &DialOptions{Header: http.Header{"Sec-Websocket-Key": {"x"}}}, "may not set"},
	} {
		if c, err := Pipe(tc.h, tc.opts); c != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Pipe(%+v): %v, %v; want an error saying %q", tc.opts, c, err, tc.want)
		}
	}
	h.Shutdown(t.Context())
	if _, err := Pipe(h, nil); !errors.Is(err, ErrShutdown) {
		t.Errorf("Pipe after Shutdown: %v", err)
	}
}

// TestPipeLeaks: pipes of every dialect, closed by either end, by Serve
// returning, by CloseNow, by Shutdown, leave no goroutine.
func TestPipeLeaks(t *testing.T) {
	base := runtime.NumGoroutine()
	h := &Handler{Compression: &CompressionOptions{}, Serve: func(c *Conn) {
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil || string(msg) == "leave" {
				return
			}
			c.WriteMessage(typ, msg)
		}
	}}
	var wg sync.WaitGroup
	var open []*Conn
	for i := range 100 {
		d := allDialects[i%len(allDialects)]
		c, err := Pipe(h, &DialOptions{Dialect: d, Compression: &CompressionOptions{}})
		if err != nil {
			t.Fatal(err)
		}
		c.WriteText(strings.Repeat("hello ", 100))
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 4 {
			case 0:
				c.Close(StatusNormalClosure, "")
			case 1:
				c.WriteText("leave")
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						return
					}
				}
			case 2:
				c.CloseNow()
			}
		}()
		if i%4 == 3 {
			open = append(open, c)
		}
	}
	for _, c := range open {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := c.ReadMessage(); CloseStatus(err) != StatusGoingAway && c.Dialect().hybi() {
				t.Errorf("%s: read during Shutdown: %v", c.Dialect(), err)
			}
		}()
	}
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	waitGoroutines(t, "every pipe closed", base)
	if s := h.Stats(); s.Active != 0 || s.Accepted != 100 {
		t.Fatalf("stats %+v", s)
	}
}

// TestPipeEvents: a Handler that serves through Events serves a Pipe too,
// its callbacks on the server end's goroutine.
func TestPipeEvents(t *testing.T) {
	closed := make(chan error, 1)
	h := &Handler{Events: &Events{
		OnOpen:    func(c *Conn) { c.WriteText("hello") },
		OnMessage: func(c *Conn, typ MessageType, msg []byte) { c.WriteMessage(typ, append([]byte("echo: "), msg...)) },
		OnClose:   func(c *Conn, err error) { closed <- err },
	}}
	c, err := Pipe(h, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteText("x")
	for _, want := range []string{"hello", "echo: x"} {
		if _, msg, err := c.ReadMessage(); string(msg) != want {
			t.Fatalf("read %q, %v; want %q", msg, err, want)
		}
	}
	c.Close(StatusNormalClosure, "")
	var ce *CloseError
	if err := <-closed; !errors.As(err, &ce) || ce.Code != StatusNormalClosure {
		t.Fatalf("OnClose got %v", err)
	}
}
