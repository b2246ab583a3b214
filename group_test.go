package websocket

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// readEnd is how a member's server-side reads ended.
type readEnd struct {
	path string
	err  error
}

// groupServer serves connections, on any path, that join g and are read
// until they fail (on /slow, with a small send buffer); each connection is sent on conns and how its reads ended
// on ends (neither ever blocks the server: both are buffered, and extra
// values are dropped).
func groupServer(t *testing.T, g *Group, cfg func(*Handler)) (srv *httptest.Server, conns <-chan *Conn, ends <-chan readEnd) {
	t.Helper()
	connc := make(chan *Conn, 64)
	endc := make(chan readEnd, 64)
	h := &Handler{Serve: func(c *Conn) {
		if c.Request().URL.Path == "/slow" {
			// A small send buffer, so that a member that never reads fills
			// its TCP buffers after a few hundred KiB on any machine.
			c.br.conn.(*net.TCPConn).SetWriteBuffer(64 << 10)
		}
		g.Add(c)
		select {
		case connc <- c:
		default:
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				select {
				case endc <- readEnd{c.Request().URL.Path, err}:
				default:
				}
				return
			}
		}
	}}
	if cfg != nil {
		cfg(h)
	}
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, connc, endc
}

func waitLen(t *testing.T, g *Group, n int) {
	t.Helper()
	htPoll(t, fmt.Sprintf("the group to have %d members (it has %d)", n, g.Len()), func() bool { return g.Len() == n })
}

// within runs f, failing the test if it does not return within d: a
// broadcast never waits for a member, so one that blocks is a bug.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v: deadlock? The goroutines in the group's code:\n%s", what, d, groupStacks())
	}
}

// groupStacks returns the stacks of the goroutines that are in Group's
// methods.
func groupStacks() string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var b strings.Builder
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "websocket.(*Group)") {
			b.WriteString(g + "\n\n")
		}
	}
	return b.String()
}

// closeAsClient closes p in its dialect's way: a close frame, hixie-76's
// 0xFF 0x00, or (hixie-75) TCP.
func (p *peer) closeAsClient() {
	switch p.d {
	case Hixie75:
		p.conn.Close()
	case Hixie76:
		p.write([]byte{0xFF, 0x00})
	default:
		p.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
	}
}

// TestGroupBroadcastEveryDialect sends text broadcasts to members of every
// dialect, one of them compressed: each receives each broadcast once, in
// order. The rule for binary broadcasts: hixie members, which can carry
// text only, are skipped; every other member receives them.
func TestGroupBroadcastEveryDialect(t *testing.T) {
	// The burst below is queued faster than it is written: the queue must
	// hold it all.
	g := &Group{}
	srv, _, ends := groupServer(t, g, func(h *Handler) { h.Compression = &CompressionOptions{} })
	var peers []*peer
	for _, d := range allDialects {
		peers = append(peers, dialPeer(t, srv, d, false, "/"))
	}
	peers = append(peers, dialPeer(t, srv, RFC6455, true, "/"))
	waitLen(t, g, len(peers))

	const n = 100
	msg := func(i int) string {
		s := fmt.Sprintf("broadcast %03d ✓", i)
		if i%3 == 0 {
			s += strings.Repeat(" padding", 40) // over the compression threshold
		}
		return s
	}
	binMsg := []byte{0x00, 0xFF, 0x80, 'b', 'i', 'n'}
	within(t, 5*time.Second, "the broadcasts", func() {
		for i := range n {
			if err := g.BroadcastText(msg(i)); err != nil {
				t.Error(err)
			}
		}
		if err := g.Broadcast(BinaryMessage, binMsg); err != nil {
			t.Error(err)
		}
		g.BroadcastText("after binary")
	})
	for _, p := range peers {
		for i := range n {
			if got := p.nextText(); got != msg(i) {
				t.Fatalf("%s: message %d is %.40q, want %.40q", p, i, got, msg(i))
			}
		}
		if p.d.hybi() {
			if op, got := p.next(); op != 2 || !bytes.Equal(got, binMsg) {
				t.Errorf("%s: binary broadcast arrived as opcode %d, % x", p, op, got)
			}
		}
		// Hixie members skip the binary broadcast: "after binary" comes next.
		if got := p.nextText(); got != "after binary" {
			t.Errorf("%s: %q after the binary broadcast", p, got)
		}
	}
	if s := g.Stats(); s != (GroupStats{Members: len(peers)}) {
		t.Errorf("stats %+v", s)
	}

	// Members leave the group when they close, whatever the dialect.
	for i, p := range peers {
		p.closeAsClient()
		waitLen(t, g, len(peers)-i-1)
		select {
		case end := <-ends:
			if errors.Is(end.err, ErrSlowConsumer) {
				t.Errorf("%s: %v", p, end.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the server's read did not end", p)
		}
	}
	if err := g.BroadcastText("to nobody"); err != nil {
		t.Error(err)
	}
}

// TestGroupAddRemove checks that adding twice is a no-op, that a removed
// member receives nothing more, and that a closed connection cannot join.
func TestGroupAddRemove(t *testing.T) {
	g := &Group{}
	conns := make(chan *Conn, 2)
	h := &Handler{Serve: func(c *Conn) {
		g.Add(c)
		g.Add(c)
		conns <- c
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	a := dialPeer(t, srv, RFC6455, false, "/")
	ca := nextConn(t, conns)
	b := dialPeer(t, srv, Hixie76, false, "/")
	cb := nextConn(t, conns)
	if n := g.Len(); n != 2 {
		t.Fatalf("%d members after adding 2 connections twice each", n)
	}
	g.BroadcastText("one")
	g.BroadcastText("two")
	for _, p := range []*peer{a, b} {
		for _, want := range []string{"one", "two"} {
			if got := p.nextText(); got != want {
				t.Fatalf("%s: %q, want %q (each broadcast once)", p, got, want)
			}
		}
	}

	g.Remove(ca)
	g.Remove(ca) // not a member: no-op
	if n := g.Len(); n != 1 {
		t.Fatalf("%d members after removing 1 of 2", n)
	}
	g.BroadcastText("three")
	if got := b.nextText(); got != "three" {
		t.Fatalf("remaining member: %q", got)
	}
	// a receives what it is sent directly, then the close: nothing else.
	if err := ca.WriteText("direct"); err != nil {
		t.Fatal(err)
	}
	go ca.Close(StatusNormalClosure, "")
	var got []string
	for {
		f := a.readFrame()
		if f.op == 8 {
			break
		}
		got = append(got, string(f.payload))
	}
	a.write(clientFrame(true, 8, closePayload(StatusNormalClosure, "")))
	a.expectEOF()
	if len(got) != 1 || got[0] != "direct" {
		t.Errorf("removed member received %q, want only \"direct\"", got)
	}

	// A closed connection leaves at once if it is added.
	htPoll(t, "a's connection to close", func() bool { return ca.Context().Err() != nil })
	g.Add(ca)
	if n := g.Len(); n != 1 {
		t.Errorf("%d members after adding a closed connection to a group of 1", n)
	}
	b.closeAsClient()
	waitLen(t, g, 0)
	_ = cb
}

// TestGroupSlowConsumer puts a member that never reads, with a queue of 4,
// in a group with a fast member, and broadcasts 64 messages of 64 KiB (4
// MiB: several times what the slow member's TCP buffers hold) in lockstep
// with the fast member:
// each is sent once the fast member has received the one before. The fast
// member is never held up; the slow one is disconnected, or skipped while
// its queue is full, as the policy says.
func TestGroupSlowConsumer(t *testing.T) {
	const size, stall = 16 << 10, 200 * time.Millisecond
	for _, policy := range []SlowPolicy{DisconnectSlow, DropMessages} {
		name := map[SlowPolicy]string{DisconnectSlow: "DisconnectSlow", DropMessages: "DropMessages"}[policy]
		t.Run(name, func(t *testing.T) {
			g := &Group{QueueBytes: 4 * size, StallTimeout: stall, Slow: policy}
			srv, _, ends := groupServer(t, g, nil)
			slow := dialDialect(t, srv, RFC6455, "/slow")
			fast := dialDialect(t, srv, RFC6455, "/fast")
			waitLen(t, g, 2)

			// The fast member reads on its own goroutine.
			type seqOrErr struct {
				seq int
				err error
			}
			got := make(chan seqOrErr, 1)
			go func() {
				for {
					f, err := fast.tryReadFrame()
					if err == nil && (f.op != 1 || len(f.payload) != size) {
						err = fmt.Errorf("frame of opcode %d, %d bytes", f.op, len(f.payload))
					}
					if err != nil {
						got <- seqOrErr{err: err}
						return
					}
					got <- seqOrErr{seq: int(binary.BigEndian.Uint32(f.payload))}
				}
			}()
			message := func(i int) []byte {
				b := bytes.Repeat([]byte("x"), size) // a new slice each time: a broadcast keeps it
				binary.BigEndian.PutUint32(b, uint32(i))
				return b
			}
			// Broadcast until the slow member, which never reads, is dealt
			// with: after its socket and its queue have filled up, and
			// StallTimeout more. Meanwhile the fast member gets every
			// message at once.
			handled := func() bool {
				if policy == DropMessages {
					return g.Stats().Dropped > 0
				}
				return g.Stats().Disconnected > 0
			}
			start := time.Now()
			n := 0
			for ; !handled(); n++ {
				if n == 5000 || time.Since(start) > 15*time.Second {
					t.Fatalf("the slow member was not dealt with after %d messages, %v (stats %+v)", n, time.Since(start), g.Stats())
				}
				within(t, 2*time.Second, "Broadcast", func() { g.Broadcast(TextMessage, message(n)) })
				select {
				case r := <-got:
					if r.err != nil || r.seq != n {
						t.Fatalf("fast member: message %d: got %d, %v", n, r.seq, r.err)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("fast member held up: message %d not received after 2 s (stats %+v)", n, g.Stats())
				}
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			t.Logf("slow member dealt with after %d messages of %d KiB, %v; stats %+v", n, size>>10, elapsed, g.Stats())
			if elapsed < stall {
				t.Errorf("slow member dealt with after %v, before StallTimeout (%v)", elapsed, stall)
			}

			switch policy {
			case DisconnectSlow:
				select {
				case end := <-ends:
					if end.path != "/slow" || !errors.Is(end.err, ErrSlowConsumer) {
						t.Errorf("read on %s ended with %v, want ErrSlowConsumer on /slow", end.path, end.err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("the slow member's read did not end")
				}
				waitLen(t, g, 1)
				if s := g.Stats(); s.Disconnected != 1 || s.Dropped != 0 || s.Members != 1 {
					t.Errorf("stats %+v, want 1 disconnected and 1 member", s)
				}
				// The slow client gets EOF (or a reset: it left data unread).
				slow.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.Copy(io.Discard, slow.br); err != nil && !strings.Contains(err.Error(), "reset") {
					t.Errorf("slow client: %v, want EOF or a reset", err)
				}
			case DropMessages:
				s := g.Stats()
				if s.Dropped == 0 || s.Disconnected != 0 || s.Members != 2 {
					t.Errorf("stats %+v, want some dropped, 2 members", s)
				}
				select {
				case end := <-ends:
					t.Fatalf("read on %s ended: %v", end.path, end.err)
				default:
				}
				// Now the slow member reads: the messages not dropped, whole
				// and in order, and then it is no longer slow.
				last := -1
				for range n - int(s.Dropped) {
					f := slow.readFrame()
					seq := int(binary.BigEndian.Uint32(f.payload))
					if f.op != 1 || len(f.payload) != size || seq <= last || seq >= n {
						t.Fatalf("slow member: opcode %d, %d bytes, message %d after %d", f.op, len(f.payload), seq, last)
					}
					last = seq
				}
				t.Logf("slow member received %d of %d messages, up to %d", n-int(s.Dropped), n, last)
				g.Broadcast(TextMessage, message(n))
				if f := slow.readFrame(); int(binary.BigEndian.Uint32(f.payload)) != n {
					t.Errorf("after catching up, the slow member got message %d, want %d", binary.BigEndian.Uint32(f.payload), n)
				}
				if d := g.Stats().Dropped; d != s.Dropped {
					t.Errorf("%d more messages dropped after the member caught up", d-s.Dropped)
				}
			}
		})
	}
}

// TestGroupTick checks that a group's ticker sends the same time to every
// member, from one timer, and stops with its context.
func TestGroupTick(t *testing.T) {
	g := &Group{}
	srv, _, _ := groupServer(t, g, nil)
	peers := []*peer{dialPeer(t, srv, Hixie76, false, "/"), dialPeer(t, srv, RFC6455, false, "/"), dialPeer(t, srv, Hybi07, false, "/")}
	waitLen(t, g, len(peers))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tickErr := make(chan error, 1)
	go func() { tickErr <- g.Tick(ctx, 20*time.Millisecond, nil) }()

	var first []string
	for _, p := range peers {
		var got []string
		for range 3 {
			msg := p.nextText()
			stamp, ok := strings.CutPrefix(msg, "Time at the server: ")
			at, err := time.Parse(time.RFC1123, stamp)
			if !ok || err != nil || ServerTime(at) != msg {
				t.Fatalf("%s: %q is not the server time (%v)", p, msg, err)
			}
			if d := time.Since(at); d < -2*time.Second || d > 5*time.Second {
				t.Errorf("%s: time %v is %v from now", p, at, d)
			}
			got = append(got, msg)
		}
		if first == nil {
			first = got
		} else if strings.Join(got, "|") != strings.Join(first, "|") {
			t.Errorf("%s got %q, the first member %q: not one timer", p, got, first)
		}
	}
	cancel()
	select {
	case err := <-tickErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Tick returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Tick did not stop with its context")
	}
	// After the last tick, nothing comes but what is broadcast.
	g.BroadcastText("end")
	for _, p := range peers {
		for p.nextText() != "end" {
		}
		p.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if b, err := p.br.ReadByte(); err == nil {
			t.Errorf("%s: byte %#x after the ticker stopped", p, b)
		}
	}

	// A custom message, to a group that starts empty and gains a member.
	g2 := &Group{}
	srv2, _, _ := groupServer(t, g2, nil)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go g2.Tick(ctx2, 10*time.Millisecond, func(time.Time) string { return "tick" })
	time.Sleep(30 * time.Millisecond)
	p := dialPeer(t, srv2, RFC6455, false, "/")
	if got := p.nextText(); got != "tick" {
		t.Errorf("custom tick message %q", got)
	}
}

// TestGroupNoGoroutineLeak checks that idle members cost no goroutine of
// the group: once the queues have drained, the count returns to what it
// was before the broadcasts; and once the members close, to what it was
// before the server started.
func TestGroupNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	g := &Group{}
	srv, _, _ := groupServer(t, g, func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: true} })
	var peers []*peer
	for i := range 10 {
		d := []Dialect{Hixie76, RFC6455, Hybi08, Hixie75}[i%4]
		peers = append(peers, dialPeer(t, srv, d, i == 1 || i == 5, "/"))
	}
	waitLen(t, g, len(peers))
	time.Sleep(10 * time.Millisecond)
	idle := runtime.NumGoroutine()

	const n = 100
	msg := func(i int) string { return fmt.Sprintf("%d %s", i, strings.Repeat("·", i%500)) }
	within(t, 5*time.Second, "the broadcasts", func() {
		for i := range n {
			g.BroadcastText(msg(i))
		}
	})
	for _, p := range peers {
		for i := range n {
			if got := p.nextText(); got != msg(i) {
				t.Fatalf("%s: message %d: %.30q", p, i, got)
			}
		}
	}
	waitGoroutines(t, "the queues drained", idle)

	for _, p := range peers {
		p.conn.Close()
	}
	waitLen(t, g, 0)
	srv.Close()
	waitGoroutines(t, "the members closed", base)
}

// waitGoroutines polls until there are at most n goroutines.
func waitGoroutines(t *testing.T, when string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after %s, want at most %d:\n%s", runtime.NumGoroutine(), when, n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGroupConcurrency broadcasts from several goroutines, of every kind,
// while members of every dialect join and leave: by closing, by being
// removed on the server, by being disconnected as slow (some never read).
// Run with -race.
func TestGroupConcurrency(t *testing.T) {
	g := &Group{QueueBytes: 4 << 10, StallTimeout: 20 * time.Millisecond}
	h := &Handler{Compression: &CompressionOptions{ContextTakeover: true}, Serve: func(c *Conn) {
		g.Add(c)
		if strings.HasSuffix(c.Request().URL.Path, "/leave") {
			go func() {
				time.Sleep(time.Millisecond)
				g.Remove(c)
			}()
		}
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	stop := make(chan struct{})
	var broadcasters sync.WaitGroup
	pm, _ := NewPreparedMessage(TextMessage, []byte(strings.Repeat("prepared ", 50)))
	for w := range 4 {
		broadcasters.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
				}
				switch i % 3 {
				case 0:
					g.BroadcastText(fmt.Sprintf("broadcaster %d: %d", w, i))
				case 1:
					g.Broadcast(BinaryMessage, []byte{byte(w), byte(i)})
				case 2:
					g.BroadcastPrepared(pm)
				}
				g.Stats()
			}
		})
	}

	var readers sync.WaitGroup
	var open []*peer
	for i := range 40 {
		d := allDialects[i%len(allDialects)]
		path := "/"
		if i%4 == 1 {
			path = "/leave"
		}
		p := dialPeer(t, srv, d, d.hybi() && i%3 == 0, path)
		if i%2 == 0 {
			// A reader that keeps up; the others never read.
			readers.Go(func() { io.Copy(io.Discard, p.conn) })
		}
		open = append(open, p)
		if i%3 == 2 {
			open[0].closeAsClient()
			open = open[1:]
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	within(t, 5*time.Second, "the broadcasters' end", broadcasters.Wait)
	for _, p := range open {
		p.conn.Close()
	}
	waitLen(t, g, 0)
	within(t, 5*time.Second, "the readers' end", readers.Wait)
	t.Logf("stats %+v", g.Stats())
}

// TestGroupQueueBounded keeps a member a thousand messages behind for a
// million messages: what its queue holds stays bounded, as the queue never
// empties.
func TestGroupQueueBounded(t *testing.T) {
	m := &member{}
	q := queuing{limit: 1 << 30, stall: time.Hour}
	pm, _ := NewPreparedMessage(TextMessage, []byte("x"))
	b := getBatch()
	for range 1000 {
		q.enqueue(m, pm)
	}
	for range 1000 {
		for range maxBatchFrames {
			q.enqueue(m, pm)
		}
		if !m.take(b) || len(b.msgs) != maxBatchFrames {
			t.Fatalf("took %d messages, want %d", len(b.msgs), maxBatchFrames)
		}
		b.reset()
	}
	if waiting := len(m.queue) - m.head; waiting != 1000 || m.bytes != 1000 {
		t.Errorf("%d messages (%d bytes) waiting, want 1000", waiting, m.bytes)
	}
	if cap(m.queue) > 8*maxBatchFrames {
		t.Errorf("the queue's slice holds %d, for 1000 waiting", cap(m.queue))
	}
}
