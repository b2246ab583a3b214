package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Keepalive: PingInterval/PongTimeout find dead RFC 6455 peers, IdleTimeout
// silent peers of any dialect; any traffic from the peer counts as life,
// and the timers end with the connection. Helpers (hos...) are in
// hostile_test.go.

// kaFrames reads the server's frames in a goroutine, so that a test can
// write on a schedule while it watches what arrives.
func kaFrames(c *rawClient) <-chan kaFrame {
	ch := make(chan kaFrame, 1024)
	go func() {
		defer close(ch)
		for {
			f, err := c.tryReadFrame()
			ch <- kaFrame{f, err, time.Now()}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

type kaFrame struct {
	serverFrame
	err error
	at  time.Time
}

// kaCheckPing checks the form of a server's ping: final, no reserved bit,
// at most 125 bytes (masking was checked by tryReadFrame: server frames
// are never masked).
func kaCheckPing(t *testing.T, f serverFrame) {
	t.Helper()
	if f.op != 9 || !f.fin || f.rsv != 0 || len(f.payload) > maxControlPayload {
		t.Fatalf("expected a ping, got fin %v rsv %d opcode %d payload %q", f.fin, f.rsv, f.op, f.payload)
	}
}

// A silent client that answers each ping with a pong stays connected for
// more than five intervals; the pings are unmasked opcode-9 frames.
func TestKeepalivePingsAnswered(t *testing.T) {
	const interval = 100 * time.Millisecond
	for _, d := range []Dialect{RFC6455, Hybi08, Hybi07} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			rec := newHosRecorder()
			// PongTimeout leaves the client time to answer on a loaded machine.
			h := &Handler{Serve: rec.serve, PingInterval: interval, PongTimeout: 3 * interval}
			inMode(t, h, rec.events(true))
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, d, "/")
			start := time.Now()
			pings := 0
			for {
				left := 6*interval + interval/2 - time.Since(start)
				if left <= 0 {
					break
				}
				c.conn.SetReadDeadline(time.Now().Add(left))
				f, err := c.tryReadFrame()
				if isTimeout(err) {
					break
				}
				if err != nil {
					t.Fatalf("after %d pings and %v: %v", pings, time.Since(start), err)
				}
				kaCheckPing(t, f)
				if pings++; pings == 1 {
					if at := time.Since(start); at < interval/2 || at > 3*interval {
						t.Errorf("first ping after %v, PingInterval %v", at, interval)
					}
				}
				c.write(clientFrame(true, 10, f.payload))
			}
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if pings < 2 || pings > 7 {
				t.Errorf("%d pings in %v with PingInterval %v", pings, time.Since(start), interval)
			}
			checkEcho(t, c, d, "still here")
			htClientClose(t, c, d)
			if res := rec.wait(t); len(res.msgs) != 1 {
				t.Errorf("the callback read %q, then %v", res.msgs, res.err)
			}
		})
	}
}

// A client that does not answer the ping is dropped PongTimeout after it
// (PingInterval when PongTimeout is 0), and the server's read returns
// ErrPongTimeout; another client is served meanwhile.
func TestKeepalivePongTimeout(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		interval, pongTimeout time.Duration
		want                  time.Duration // from the handshake to the drop
	}{
		{"100ms+100ms", 100 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond},
		{"100ms+default", 100 * time.Millisecond, 0, 200 * time.Millisecond},
		{"100ms+300ms", 100 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newHosRecorder()
			h := &Handler{Serve: hosRouted(rec.serve), PingInterval: tc.interval, PongTimeout: tc.pongTimeout}
			inMode(t, h, hosRoutedEvents(rec.events(true)))
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, RFC6455, "/dead")
			start := time.Now()
			kaCheckPing(t, c.readFrame())
			hosCheckServed(t, srv, RFC6455) // meanwhile
			rest, end := hosExpectDrop(t, c.conn, c.br, 3*time.Second)
			if elapsed := end.Sub(start); elapsed < tc.want-30*time.Millisecond || elapsed > tc.want+800*time.Millisecond {
				t.Errorf("dropped after %v, want about %v", elapsed, tc.want)
			}
			if len(rest) != 0 {
				t.Logf("before dropping the connection the server sent %q", hosHead(rest))
			}
			if res := rec.wait(t); !errors.Is(res.err, ErrPongTimeout) {
				t.Errorf("the server's read ended with %v, want ErrPongTimeout", res.err)
			}
			hosWaitActive(t, h)
		})
	}
}

// Anything the client sends counts as life: a client that never answers
// a ping but sends data, unsolicited pongs or pings of its own every 50 ms
// is not dropped.
func TestKeepaliveActivity(t *testing.T) {
	const interval = 100 * time.Millisecond
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"data frames", clientFrame(true, 1, []byte("tick"))},
		{"binary fragments", clientFrame(false, 0, []byte("frag"))}, // after a first one
		{"unsolicited pongs", clientFrame(true, 10, []byte("unsolicited"))},
		{"pings", clientFrame(true, 9, []byte("are you there"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newHosRecorder()
			h := &Handler{Serve: rec.serve, PingInterval: interval, PongTimeout: 2 * interval}
			inMode(t, h, rec.events(true))
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, RFC6455, "/")
			frames := kaFrames(c)
			start := time.Now()
			sent := 0
			if tc.name == "binary fragments" {
				c.write(clientFrame(false, 2, []byte("first")))
			}
			for time.Since(start) < 7*interval {
				c.write(tc.frame)
				sent++
				time.Sleep(interval / 2)
			}
			if tc.name == "binary fragments" {
				c.write(clientFrame(true, 0, nil)) // end the message
			}
			c.write(clientFrame(true, 1, []byte("alive?")))
			for {
				f, ok := <-frames
				if !ok || f.err != nil {
					t.Fatalf("after %d frames in %v, the connection ended: %v", sent, time.Since(start), f.err)
				}
				if f.op == 8 {
					t.Fatalf("the server closed after %d frames in %v: %q", sent, time.Since(start), f.payload)
				}
				if f.op == 1 && string(f.payload) == "alive?" {
					break
				}
			}
			c.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
			for f := range frames {
				if f.err != nil && f.op != 8 {
					break
				}
			}
			if res := rec.wait(t); errors.Is(res.err, ErrPongTimeout) || errors.Is(res.err, ErrIdleTimeout) {
				t.Errorf("the callback's read ended with %v", res.err)
			}
		})
	}
}

// A large frame arriving slowly is traffic too: a client busy sending the
// payload of one frame (800 ms) for longer than PingInterval+PongTimeout
// (300 ms) or IdleTimeout (300 ms) cannot answer a ping in the middle of it (control frames go
// between frames, not inside them), yet it is not silent and must not be
// dropped. The hixie dialects are checked alike with IdleTimeout.
func TestKeepaliveSlowLargeFrame(t *testing.T) {
	const interval = 100 * time.Millisecond
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	for _, tc := range []struct {
		name string
		d    Dialect
		cfg  func(*Handler)
	}{
		{"RFC 6455 PingInterval", RFC6455, func(h *Handler) { h.PingInterval, h.PongTimeout = interval, 2*interval }},
		{"RFC 6455 IdleTimeout", RFC6455, func(h *Handler) { h.IdleTimeout = 3 * interval }},
		{"hixie-76 IdleTimeout", Hixie76, func(h *Handler) { h.IdleTimeout = 3 * interval }},
		{"hixie-75 IdleTimeout", Hixie75, func(h *Handler) { h.IdleTimeout = 3 * interval }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newHosRecorder()
			h := &Handler{Serve: rec.serve}
			inMode(t, h, rec.events(true))
			tc.cfg(h)
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, tc.d, "/")
			var wire []byte
			if tc.d.hybi() {
				wire = clientFrame(true, 1, payload)
			} else {
				wire = append(append([]byte{0x00}, payload...), 0xFF)
			}
			// 20 pieces, one every 40 ms: 800 ms for the frame.
			start := time.Now()
			piece := len(wire)/20 + 1
			for off := 0; off < len(wire); off += piece {
				if _, err := c.conn.Write(wire[off:min(off+piece, len(wire))]); err != nil {
					t.Fatalf("dropped after %v while still sending the frame (%v); %s", time.Since(start), err, rec.why())
				}
				time.Sleep(40 * time.Millisecond)
			}
			if !tc.d.hybi() {
				if b, err := c.br.Peek(1); err != nil || b[0] != 0x00 {
					t.Fatalf("expected the echo, got %q, %v; %s", b, err, rec.why())
				}
				if _, got := c.readMessage(tc.d); !bytes.Equal(got, payload) {
					t.Fatalf("echo of %d bytes came back as %d", len(payload), len(got))
				}
				htClientClose(t, c, tc.d)
				rec.wait(t)
				return
			}
			for {
				f, err := c.tryReadFrame()
				if err != nil {
					t.Fatalf("after sending the frame slowly for %v: %v; %s", time.Since(start), err, rec.why())
				}
				if f.op == 9 {
					c.write(clientFrame(true, 10, f.payload))
					continue
				}
				if f.op != 1 || !bytes.Equal(f.payload, payload) {
					t.Fatalf("expected the echo, got opcode %d %q; %s", f.op, hosHead(f.payload), rec.why())
				}
				break
			}
			htClientClose(t, c, tc.d)
			rec.wait(t)
		})
	}
}

// The hixie dialects have no ping: PingInterval sends them nothing, and
// does not drop them.
func TestKeepaliveNoPingsOnHixie(t *testing.T) {
	h := &Handler{Serve: echoMessages, PingInterval: 50 * time.Millisecond, PongTimeout: 50 * time.Millisecond}
	inMode(t, h, &echoEvents)
	srv := hosStart(t, h, nil, false)
	var wg sync.WaitGroup
	for _, d := range []Dialect{Hixie75, Hixie76} {
		c := dialDialect(t, srv, d, "/")
		wg.Go(func() {
			c.conn.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
			if b, err := c.br.Peek(1); !isTimeout(err) {
				t.Errorf("%s: expected silence, got %q, %v", d, b, err)
			}
		})
		defer func() {
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			checkEcho(t, c, d, "no ping for me")
			htClientClose(t, c, d)
		}()
	}
	wg.Wait()
}

// IdleTimeout closes a connection whose peer sent nothing for that long,
// with the dialect's close: 0xFF 0x00 then TCP (hixie-76), TCP alone
// (hixie-75), 1001 (RFC 6455). A dead peer that does not answer the close
// is dropped after CloseTimeout. The server's read returns ErrIdleTimeout
// (or the peer's answer to the close). A client talking every 50 ms stays.
func TestIdleTimeout(t *testing.T) {
	const idle, closeTimeout = 200 * time.Millisecond, 300 * time.Millisecond
	for _, tc := range []struct {
		name    string
		d       Dialect
		answer  bool // the client answers the server's close
		talking bool // the client sends a message every 50 ms
	}{
		{"hixie-76 answering", Hixie76, true, false},
		{"hixie-76 dead", Hixie76, false, false},
		{"hixie-75", Hixie75, false, false},
		{"RFC 6455 answering", RFC6455, true, false},
		{"RFC 6455 dead", RFC6455, false, false},
		{"hybi-08 answering", Hybi08, true, false},
		{"hixie-76 talking", Hixie76, false, true},
		{"hixie-75 talking", Hixie75, false, true},
		{"RFC 6455 talking", RFC6455, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := newHosRecorder()
			h := &Handler{Serve: rec.serve, IdleTimeout: idle, CloseTimeout: closeTimeout}
			inMode(t, h, rec.events(true))
			srv := hosStart(t, h, nil, false)
			c := dialDialect(t, srv, tc.d, "/")
			start := time.Now()

			if tc.talking {
				for i := 0; time.Since(start) < 3*idle; i++ {
					checkEcho(t, c, tc.d, "chatter")
					time.Sleep(50 * time.Millisecond)
				}
				htClientClose(t, c, tc.d)
				if res := rec.wait(t); errors.Is(res.err, ErrIdleTimeout) {
					t.Errorf("a talking client was dropped as idle after %v", res.elapsed)
				}
				return
			}

			// The server's close.
			closedAt := time.Now()
			switch {
			case tc.d.hybi():
				f := c.readFrame()
				closedAt = time.Now()
				if f.op != 8 || len(f.payload) < 2 || StatusCode(int(f.payload[0])<<8|int(f.payload[1])) != StatusGoingAway {
					t.Fatalf("expected a 1001 close, got opcode %d %q", f.op, f.payload)
				}
				if tc.answer {
					c.write(clientFrame(true, 8, f.payload[:2]))
				}
			case tc.d == Hixie76:
				htExpectBytes(t, c, "\xff\x00")
				closedAt = time.Now()
				if tc.answer {
					c.write([]byte{0xFF, 0x00})
				}
			}
			if tc.d != Hixie75 {
				if at := closedAt.Sub(start); at < idle-30*time.Millisecond || at > idle+800*time.Millisecond {
					t.Errorf("the server's close came after %v, IdleTimeout %v", at, idle)
				}
			}
			rest, end := hosExpectDrop(t, c.conn, c.br, 3*time.Second)
			if len(rest) != 0 {
				t.Errorf("the server sent %q before the TCP close", hosHead(rest))
			}
			// When the TCP close comes.
			var want time.Duration
			switch {
			case tc.d == Hixie75:
				want = end.Sub(start) - idle
			case tc.answer:
				want = end.Sub(closedAt)
			default:
				want = end.Sub(closedAt) - closeTimeout
			}
			if want < -30*time.Millisecond || want > 800*time.Millisecond {
				t.Errorf("TCP closed %v after the handshake, %v after the server's close (IdleTimeout %v, CloseTimeout %v)",
					end.Sub(start), end.Sub(closedAt), idle, closeTimeout)
			}
			res := rec.wait(t)
			var ce *CloseError
			if !errors.Is(res.err, ErrIdleTimeout) && !(tc.answer && errors.As(res.err, &ce)) {
				t.Errorf("the server's read ended with %v, want ErrIdleTimeout", res.err)
			}
			hosWaitActive(t, h)
		})
	}
}

// The keepalive timers end with their connections: after many connections
// with PingInterval and IdleTimeout set have closed (by the client, by a
// hang-up, or by the server for a missing pong), no goroutine remains and
// no timer is still armed.
func TestKeepaliveStoppedOnClose(t *testing.T) {
	var mu sync.Mutex
	var conns []*Conn
	h := &Handler{PingInterval: 100 * time.Millisecond, PongTimeout: 300 * time.Millisecond, IdleTimeout: 2 * time.Second,
		CloseTimeout: 300 * time.Millisecond, Serve: func(c *Conn) {
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			echoMessages(c)
		}}
	srv := hosStart(t, h, nil, false)
	base := runtime.NumGoroutine()
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		d := []Dialect{RFC6455, Hixie76, Hybi08, Hixie75}[i%4]
		wg.Go(func() {
			c, err := hosDial(srv, d)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for range 3 {
				if err := hosWriteText(c, d, "hi"); err != nil {
					errs <- err
					return
				}
				if msg, err := hosReadText(c, d); err != nil || msg != "hi" {
					errs <- fmt.Errorf("%s: echo %q, %v", d, msg, err)
					return
				}
			}
			switch i % 3 {
			case 0: // the client closes
				switch {
				case d.hybi():
					c.Write(clientFrame(true, 8, nil))
				case d == Hixie76:
					c.Write([]byte{0xFF, 0x00})
				}
			case 1: // it hangs up
				return
			}
			// Otherwise it goes silent: RFC 6455 clients are dropped for
			// the missing pong; the others hang up here after a while.
			c.SetReadDeadline(time.Now().Add(time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	hosWaitActive(t, h)
	hosWaitGoroutines(t, base)
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != n {
		t.Errorf("%d connections served, want %d", len(conns), n)
	}
	armed := 0
	for _, c := range conns {
		k := c.keepalive
		if k == nil {
			t.Fatalf("%s connection without keepalive", c.Dialect())
		}
		k.mu.Lock()
		if k.timer.Stop() {
			armed++
		}
		k.mu.Unlock()
	}
	if armed != 0 {
		t.Errorf("%d of %d closed connections still had their keepalive timer armed", armed, len(conns))
	}
}
