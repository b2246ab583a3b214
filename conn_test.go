package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveOne starts a server whose callback is serve, and returns a channel
// that is closed when the callback returns.
func serveOne(t *testing.T, cfg func(*Handler), serve func(*Conn)) (*httptest.Server, chan struct{}) {
	done := make(chan struct{})
	var once sync.Once
	h := &Handler{Serve: func(c *Conn) {
		defer once.Do(func() { close(done) })
		serve(c)
	}}
	if cfg != nil {
		cfg(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, done
}

func waitDone(t *testing.T, done chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve callback did not return")
	}
}

func TestEchoEveryDialect(t *testing.T) {
	srv, _ := echoServer(t, func(h *Handler) { h.ReadLimit = 4 << 20 })
	msgs := []string{"", "hello", "héllo wörld ✓ 🎉", "nul\x00inside", strings.Repeat("x", 125), strings.Repeat("y", 126), strings.Repeat("z", 70000), strings.Repeat("é", 1<<20)}
	for _, d := range allDialects {
		t.Run(d.String(), func(t *testing.T) {
			c := dialDialect(t, srv, d, "/echo")
			for _, m := range msgs {
				c.writeText(d, m)
				if op, got := c.readMessage(d); op != 1 || string(got) != m {
					t.Fatalf("echo of %d bytes: op %d, %d bytes back", len(m), op, len(got))
				}
			}
		})
	}
}

func TestEchoBinary(t *testing.T) {
	srv, _ := echoServer(t, func(h *Handler) { h.ReadLimit = 4 << 20 })
	for _, d := range []Dialect{Hybi07, Hybi08, RFC6455} {
		c := dialDialect(t, srv, d, "/")
		for _, n := range []int{0, 1, 125, 126, 65535, 65536, 3 << 20} {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(rand.IntN(256))
			}
			c.write(clientFrame(true, 2, msg))
			if op, got := c.readMessage(d); op != 2 || !bytes.Equal(got, msg) {
				t.Fatalf("%s binary echo of %d bytes: op %d, %d bytes back", d, n, op, len(got))
			}
		}
	}
}

// TestSplitAndCoalesced sends messages one byte per TCP write, and many
// messages in a single write, in every dialect.
func TestSplitAndCoalesced(t *testing.T) {
	srv, _ := echoServer(t, nil)
	for _, d := range allDialects {
		t.Run(d.String(), func(t *testing.T) {
			c := dialDialect(t, srv, d, "/")
			var wire []byte
			frame := func(s string) []byte {
				if d.hybi() {
					return clientFrame(true, 1, []byte(s))
				}
				return append(append([]byte{0}, s...), 0xFF)
			}
			for _, b := range frame("split ✓ over many writes") {
				c.write([]byte{b})
				time.Sleep(time.Millisecond)
			}
			if _, got := c.readMessage(d); string(got) != "split ✓ over many writes" {
				t.Fatalf("split message echoed as %q", got)
			}
			for i := range 100 {
				wire = append(wire, frame(fmt.Sprintf("message %d", i))...)
			}
			c.write(wire)
			for i := range 100 {
				if _, got := c.readMessage(d); string(got) != fmt.Sprintf("message %d", i) {
					t.Fatalf("message %d echoed as %q", i, got)
				}
			}
		})
	}
}

// TestProtocolErrorReported checks what the callback's read returns when
// the connection is failed; the codes on the wire are the conformance
// suite's business.
func TestProtocolErrorReported(t *testing.T) {
	cases := map[StatusCode][]byte{
		StatusProtocolError:  {0x81, 0x02, 'h', 'i'}, // unmasked
		StatusInvalidPayload: clientFrame(true, 1, []byte{0xff}),
		StatusMessageTooBig:  clientFrame(true, 2, make([]byte, 101)),
	}
	for code, wire := range cases {
		errc := make(chan error, 1)
		srv, done := serveOne(t, func(h *Handler) { h.ReadLimit = 100 }, func(c *Conn) {
			_, _, err := c.ReadMessage()
			errc <- err
		})
		c := dialDialect(t, srv, RFC6455, "/")
		c.write(wire)
		c.expectClose()
		waitDone(t, done)
		var pe *ProtocolError
		if err := <-errc; !errors.As(err, &pe) || pe.Code != code || CloseStatus(err) != -1 {
			t.Errorf("%v: callback read %v", code, err)
		}
	}
}

func TestPeerCloseEchoed(t *testing.T) {
	errc := make(chan error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		_, _, err := c.ReadMessage()
		errc <- err
	})
	c := dialDialect(t, srv, RFC6455, "/")
	c.write(clientFrame(true, 8, closePayload(4001, "bye ✓")))
	f := c.readFrame()
	if f.op != 8 || !bytes.Equal(f.payload, closePayload(4001, "bye ✓")) {
		t.Fatalf("close answer %+v", f)
	}
	c.expectEOF()
	waitDone(t, done)
	var ce *CloseError
	if err := <-errc; !errors.As(err, &ce) || ce.Code != 4001 || ce.Reason != "bye ✓" || CloseStatus(err) != 4001 {
		t.Fatalf("ReadMessage error %v", err)
	}

	// An empty close is answered with an empty close.
	srv2, _ := echoServer(t, nil)
	c = dialDialect(t, srv2, RFC6455, "/")
	c.write(clientFrame(true, 8, nil))
	if f := c.readFrame(); f.op != 8 || len(f.payload) != 0 {
		t.Fatalf("answer to empty close %+v", f)
	}
	c.expectEOF()
}

func TestServerClose(t *testing.T) {
	closed := make(chan error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		closed <- c.Close(4000, "done here")
	})
	c := dialDialect(t, srv, RFC6455, "/")
	f := c.readFrame()
	if f.op != 8 || !bytes.Equal(f.payload, closePayload(4000, "done here")) {
		t.Fatalf("close frame %+v", f)
	}
	c.write(clientFrame(true, 8, f.payload))
	c.expectEOF()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitDone(t, done)
}

// TestServerCloseWhileReading closes from another goroutine while the
// callback reads: the reader gets the peer's answer.
func TestServerCloseWhileReading(t *testing.T) {
	readErr := make(chan error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		go func() {
			time.Sleep(20 * time.Millisecond)
			c.Close(StatusNormalClosure, "")
		}()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	})
	c := dialDialect(t, srv, RFC6455, "/")
	f := c.readFrame()
	if f.op != 8 {
		t.Fatalf("expected close, got %+v", f)
	}
	c.write(clientFrame(true, 8, f.payload))
	c.expectEOF()
	waitDone(t, done)
	if code := CloseStatus(<-readErr); code != StatusNormalClosure {
		t.Fatalf("reader saw close %v", code)
	}
}

func TestCloseTimeout(t *testing.T) {
	closed := make(chan time.Duration, 1)
	srv, done := serveOne(t, func(h *Handler) { h.CloseTimeout = 100 * time.Millisecond }, func(c *Conn) {
		start := time.Now()
		c.Close(StatusNormalClosure, "")
		closed <- time.Since(start)
	})
	c := dialDialect(t, srv, RFC6455, "/")
	if f := c.readFrame(); f.op != 8 {
		t.Fatalf("expected close, got %+v", f)
	}
	// Never answer: the server must drop the connection by itself.
	c.expectEOF()
	waitDone(t, done)
	if d := <-closed; d < 100*time.Millisecond {
		t.Fatalf("Close returned after %v, before the close timeout", d)
	}
}

func TestCloseArgumentsChecked(t *testing.T) {
	errs := make(chan []error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		errs <- []error{
			c.Close(1005, ""),
			c.Close(StatusNormalClosure, strings.Repeat("r", 124)),
			c.Close(StatusNormalClosure, "\xff"),
			c.Ping(make([]byte, 126)),
		}
	})
	c := dialDialect(t, srv, RFC6455, "/")
	waitDone(t, done)
	for i, err := range <-errs {
		if err == nil {
			t.Errorf("call %d: no error", i)
		}
	}
	// The bad calls sent nothing: the first frame is the final 1000.
	if f := c.readFrame(); f.op != 8 || !bytes.Equal(f.payload, closePayload(StatusNormalClosure, "")) {
		t.Fatalf("first frame %+v, want close 1000", f)
	}
	c.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
	c.expectEOF()
}

func TestHixieFraming(t *testing.T) {
	srv, _ := echoServer(t, nil)
	for _, d := range []Dialect{Hixie75, Hixie76} {
		t.Run(d.String(), func(t *testing.T) {
			c := dialDialect(t, srv, d, "/")
			var wire []byte
			wire = append(wire, 0x80, 0x03, 'a', 'b', 'c')                // length-prefixed, discarded
			wire = append(wire, 0x80, 0x81, 0x01)                         // length 129 in two groups
			wire = append(wire, bytes.Repeat([]byte{0xFF}, 129)...)       // its payload
			wire = append(wire, 0x05, 's', 'k', 'i', 'p', 0xFF)           // sentinel type 5, discarded
			wire = append(wire, 0x00, 'k', 'e', 'p', 't', ' ', '!', 0xFF) // text
			c.write(wire)
			if _, got := c.readMessage(d); string(got) != "kept !" {
				t.Fatalf("echo %q", got)
			}
		})
	}
}

func TestHixieClose(t *testing.T) {
	// Client closes hixie-76: the server answers 0xFF 0x00 and closes TCP.
	errc := make(chan error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		_, _, err := c.ReadMessage()
		errc <- err
	})
	c := dialDialect(t, srv, Hixie76, "/")
	c.write([]byte{0xFF, 0x00})
	var answer [2]byte
	if _, err := io.ReadFull(c.br, answer[:]); err != nil || answer != [2]byte{0xFF, 0x00} {
		t.Fatalf("answer %x, %v", answer, err)
	}
	c.expectEOF()
	waitDone(t, done)
	if code := CloseStatus(<-errc); code != StatusNoStatusRcvd {
		t.Fatalf("hixie-76 close reported as %v", code)
	}

	// On hixie-75, 0xFF 0x00 is an empty length-prefixed frame: skipped.
	srv75, _ := echoServer(t, nil)
	c = dialDialect(t, srv75, Hixie75, "/")
	c.write([]byte{0xFF, 0x00, 0x00, 'x', 0xFF})
	if _, got := c.readMessage(Hixie75); string(got) != "x" {
		t.Fatalf("hixie-75 echo after 0xFF 0x00: %q", got)
	}
}

func TestHixieRefusesWhatItCannotCarry(t *testing.T) {
	for _, d := range []Dialect{Hixie75, Hixie76} {
		t.Run(d.String(), func(t *testing.T) {
			errs := make(chan []error, 1)
			srv, done := serveOne(t, nil, func(c *Conn) {
				_, werr := c.NextWriter(BinaryMessage)
				errs <- []error{
					c.WriteMessage(BinaryMessage, []byte{1}),
					werr,
					c.Ping(nil),
					c.WriteText("bad \xff byte"),
					c.Close(StatusGoingAway, "bye"),
				}
			})
			c := dialDialect(t, srv, d, "/")
			if d == Hixie76 {
				var b [2]byte
				if _, err := io.ReadFull(c.br, b[:]); err != nil || b != [2]byte{0xFF, 0} {
					t.Fatalf("expected 0xFF 0x00, got %x %v", b, err)
				}
				c.write([]byte{0xFF, 0x00})
			}
			c.expectEOF()
			waitDone(t, done)
			for i, err := range <-errs {
				if err == nil {
					t.Errorf("call %d succeeded on %s", i, d)
				} else if i != 3 && !errors.Is(err, errors.ErrUnsupported) {
					t.Errorf("call %d: %v does not wrap errors.ErrUnsupported", i, err)
				}
			}
		})
	}
}

func TestHixieLimits(t *testing.T) {
	srv, _ := echoServer(t, func(h *Handler) { h.ReadLimit = 100 })
	cases := map[string][]byte{
		"text without terminator":  append([]byte{0x00}, bytes.Repeat([]byte("a"), 1000)...),
		"huge length prefix":       {0x80 | 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
		"long sentinel frame":      append([]byte{0x01}, bytes.Repeat([]byte("a"), 1000)...),
		"invalid UTF-8":            {0x00, 0xC3, 0x28, 0xFF},
		"truncated UTF-8 sequence": {0x00, 0xE2, 0x82, 0xFF},
	}
	for name, wire := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, srv)
			c.write([]byte(handshakeRequest(Hixie75, "h", "/")))
			c.readResponse()
			c.write(wire)
			c.expectEOF()
		})
	}
}

func TestConcurrentWriters(t *testing.T) {
	const writers, perWriter = 8, 200
	for _, d := range []Dialect{Hixie76, RFC6455} {
		t.Run(d.String(), func(t *testing.T) {
			srv, done := serveOne(t, nil, func(c *Conn) {
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for i := range perWriter {
							msg := fmt.Sprintf("%d:%d:%s", w, i, strings.Repeat("p", i*37%5000))
							if i%3 == 0 {
								// A streamed message, in several writes.
								wr, err := c.NextWriter(TextMessage)
								if err != nil {
									t.Error(err)
									return
								}
								for chunk := range strings.SplitSeq(msg, "p") {
									io.WriteString(wr, chunk+"p")
								}
								wr.Close()
							} else if err := c.WriteText(msg + "p"); err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				c.ReadMessage()
			})
			c := dialDialect(t, srv, d, "/")
			next := make([]int, writers)
			for range writers * perWriter {
				_, msg := c.readMessage(d)
				var w, i int
				var rest string
				if _, err := fmt.Sscanf(string(msg), "%d:%d:%s", &w, &i, &rest); err != nil {
					t.Fatalf("garbled message %q", msg)
				}
				want := strings.Repeat("p", i*37%5000) + "p"
				if i != next[w] || len(msg) != len(fmt.Sprintf("%d:%d:", w, i))+len(want) {
					t.Fatalf("writer %d: message %d (%d bytes), want %d", w, i, len(msg), next[w])
				}
				next[w]++
			}
			c.writeText(d, "done")
			waitDone(t, done)
		})
	}
}

func TestStreamingReaderAndWriter(t *testing.T) {
	const size = 5<<20 + 17
	srv, done := serveOne(t, func(h *Handler) { h.ReadLimit = -1 }, func(c *Conn) {
		typ, r, err := c.NextReader()
		if err != nil {
			t.Error(err)
			return
		}
		w, err := c.NextWriter(typ)
		if err != nil {
			t.Error(err)
			return
		}
		n, err := io.Copy(w, r)
		if err != nil || n != size {
			t.Errorf("copied %d, %v", n, err)
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Error("write after Close succeeded")
		}
	})
	c := dialDialect(t, srv, RFC6455, "/")
	msg := make([]byte, size)
	for i := range msg {
		msg[i] = byte(i * 7)
	}
	go func() {
		// Sent in fragments of varying size.
		for off, i := 0, 0; off < size; i++ {
			n := min(1+i*4099%300000, size-off)
			op := byte(0)
			if off == 0 {
				op = 2
			}
			c.conn.Write(clientFrame(off+n == size, op, msg[off:off+n]))
			off += n
		}
	}()
	op, got := c.readMessage(RFC6455)
	if op != 2 || !bytes.Equal(got, msg) {
		t.Fatalf("streamed echo: op %d, %d bytes, equal %v", op, len(got), bytes.Equal(got, msg))
	}
	waitDone(t, done)
}

func TestPongHandlerAndPing(t *testing.T) {
	pongs := make(chan string, 2)
	srv, _ := serveOne(t, nil, func(c *Conn) {
		c.SetPongHandler(func(p []byte) { pongs <- string(p) })
		if err := c.Ping([]byte("are you there")); err != nil {
			t.Error(err)
		}
		c.ReadMessage()
	})
	c := dialDialect(t, srv, RFC6455, "/")
	f := c.readFrame()
	if f.op != 9 || string(f.payload) != "are you there" {
		t.Fatalf("ping %+v", f)
	}
	c.write(clientFrame(true, 10, f.payload))
	c.write(clientFrame(true, 10, []byte("unsolicited")))
	for _, want := range []string{"are you there", "unsolicited"} {
		select {
		case got := <-pongs:
			if got != want {
				t.Fatalf("pong %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("pong handler not called")
		}
	}
}

func TestStaleReader(t *testing.T) {
	errc := make(chan error, 1)
	srv, _ := serveOne(t, nil, func(c *Conn) {
		_, r1, _ := c.NextReader()
		c.NextReader()
		_, err := r1.Read(make([]byte, 1))
		errc <- err
	})
	c := dialDialect(t, srv, RFC6455, "/")
	c.writeText(RFC6455, "first, partly read")
	c.writeText(RFC6455, "second")
	if err := <-errc; err == nil {
		t.Fatal("a stale reader read")
	}
}
