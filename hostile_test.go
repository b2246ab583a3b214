package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Hostile clients: an endpoint on the open internet meets clients that
// stall, lie about lengths, flood, vanish or never read. Each bad input
// goes over a real socket; each test asserts what the bad client sees, and
// that a well-behaved client of the same server is still served, and the
// tests that open many connections check that no goroutine is left behind.
//
// The helpers of this file (prefix hos) are shared with keepalive_test.go
// and tls_test.go.

// hosStart serves h (over TLS if useTLS), with cfg applied to the
// http.Server first. At the end of the test it fails if the server (or the
// Handler, whose Logger it sets if nil) logged a panic.
func hosStart(t *testing.T, h http.Handler, cfg func(*http.Server), useTLS bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	errLog := &htBuffer{}
	srv.Config.ErrorLog = log.New(errLog, "", 0)
	if wh, ok := h.(*Handler); ok && wh.Logger == nil {
		// Errors only: a panic in Serve is logged there.
		wh.Logger = slog.New(slog.NewTextHandler(errLog, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	if cfg != nil {
		cfg(srv.Config)
	}
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(func() {
		srv.Close()
		if s := errLog.String(); strings.Contains(s, "panic") {
			t.Errorf("the server logged a panic:\n%s", s)
		}
	})
	return srv
}

// hosSmallBuffers makes the server's socket send buffers small, so that a
// client that does not read blocks the server's writes after a few KiB
// rather than after the megabytes the kernel would otherwise buffer.
func hosSmallBuffers(s *http.Server) {
	s.ConnState = func(c net.Conn, state http.ConnState) {
		if tc, ok := c.(*net.TCPConn); ok && state == http.StateNew {
			tc.SetWriteBuffer(16 << 10)
		}
	}
}

// hosRouted serves requests for /check with echoMessages (the well-behaved
// clients) and the others with serve (the hostile ones).
func hosRouted(serve func(*Conn)) func(*Conn) {
	return func(c *Conn) {
		if c.Request().URL.Path == "/check" {
			echoMessages(c)
			return
		}
		serve(c)
	}
}

// hosResult is how a Serve callback ended.
type hosResult struct {
	msgs    []string      // messages read before the error
	err     error         // the read (or write) error that ended it
	elapsed time.Duration // from the start of the callback
}

// hosRecorder is a Serve callback that echoes and reports how it ended.
type hosRecorder chan hosResult

func newHosRecorder() hosRecorder { return make(hosRecorder, 64) }

func (r hosRecorder) serve(c *Conn) { r.run(c, true) }

// readOnly reads without echoing: a client that hangs up right after its
// last message then gets no write from the server (whose reset could race
// with the read of the hang-up).
func (r hosRecorder) readOnly(c *Conn) { r.run(c, false) }

func (r hosRecorder) run(c *Conn, echo bool) {
	start := time.Now()
	var res hosResult
	defer func() {
		if p := recover(); p != nil {
			r <- hosResult{res.msgs, fmt.Errorf("the callback panicked: %v", p), time.Since(start)}
			panic(p)
		}
	}()
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			res.err = err
			break
		}
		res.msgs = append(res.msgs, string(msg))
		if !echo {
			continue
		}
		if err := c.WriteMessage(typ, msg); err != nil {
			res.err = err
			break
		}
	}
	res.elapsed = time.Since(start)
	r <- res
}

// wait returns the result of the next callback to end.
func (r hosRecorder) wait(t *testing.T) hosResult {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(5 * time.Second):
		t.Fatal("the Serve callback did not return")
		return hosResult{}
	}
}

// why says, for a failure's message, how the callback ended, waiting for
// it a little.
func (r hosRecorder) why() string {
	select {
	case res := <-r:
		return fmt.Sprintf("the callback's read ended with %v after %v", res.err, res.elapsed)
	case <-time.After(time.Second):
		return "the callback is still running"
	}
}

// hosCheckServed dials a fresh client of dialect d on /check, checks that a
// message is echoed and closes cleanly.
func hosCheckServed(t *testing.T, srv *httptest.Server, d Dialect) {
	t.Helper()
	c := dialDialect(t, srv, d, "/check")
	checkEcho(t, c, d, "still served, "+d.String())
	htClientClose(t, c, d)
}

// hosExpectDrop reads until the server ends the connection and returns
// what it sent first and when it ended. A reset counts as an end; a read
// timeout (bound) fails the test.
func hosExpectDrop(t *testing.T, conn net.Conn, r io.Reader, bound time.Duration) ([]byte, time.Time) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(bound))
	rest, err := io.ReadAll(r)
	end := time.Now()
	if isTimeout(err) {
		t.Fatalf("the connection was not dropped within %v (received %q)", bound, hosHead(rest))
	}
	return rest, end
}

func hosHead(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// hosWaitGoroutines polls until no more goroutines run than base (taken
// at the start of the test, once its server runs), up to 5 s; then it
// fails with a dump of them all.
func hosWaitGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines still run, %d at the start:\n%s", n, base, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hosWaitActive polls until the handler tracks no connection, up to 5 s.
func hosWaitActive(t *testing.T, h *Handler) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Active != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Stats().Active is %d, want 0", h.Stats().Active)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// hosTotalAlloc is the process's cumulative heap allocation.
func hosTotalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// hosHixieLength encodes n as the 7-bit groups of a hixie length-prefixed
// frame, most significant first.
func hosHixieLength(n uint64) []byte {
	var groups []byte
	for {
		groups = append([]byte{byte(n & 0x7F)}, groups...)
		if n >>= 7; n == 0 {
			break
		}
	}
	for i := range groups[:len(groups)-1] {
		groups[i] |= 0x80
	}
	return groups
}

// hosHybiHeader is a masked client frame header claiming n payload bytes,
// with the 8-byte length form.
func hosHybiHeader(op byte, n uint64) []byte {
	h := binary.BigEndian.AppendUint64([]byte{0x80 | op, 0x80 | 127}, n)
	return append(h, 0x37, 0xfa, 0x21, 0x3d)
}

// hosIsTooBig reports whether err is the read error of a message over the
// read limit.
func hosIsTooBig(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe) && pe.Code == StatusMessageTooBig
}

// 1. Handshakes that trickle in.

// Headers sent one byte every 50 ms to a server whose ReadHeaderTimeout is
// 300 ms: net/http drops each such client (the handler never sees it) while
// the others are served.
func TestHostileSlowHeaders(t *testing.T) {
	const readHeaderTimeout = 300 * time.Millisecond
	h := &Handler{Serve: echoMessages}
	inMode(t, h, &echoEvents)
	srv := hosStart(t, h, func(s *http.Server) { s.ReadHeaderTimeout = readHeaderTimeout }, false)
	base := runtime.NumGoroutine()
	addr := srv.Listener.Addr().String()

	const slow = 10
	var wg sync.WaitGroup
	errs := make(chan string, slow)
	for i := range slow {
		d := allDialects[i%len(allDialects)]
		wg.Go(func() {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer conn.Close()
			req := handshakeRequest(d, addr, "/slow")
			start := time.Now()
			var writer sync.WaitGroup
			writer.Go(func() {
				for i := range len(req) {
					if _, err := conn.Write([]byte{req[i]}); err != nil {
						return // dropped
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(conn)
			elapsed := time.Since(start)
			conn.Close() // ends the writer
			writer.Wait()
			switch {
			case isTimeout(err):
				errs <- fmt.Sprintf("%s: trickling client not dropped in 5 s", d)
			case len(rest) > 0 && !strings.HasPrefix(string(rest), "HTTP/1.1 4"):
				errs <- fmt.Sprintf("%s: trickling client got %q", d, hosHead(rest))
			case elapsed < readHeaderTimeout-50*time.Millisecond || elapsed > readHeaderTimeout+1500*time.Millisecond:
				errs <- fmt.Sprintf("%s: trickling client dropped after %v, ReadHeaderTimeout %v", d, elapsed, readHeaderTimeout)
			}
		})
	}
	// Meanwhile, everyone else is served.
	time.Sleep(100 * time.Millisecond)
	for _, d := range allDialects {
		hosCheckServed(t, srv, d)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := h.Stats(); s.Accepted != uint64(len(allDialects)) || s.Refused != (Refusals{}) {
		t.Errorf("stats %+v: the trickling clients should never reach the handler", s)
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// hixie-76's key3 trickling in (4 of its 8 bytes, one every 50 ms, then
// nothing) is bounded by HandshakeTimeout: the connection is dropped with
// nothing written, and counted as a timeout.
func TestHostileHixie76Key3Trickle(t *testing.T) {
	const timeout = 200 * time.Millisecond
	h := &Handler{Serve: echoMessages, HandshakeTimeout: timeout}
	inMode(t, h, &echoEvents)
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()

	c := dialRaw(t, srv)
	req := handshakeRequest(Hixie76, srv.Listener.Addr().String(), "/slow")
	head, key3 := req[:len(req)-8], req[len(req)-8:]
	start := time.Now()
	c.write([]byte(head))
	go func() {
		for i := range 4 {
			time.Sleep(50 * time.Millisecond)
			if _, err := c.conn.Write([]byte{key3[i]}); err != nil {
				return
			}
		}
	}()
	// Served meanwhile.
	hosCheckServed(t, srv, Hixie76)
	hosCheckServed(t, srv, RFC6455)

	rest, end := hosExpectDrop(t, c.conn, c.br, 5*time.Second)
	elapsed := end.Sub(start)
	if len(rest) != 0 {
		t.Errorf("the stalled client was sent %q", hosHead(rest))
	}
	if elapsed < timeout-20*time.Millisecond || elapsed > timeout+time.Second {
		t.Errorf("dropped after %v, HandshakeTimeout %v", elapsed, timeout)
	}
	if s := h.Stats(); s.Refused != (Refusals{Timeout: 1}) || s.Accepted != 2 {
		t.Errorf("stats %+v, want 2 accepted and 1 timeout", s)
	}
	c.conn.Close()
	hosCheckServed(t, srv, Hixie76)
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// A hixie answer echoes the client's URL: a client that sends a long one
// and never reads makes the answer's write wait, which HandshakeTimeout
// bounds too. The URL is longer than the sockets' buffers can hold (the
// server's send buffer grows to 4 MiB on Linux), and the server takes
// headers that long.
func TestHostileHixieAnswerNeverRead(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h := &Handler{Serve: echoMessages, HandshakeTimeout: timeout}
	inMode(t, h, &echoEvents)
	srv := hosStart(t, h, func(s *http.Server) { s.MaxHeaderBytes = 16 << 20 }, false)
	base := runtime.NumGoroutine()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	path := "/" + strings.Repeat("x", 8<<20)
	start := time.Now()
	if _, err := conn.Write([]byte(handshakeRequest(Hixie75, srv.Listener.Addr().String(), path))); err != nil {
		t.Fatal(err)
	}
	htPoll(t, "the handshake to time out", func() bool { return h.Stats().Refused.Timeout == 1 })
	if elapsed := time.Since(start); elapsed < timeout-20*time.Millisecond {
		t.Errorf("dropped after %v, HandshakeTimeout %v", elapsed, timeout)
	}
	if s := h.Stats(); s.Accepted != 0 || s.Active != 0 {
		t.Errorf("stats %+v, want nothing accepted", s)
	}
	hosCheckServed(t, srv, Hixie75)
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// 2. Lying about lengths.

// A hixie frame that never ends (text with no 0xFF, or a sentinel-framed
// type other than text) fails the connection once it exceeds the read
// limit: hixie-76 sends 0xFF 0x00 first, then TCP is closed.
func TestHostileHixieUnterminated(t *testing.T) {
	rec := newHosRecorder()
	h := &Handler{Serve: hosRouted(rec.serve), ReadLimit: 1024, CloseTimeout: 300 * time.Millisecond}
	inMode(t, h, hosRoutedEvents(rec.events(true)))
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()
	for _, d := range []Dialect{Hixie75, Hixie76} {
		for _, typ := range []byte{0x00, 0x01, 0x7F} {
			t.Run(fmt.Sprintf("%s/type %#x", d, typ), func(t *testing.T) {
				c := dialDialect(t, srv, d, "/hostile")
				// 4 KiB past the type byte, no 0xFF, then the client stalls.
				start := time.Now()
				c.write(append([]byte{typ}, bytes.Repeat([]byte("a"), 4096)...))
				rest, end := hosExpectDrop(t, c.conn, c.br, 3*time.Second)
				want := ""
				if d == Hixie76 {
					want = "\xff\x00"
				}
				if string(rest) != want {
					t.Errorf("before the TCP close the server sent %q, want %q", hosHead(rest), want)
				}
				c.conn.Close() // ends the server's linger
				res := rec.wait(t)
				if !hosIsTooBig(res.err) || len(res.msgs) != 0 {
					t.Errorf("the callback read %q, then %v; want a 1009 protocol error", res.msgs, res.err)
				}
				if el := end.Sub(start); el > time.Second {
					t.Errorf("dropped after %v", el)
				}
				c.conn.Close()
				hosCheckServed(t, srv, d)
			})
		}
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// A hixie length-prefixed frame claiming 2^40 bytes is refused as soon as
// its length is read, with nothing allocated for it; with no read limit a
// length past the sanity cap (2^48) is refused all the same.
func TestHostileHixieHugeLength(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limit  int64
		length uint64
	}{
		{"default limit, 2^40", 0, 1 << 40},
		{"no limit, 2^56", -1, 1 << 56},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newHosRecorder()
			h := &Handler{Serve: hosRouted(rec.serve), ReadLimit: tc.limit, CloseTimeout: 300 * time.Millisecond}
			inMode(t, h, hosRoutedEvents(rec.events(true)))
			srv := hosStart(t, h, nil, false)
			base := runtime.NumGoroutine()
			for _, d := range []Dialect{Hixie75, Hixie76} {
				c := dialDialect(t, srv, d, "/hostile")
				runtime.GC()
				before := hosTotalAlloc()
				start := time.Now()
				c.write(append([]byte{0x80}, hosHixieLength(tc.length)...))
				rest, end := hosExpectDrop(t, c.conn, c.br, 3*time.Second)
				c.conn.Close() // ends the server's linger
				res := rec.wait(t)
				allocated := hosTotalAlloc() - before
				want := ""
				if d == Hixie76 {
					want = "\xff\x00"
				}
				if string(rest) != want {
					t.Errorf("%s: before the TCP close the server sent %q, want %q", d, hosHead(rest), want)
				}
				if !hosIsTooBig(res.err) {
					t.Errorf("%s: the callback's read ended with %v, want a 1009 protocol error", d, res.err)
				}
				if el := end.Sub(start); el > time.Second {
					t.Errorf("%s: refused after %v, want at once", d, el)
				}
				if allocated > 4<<20 {
					t.Errorf("%s: %d bytes allocated while refusing a frame of %d bytes", d, allocated, tc.length)
				}
				c.conn.Close()
				hosCheckServed(t, srv, d)
			}
			hosWaitActive(t, h)
			hosWaitGoroutines(t, base)
		})
	}
}

// RFC 6455 frames over the read limit are failed with 1009 as soon as the
// header is read: a frame claiming 2^62 bytes before any of its payload is
// sent, a 2 KiB frame, or fragments adding up to more than the 1 KiB limit.
// A message of exactly the limit still passes.
func TestHostileHybiOverLimit(t *testing.T) {
	rec := newHosRecorder()
	h := &Handler{Serve: hosRouted(rec.serve), ReadLimit: 1024, CloseTimeout: 300 * time.Millisecond}
	inMode(t, h, hosRoutedEvents(rec.events(true)))
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()
	big := bytes.Repeat([]byte("b"), 2048)
	for _, tc := range []struct {
		name string
		d    Dialect
		wire []byte
		code StatusCode // 0: echoed
	}{
		{"2^62 header only", RFC6455, hosHybiHeader(2, 1<<62), StatusMessageTooBig},
		{"2^62 header only, hybi-07", Hybi07, hosHybiHeader(2, 1<<62), StatusMessageTooBig},
		{"2^62 header only, hybi-08", Hybi08, hosHybiHeader(1, 1<<62), StatusMessageTooBig},
		{"2^63 (most significant bit set)", RFC6455, hosHybiHeader(2, 1<<63), StatusProtocolError},
		{"2 KiB frame", RFC6455, clientFrame(true, 1, big), StatusMessageTooBig},
		{"2 KiB in 4 fragments", RFC6455, bytes.Join([][]byte{clientFrame(false, 2, big[:512]), clientFrame(false, 0, big[512:1024]),
			clientFrame(false, 0, big[1024:1536]), clientFrame(true, 0, big[1536:])}, nil), StatusMessageTooBig},
		{"2 KiB header, 100 bytes sent", RFC6455, clientFrame(true, 2, big)[:108], StatusMessageTooBig},
		{"exactly the limit", RFC6455, clientFrame(true, 1, big[:1024]), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialDialect(t, srv, tc.d, "/hostile")
			runtime.GC()
			before := hosTotalAlloc()
			c.write(tc.wire)
			if tc.code == 0 {
				if op, msg := c.readMessage(tc.d); op != 1 || len(msg) != 1024 {
					t.Fatalf("a message of exactly the limit came back as op %d, %d bytes", op, len(msg))
				}
				htClientClose(t, c, tc.d)
				rec.wait(t)
				return
			}
			f, err := c.tryReadFrame()
			if err != nil || f.op != 8 || len(f.payload) < 2 {
				t.Fatalf("expected a close frame, got %+v, %v", f, err)
			}
			if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != tc.code {
				t.Errorf("close %v %q, want %v", code, f.payload[2:], tc.code)
			}
			if rest, _ := hosExpectDrop(t, c.conn, c.br, 3*time.Second); len(rest) != 0 {
				t.Errorf("after the close the server sent %q", hosHead(rest))
			}
			c.conn.Close() // ends the server's linger
			res := rec.wait(t)
			var pe *ProtocolError
			if !errors.As(res.err, &pe) || pe.Code != tc.code || len(res.msgs) != 0 {
				t.Errorf("the callback read %d messages, then %v; want a %v protocol error", len(res.msgs), res.err, tc.code)
			}
			if allocated := hosTotalAlloc() - before; allocated > 4<<20 {
				t.Errorf("%d bytes allocated while refusing the frame", allocated)
			}
			c.conn.Close()
			hosCheckServed(t, srv, tc.d)
		})
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// 3. Flooding.

// A client sends 100 000 pings (125-byte payloads) and reads nothing. The
// server answers each with a pong, but does not buffer them (on the
// engine, beyond its 64 KiB write queue): once the socket's buffers are
// full its reader blocks on the pong's write, which
// times out after WriteTimeout, and the connection is closed. Goroutines
// and memory stay bounded, and another client is served meanwhile. The
// same for a hixie-76 client flooding an echo with messages it never reads.
func TestHostileFlood(t *testing.T) {
	const writeTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		d     Dialect
		frame []byte // sent 100 000 times
		back  int    // bytes the server sends for each
	}{
		{"RFC 6455 pings", RFC6455, clientFrame(true, 9, bytes.Repeat([]byte("p"), 125)), 127},
		{"hixie-76 echoed messages", Hixie76, append(append([]byte{0x00}, bytes.Repeat([]byte("m"), 125)...), 0xFF), 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newHosRecorder()
			h := &Handler{Serve: hosRouted(rec.serve), WriteTimeout: writeTimeout}
			inMode(t, h, hosRoutedEvents(rec.events(true)))
			srv := hosStart(t, h, hosSmallBuffers, false)
			base := runtime.NumGoroutine()

			c := dialDialect(t, srv, tc.d, "/flood")
			c.conn.(*net.TCPConn).SetReadBuffer(8 << 10)
			const frames, perWrite = 100_000, 500
			chunk := bytes.Repeat(tc.frame, perWrite)
			runtime.GC()
			before := hosTotalAlloc()
			start := time.Now()
			sent := make(chan int, 1)
			go func() {
				for n := 0; n < frames; n += perWrite {
					if _, err := c.conn.Write(chunk); err != nil {
						sent <- n
						return
					}
				}
				sent <- frames
			}()

			time.Sleep(50 * time.Millisecond)
			hosCheckServed(t, srv, tc.d) // meanwhile
			hosCheckServed(t, srv, RFC6455)

			res := rec.wait(t)
			elapsed := time.Since(start)
			if !errors.Is(res.err, os.ErrDeadlineExceeded) {
				t.Errorf("the flooded connection ended with %v, want the timeout of the server's write", res.err)
			}
			if elapsed > writeTimeout+2*time.Second {
				t.Errorf("the flooded connection was closed after %v, WriteTimeout %v", elapsed, writeTimeout)
			}
			select {
			case n := <-sent:
				t.Logf("the flooder wrote %d frames (of %d) before the server dropped it after %v; the callback read %d messages", n, frames, elapsed, len(res.msgs))
			case <-time.After(5 * time.Second):
				t.Fatal("the flooder's writes still block: the server neither reads nor closed the connection")
			}
			c.conn.Close()
			hosWaitActive(t, h)
			hosWaitGoroutines(t, base)
			allocated := hosTotalAlloc() - before
			t.Logf("allocated %d bytes during a flood whose answers would take %d", allocated, frames*tc.back)
			// Each message read costs its own allocations (the echo reads
			// them whole); what matters is that reading stops once the
			// answers cannot be written, after a few hundred.
			if len(res.msgs) > 5000 {
				t.Errorf("the callback read %d messages whose echoes could not be sent", len(res.msgs))
			}
			if limit := 4<<20 + 16<<10*uint64(len(res.msgs)); allocated > limit {
				t.Errorf("%d bytes allocated during the flood: the answers are buffered", allocated)
			}
			hosCheckServed(t, srv, tc.d)
		})
	}
}

// 4. Clients that never read.

// A server writing large messages in a loop to a client that reads
// nothing: each write is bounded by WriteTimeout (or the user's earlier
// write deadline), WriteMessage returns the timeout, the callback returns
// and the connection is untracked.
func TestHostileNeverReads(t *testing.T) {
	for _, tc := range []struct {
		name          string
		d             Dialect
		writeTimeout  time.Duration
		userDeadline  time.Duration // 0: none
		expectedAfter time.Duration
	}{
		{"WriteTimeout", RFC6455, 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"WriteTimeout hixie-76", Hixie76, 300 * time.Millisecond, 0, 300 * time.Millisecond},
		{"user deadline before WriteTimeout", RFC6455, 10 * time.Second, 300 * time.Millisecond, 300 * time.Millisecond},
		{"user deadline, no WriteTimeout", RFC6455, -1, 300 * time.Millisecond, 300 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type outcome struct {
				err     error
				written int
				elapsed time.Duration
			}
			done := make(chan outcome, 1)
			h := &Handler{WriteTimeout: tc.writeTimeout, Serve: hosRouted(func(c *Conn) {
				start := time.Now()
				if tc.userDeadline > 0 {
					c.SetWriteDeadline(start.Add(tc.userDeadline))
				}
				msg := bytes.Repeat([]byte("w"), 64<<10)
				for n := 0; ; n++ {
					if err := c.WriteMessage(TextMessage, msg); err != nil || n > 10_000 {
						done <- outcome{err, n, time.Since(start)}
						return
					}
				}
			})}
			srv := hosStart(t, h, hosSmallBuffers, false)
			base := runtime.NumGoroutine()
			c := dialDialect(t, srv, tc.d, "/write")
			c.conn.(*net.TCPConn).SetReadBuffer(8 << 10)

			var out outcome
			select {
			case out = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("WriteMessage still blocks after 5 s")
			}
			if !errors.Is(out.err, os.ErrDeadlineExceeded) {
				t.Errorf("WriteMessage returned %v after %d messages, want a timeout", out.err, out.written)
			}
			if out.elapsed < tc.expectedAfter-50*time.Millisecond || out.elapsed > tc.expectedAfter+1500*time.Millisecond {
				t.Errorf("WriteMessage failed after %v, want about %v", out.elapsed, tc.expectedAfter)
			}
			hosWaitActive(t, h)
			hosCheckServed(t, srv, tc.d)
			c.conn.Close()
			hosWaitGoroutines(t, base)
		})
	}
}

// A client that stops reading for less than WriteTimeout, then catches
// up: the blocked write completes, and the write timeout it armed is
// lifted, so a write long after it (past that timeout) still succeeds, and
// so does the user's own deadline's. (16 MiB: more than the kernel buffers
// on both sides, so that the first write blocks.)
func TestHostileSlowReaderCatchesUp(t *testing.T) {
	// The timeout leaves the client, slow under -race, time to read 16 MiB.
	const writeTimeout, pause = 2 * time.Second, 200 * time.Millisecond
	big := string(bytes.Repeat([]byte("s"), 16<<20))
	for _, tc := range []struct {
		name         string
		d            Dialect
		userDeadline bool
	}{
		{"RFC 6455", RFC6455, false},
		{"hixie-76", Hixie76, false},
		{"RFC 6455, user deadline an hour away", RFC6455, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			type result struct {
				err     error
				elapsed time.Duration
			}
			results := make(chan result, 3)
			write := func(c *Conn, s string) {
				start := time.Now()
				err := c.WriteText(s)
				results <- result{err, time.Since(start)}
			}
			h := &Handler{WriteTimeout: writeTimeout, Serve: hosRouted(func(c *Conn) {
				if tc.userDeadline {
					c.SetWriteDeadline(time.Now().Add(time.Hour))
				}
				write(c, big) // blocks until the client reads
				time.Sleep(writeTimeout + 200*time.Millisecond)
				write(c, "after the pause")
				write(c, big)
				c.ReadMessage()
			})}
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, tc.d, "/slow")
			time.Sleep(pause) // the socket fills up meanwhile
			for i, want := range []string{big, "after the pause", big} {
				if _, msg := c.readMessage(tc.d); string(msg) != want {
					t.Fatalf("message %d: %d bytes, want %d", i, len(msg), len(want))
				}
				r := <-results
				if r.err != nil {
					t.Fatalf("write %d: %v after %v", i, r.err, r.elapsed)
				}
				if i == 0 && r.elapsed < pause*3/4 {
					t.Fatalf("the first write took %v: it never waited for the client", r.elapsed)
				}
			}
		})
	}
}

// 5. Clients that vanish.

// Clients that drop the TCP connection in the middle of a frame or a
// handshake: the callback's read fails (io.ErrUnexpectedEOF when a frame
// was cut), nothing is delivered as a whole message that was not one, a
// message completed before the drop is delivered, and nothing leaks.
func TestHostileDropMidMessage(t *testing.T) {
	rec := newHosRecorder()
	h := &Handler{Serve: hosRouted(rec.readOnly)}
	inMode(t, h, hosRoutedEvents(rec.events(false)))
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()
	frame := clientFrame(true, 1, bytes.Repeat([]byte("m"), 100))
	for _, tc := range []struct {
		name   string
		d      Dialect
		wire   []byte
		msgs   []string // delivered before the error
		strict bool     // the error must be io.ErrUnexpectedEOF, not io.EOF
	}{
		{"first header byte", RFC6455, frame[:1], nil, false},
		{"header without its mask", RFC6455, frame[:4], nil, true},
		{"extended length cut", RFC6455, clientFrame(true, 2, make([]byte, 300))[:3], nil, true},
		{"half the payload", RFC6455, frame[:6+50], nil, true},
		{"first fragment only", RFC6455, clientFrame(false, 1, []byte("hello ")), nil, true},
		{"first fragment, 1 byte of the next", RFC6455, append(clientFrame(false, 1, []byte("hello ")), 0x80), nil, true},
		{"second fragment cut", RFC6455, append(clientFrame(false, 1, []byte("hello ")), clientFrame(true, 0, []byte("world"))[:8]...), nil, true},
		{"whole message, then drop", RFC6455, clientFrame(true, 1, []byte("last words")), []string{"last words"}, false},
		{"hixie-76 text cut", Hixie76, []byte("\x00some text"), nil, true},
		{"hixie-75 text cut", Hixie75, []byte("\x00some text"), nil, true},
		{"hixie-76 length-prefixed cut", Hixie76, []byte("\x80\x0aabc"), nil, true},
		{"hixie-76 whole message, then drop", Hixie76, []byte("\x00last words\xff"), []string{"last words"}, false},
		{"hixie-75 whole message, then drop", Hixie75, []byte("\x00last words\xff"), []string{"last words"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialDialect(t, srv, tc.d, "/drop")
			c.write(tc.wire)
			c.conn.Close()
			res := rec.wait(t)
			if fmt.Sprint(res.msgs) != fmt.Sprint(tc.msgs) {
				t.Errorf("the callback read %q, want %q", res.msgs, tc.msgs)
			}
			switch {
			case tc.strict && !errors.Is(res.err, io.ErrUnexpectedEOF):
				t.Errorf("the callback's read ended with %v, want io.ErrUnexpectedEOF", res.err)
			case !errors.Is(res.err, io.ErrUnexpectedEOF) && !errors.Is(res.err, io.EOF):
				t.Errorf("the callback's read ended with %v, want io.EOF or io.ErrUnexpectedEOF", res.err)
			}
			hosCheckServed(t, srv, tc.d)
		})
	}

	// Handshakes cut short never reach the callback.
	accepted := h.Stats().Accepted
	req := handshakeRequest(RFC6455, srv.Listener.Addr().String(), "/drop")
	c := dialRaw(t, srv)
	c.write([]byte(req[:len(req)/2]))
	c.conn.Close()
	req76 := handshakeRequest(Hixie76, srv.Listener.Addr().String(), "/drop")
	c = dialRaw(t, srv)
	c.write([]byte(req76[:len(req76)-4])) // half of key3
	c.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Refused.BadHandshake != 1 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
	if s := h.Stats(); s.Refused != (Refusals{BadHandshake: 1}) || s.Accepted != accepted {
		t.Errorf("stats %+v: want the hixie-76 hang-up counted as a bad handshake, nothing accepted", s)
	}
	for _, d := range allDialects {
		hosCheckServed(t, srv, d)
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// 6. Not WebSocket at all.

// Garbage instead of a handshake, an HTTP/1.0 upgrade, a header over
// MaxHeaderBytes: an HTTP error or a dropped connection, never an upgrade
// or a panic, and the others are still served. The server is configured as
// one facing the internet should be (ReadHeaderTimeout, MaxHeaderBytes):
// garbage with no line end is net/http's slow client.
func TestHostileGarbage(t *testing.T) {
	var called sync.Map
	h := &Handler{Serve: hosRouted(func(c *Conn) { called.Store(c.Request().URL.Path, true) })}
	srv := hosStart(t, h, func(s *http.Server) {
		s.MaxHeaderBytes = 4096
		s.ReadHeaderTimeout = 500 * time.Millisecond
	}, false)
	base := runtime.NumGoroutine()
	addr := srv.Listener.Addr().String()
	noise := make([]byte, 256)
	for i := range noise {
		noise[i] = byte(i)
	}
	http10 := func(d Dialect) string {
		return strings.Replace(handshakeRequest(d, addr, "/http10"), "HTTP/1.1", "HTTP/1.0", 1)
	}
	huge := handshakeRequest(RFC6455, addr, "/huge", "X-Padding: "+strings.Repeat("p", 64<<10))
	t.Run("cases", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			wire   string
			status int // 0: an HTTP error (>= 400) or a drop
		}{
			{"TLS client hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + strings.Repeat("\x00", 64), 0},
			{"binary noise", string(noise) + "\r\n\r\n", 0},
			{"a frame, no handshake", string(clientFrame(true, 1, []byte("hello"))), 0},
			{"hixie frame, no handshake", "\x00hello\xff", 0},
			{"blank lines", "\r\n\r\n\r\n\r\n", 0},
			{"request line only", "GET / HTTP/1.1\r\n", 0},
			{"bad request line", "GET\r\n\r\n", http.StatusBadRequest},
			{"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade websocket\r\n\r\n", http.StatusBadRequest},
			{"HTTP/1.0 upgrade, RFC 6455", http10(RFC6455), http.StatusBadRequest},
			{"HTTP/1.0 upgrade, hixie-76", http10(Hixie76), http.StatusBadRequest},
			{"HTTP/1.0 upgrade, hixie-75", http10(Hixie75), http.StatusBadRequest},
			{"header over MaxHeaderBytes", huge, http.StatusRequestHeaderFieldsTooLarge},
			{"header line without end", "GET / HTTP/1.1\r\nX-Long: " + strings.Repeat("l", 64<<10), http.StatusRequestHeaderFieldsTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c := dialRaw(t, srv)
				go c.conn.Write([]byte(tc.wire)) // may fail once the server gives up
				c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
				resp, err := http.ReadResponse(c.br, nil)
				switch {
				case isTimeout(err):
					t.Fatalf("no answer and no drop in 3 s")
				case err != nil:
					if tc.status != 0 {
						t.Errorf("dropped (%v), want %d", err, tc.status)
					}
				case resp.StatusCode == http.StatusSwitchingProtocols:
					t.Errorf("upgraded: %s %v", resp.Status, resp.Header)
				case tc.status != 0 && resp.StatusCode != tc.status, resp.StatusCode < 400:
					t.Errorf("answered %s, want %d", resp.Status, tc.status)
				}
				c.conn.Close()
				hosCheckServed(t, srv, RFC6455)
			})
		}
	})
	called.Range(func(path, _ any) bool {
		t.Errorf("the Serve callback was called for %v", path)
		return true
	})
	for _, d := range allDialects {
		hosCheckServed(t, srv, d)
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// 7. Many connections, good and bad at once.

// Dozens of clients of every dialect at once, closing cleanly, hanging up,
// stalling mid-frame, failing the protocol: when they are gone, every
// connection is untracked and every goroutine gone; meanwhile the
// well-behaved ones got every message echoed, in order.
func TestHostileManyConnections(t *testing.T) {
	h := &Handler{Serve: echoMessages, ReadLimit: 4096, CloseTimeout: 300 * time.Millisecond}
	inMode(t, h, &echoEvents)
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		d := allDialects[i%len(allDialects)]
		wg.Go(func() {
			c, err := hosDial(srv, d)
			if err != nil {
				errs <- fmt.Sprintf("client %d (%s): %v", i, d, err)
				return
			}
			defer c.Close()
			for j := range 20 {
				msg := fmt.Sprintf("client %d message %d", i, j)
				if err := hosWriteText(c, d, msg); err != nil {
					errs <- fmt.Sprintf("client %d (%s): %v", i, d, err)
					return
				}
				if got, err := hosReadText(c, d); err != nil || got != msg {
					errs <- fmt.Sprintf("client %d (%s): echo of %q: %q, %v", i, d, msg, got, err)
					return
				}
			}
			switch i % 4 {
			case 0: // hang up
			case 1: // stall in the middle of a frame, then hang up
				if d.hybi() {
					c.Write(clientFrame(true, 1, []byte("cut short"))[:8])
				} else {
					c.Write([]byte("\x00cut"))
				}
				time.Sleep(20 * time.Millisecond)
			case 2: // over the read limit
				if d.hybi() {
					c.Write(hosHybiHeader(2, 1<<20))
				} else {
					c.Write(append([]byte{0x80}, hosHixieLength(1<<20)...))
				}
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					errs <- fmt.Sprintf("client %d (%s): waiting for the drop: %v", i, d, err)
				}
			case 3: // close properly
				switch {
				case d.hybi():
					c.Write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
				case d == Hixie76:
					c.Write([]byte{0xFF, 0x00})
				default:
					return // hixie-75 has no close: the client hangs up
				}
				c.SetReadDeadline(time.Now().Add(3 * time.Second))
				if _, err := io.Copy(io.Discard, c); err != nil {
					errs <- fmt.Sprintf("client %d (%s): waiting for the close: %v", i, d, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if s := h.Stats(); s.Accepted != n {
		t.Errorf("stats %+v, want %d accepted", s, n)
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
}

// hosDial is a goroutine-safe handshake (no testing.T) for clients run
// concurrently; the returned connection reads through a bufio.Reader.
func hosDial(srv *httptest.Server, d Dialect) (*hosConn, error) {
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &hosConn{Conn: conn, br: bufio.NewReader(conn)}
	if _, err := conn.Write([]byte(handshakeRequest(d, srv.Listener.Addr().String(), "/many"))); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err == nil && resp.StatusCode != http.StatusSwitchingProtocols {
		err = fmt.Errorf("handshake answered %s", resp.Status)
	}
	if err == nil && d == Hixie76 {
		var answer [16]byte
		_, err = io.ReadFull(c.br, answer[:])
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

type hosConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *hosConn) Read(p []byte) (int, error) { return c.br.Read(p) }

func hosWriteText(c *hosConn, d Dialect, s string) error {
	var err error
	if d.hybi() {
		_, err = c.Write(clientFrame(true, 1, []byte(s)))
	} else {
		_, err = c.Write(append(append([]byte{0x00}, s...), 0xFF))
	}
	return err
}

func hosReadText(c *hosConn, d Dialect) (string, error) {
	if !d.hybi() {
		b, err := c.br.ReadByte()
		if err != nil {
			return "", err
		}
		if b != 0x00 {
			return "", fmt.Errorf("hixie frame type %#x", b)
		}
		msg, err := c.br.ReadBytes(0xFF)
		if err != nil {
			return "", err
		}
		return string(msg[:len(msg)-1]), nil
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return "", err
		}
		if h[1] > 125 || h[0] != 0x81 && h[0] != 0x89 && h[0] != 0x8A {
			return "", fmt.Errorf("unexpected frame header % x", h)
		}
		msg := make([]byte, h[1])
		if _, err := io.ReadFull(c.br, msg); err != nil || h[0] == 0x81 {
			return string(msg), err
		}
		// A ping or pong, skipped.
	}
}
