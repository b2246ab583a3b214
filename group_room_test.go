package websocket

import (
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sendText sends a text message in p's dialect, returning the error.
func (p *peer) sendText(s string) error {
	var frame []byte
	if p.d.hybi() {
		frame = clientFrame(true, 1, []byte(s))
	} else {
		frame = append(append([]byte{0x00}, s...), 0xFF)
	}
	_, err := p.conn.Write(frame)
	return err
}

// roomServer is a chat room over g: every text message a member sends is
// broadcast to all, unchanged. Members on /slow have a small send buffer.
// How each member's reads ended goes to ends (buffered for 1024).
func roomServer(t *testing.T, g *Group) (*httptest.Server, <-chan readEnd) {
	ends := make(chan readEnd, 1024)
	srv := httptest.NewServer(&Handler{Compression: &CompressionOptions{}, Serve: func(c *Conn) {
		path := c.Request().URL.Path
		if path == "/slow" {
			c.br.conn.(*net.TCPConn).SetWriteBuffer(16 << 10)
		}
		g.Add(c)
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				ends <- readEnd{path, err}
				return
			}
			g.BroadcastText(string(msg))
		}
	}})
	t.Cleanup(srv.Close)
	return srv, ends
}

// TestGroupBusyRoom is a busy chat room: 200 members of every dialect (a
// tenth of them compressed), each sending a burst of 20 lines, every member
// reading. Each gets every line exactly once, in order per sender, and no
// one is disconnected. Then three members that never read are disconnected
// once their queues have stayed full for StallTimeout, while the others
// receive a stream of larger messages without delay.
func TestGroupBusyRoom(t *testing.T) {
	const members, lines, stall = 200, 20, time.Second
	g := &Group{QueueBytes: 256 << 10, StallTimeout: stall}
	srv, ends := roomServer(t, g)
	var peers []*peer
	for i := range members {
		d := allDialects[i%len(allDialects)]
		p := dialPeer(t, srv, d, d.hybi() && i%10 == 3, "/")
		p.conn.SetDeadline(time.Now().Add(2 * time.Minute))
		peers = append(peers, p)
	}
	for _, d := range []Dialect{RFC6455, Hixie76, Hybi08} {
		dialDialect(t, srv, d, "/slow")
	}
	waitLen(t, g, members+3)

	// Readers: the burst's lines (member, line), then the flood's
	// numbered messages until "end".
	var wg sync.WaitGroup
	errs := make(chan error, members)
	burst := make(chan bool, members) // each reader: whether it had every line
	endAt := make([]time.Time, members)
	flooded := make([]atomic.Int64, members) // flood messages each reader has
	for i, p := range peers {
		wg.Go(func() {
			hadAll := false
			defer func() {
				if !hadAll {
					burst <- false
				}
			}()
			next := make([]int, members)
			for range members * lines {
				_, msg, err := p.tryNext()
				if err != nil {
					errs <- fmt.Errorf("member %d (%s) after %v lines: %w", i, p, next, err)
					return
				}
				f, l, _ := strings.Cut(string(msg), " l")
				from, err1 := strconv.Atoi(strings.TrimPrefix(f, "m"))
				line, err2 := strconv.Atoi(l)
				if err1 != nil || err2 != nil || from < 0 || from >= members || line != next[from] {
					errs <- fmt.Errorf("member %d (%s): %q, want the next line of that sender", i, p, msg)
					return
				}
				next[from]++
			}
			hadAll = true
			burst <- true
			for k := 0; ; k++ {
				_, msg, err := p.tryNext()
				if err != nil {
					errs <- fmt.Errorf("member %d (%s), flood message %d: %w", i, p, k, err)
					return
				}
				if string(msg) == "end" {
					endAt[i] = time.Now()
					return
				}
				if len(msg) != len(floodMessage(0)) || string(msg[:12]) != floodMessage(k)[:12] {
					errs <- fmt.Errorf("member %d (%s): flood message %d is %.20q", i, p, k, msg)
					return
				}
				flooded[i].Add(1)
			}
		})
	}

	start := time.Now()
	var senders sync.WaitGroup
	for i, p := range peers {
		senders.Go(func() {
			for l := range lines {
				if err := p.sendText(fmt.Sprintf("m%d l%d", i, l)); err != nil {
					errs <- fmt.Errorf("member %d sending: %w", i, err)
					return
				}
				time.Sleep(time.Duration(i%7) * time.Millisecond)
			}
		})
	}
	senders.Wait()
	for range members {
		if !<-burst {
			for _, p := range peers {
				p.conn.Close()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.FailNow()
		}
	}
	t.Logf("%d members sent %d lines each, and had all lines, in %v", members, lines, time.Since(start))

	// The flood: 4 KB lines, until the members that never read have
	// filled their sockets and queues, and StallTimeout has passed. The
	// readers set the pace (each at most 8 lines behind), so that however
	// slow this machine, they keep up: a reader of a room that sends
	// faster than it reads would be slow, and rightly disconnected.
	floodStart := time.Now()
	k := 0
	behind := func() bool {
		for i := range flooded {
			if flooded[i].Load() < int64(k-8) {
				return true
			}
		}
		return false
	}
	floodEnd := floodStart.Add(stall + time.Duration(1+3*raceEnabled)*20*time.Second)
	for ; g.Stats().Disconnected < 3; k++ {
		for behind() || k == 20000 {
			if time.Now().After(floodEnd) {
				t.Fatalf("after %d messages, %v: stats %+v", k, time.Since(floodStart), g.Stats())
			}
			time.Sleep(100 * time.Microsecond)
		}
		g.BroadcastText(floodMessage(k))
	}
	disconnectedAfter := time.Since(floodStart)
	endSent := time.Now()
	g.BroadcastText("end")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var lastEnd time.Time
	for _, at := range endAt {
		if at.After(lastEnd) {
			lastEnd = at
		}
	}
	t.Logf("the members that never read were disconnected %v into the flood of %d messages; every reader had the last message %v after it was sent; stats %+v",
		disconnectedAfter, k, lastEnd.Sub(endSent), g.Stats())
	if disconnectedAfter < stall {
		t.Errorf("members disconnected after %v, before StallTimeout (%v)", disconnectedAfter, stall)
	}
	if s := g.Stats(); s.Disconnected != 3 || s.Dropped != 0 || s.Members != members {
		t.Errorf("stats %+v, want 3 disconnected and %d members", s, members)
	}
	for range 3 {
		select {
		case end := <-ends:
			if end.path != "/slow" || !errors.Is(end.err, ErrSlowConsumer) {
				t.Errorf("read on %s ended with %v", end.path, end.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a slow member's read did not end")
		}
	}
}

func floodMessage(k int) string { return fmt.Sprintf("flood %05d ", k) + floodPadding }

var floodPadding = strings.Repeat("·", 2000) // 4 KB

// TestGroupLargeRoom is a room of 5000 members (1000 under -race) of every
// dialect with join and leave notices, as the example's chat. Members join
// as fast as one client dials, so that the join notices of many overlap;
// then every tenth leaves, all at once. Every member gets exactly the
// join notices broadcast after it joined, and every leave notice.
func TestGroupLargeRoom(t *testing.T) {
	members := 5000
	if raceEnabled == 1 {
		members = 1000
	}
	base := runtime.NumGoroutine()
	g := &Group{}
	var mu sync.Mutex
	order := make([]int, members) // member id -> its place in the group's joining order
	joinedN := 0
	var joins, leaves atomic.Int64 // notices broadcast
	var lastJoin atomic.Int64      // when the last join notice was broadcast, Unix ns
	srv := httptest.NewServer(&Handler{Serve: func(c *Conn) {
		id := c.Request().URL.Query().Get("id")
		c.ReleaseRequest()
		i, _ := strconv.Atoi(id)
		// Joining and its notice at once, so that who must get which
		// notice is known: Broadcast only queues, it never waits.
		mu.Lock()
		order[i] = joinedN
		joinedN++
		g.Add(c)
		g.BroadcastText("joined " + id)
		lastJoin.Store(time.Now().UnixNano())
		mu.Unlock()
		joins.Add(1)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				break
			}
		}
		g.Remove(c)
		g.BroadcastText("left " + id)
		leaves.Add(1)
	}})
	t.Cleanup(srv.Close)

	leaver := func(i int) bool { return i%10 == 9 }
	type result struct {
		id                int
		err               error
		joined, left      []bool // notices received, by member
		lastJoinAt, endAt time.Time
	}
	results := make(chan *result, members)
	var wg sync.WaitGroup
	var peers []*peer
	start := time.Now()
	for i := range members {
		p := dialPeer(t, srv, allDialects[i%len(allDialects)], false, "/room?id="+strconv.Itoa(i))
		p.conn.SetDeadline(time.Now().Add(5 * time.Minute))
		peers = append(peers, p)
		wg.Go(func() {
			res := &result{id: i, joined: make([]bool, members), left: make([]bool, members)}
			defer func() { results <- res }()
			for {
				_, msg, err := p.tryNext()
				if err != nil {
					if !leaver(i) {
						res.err = fmt.Errorf("member %d (%s): %w", i, p, err)
					}
					return
				}
				kind, id, _ := strings.Cut(string(msg), " ")
				j, _ := strconv.Atoi(id)
				seen := map[string][]bool{"joined": res.joined, "left": res.left}[kind]
				switch {
				case kind == "end":
					res.endAt = time.Now()
					return
				case seen == nil || j < 0 || j >= members:
					res.err = fmt.Errorf("member %d (%s): %q", i, p, msg)
					return
				case seen[j]:
					res.err = fmt.Errorf("member %d (%s): %q twice", i, p, msg)
					return
				}
				seen[j] = true
				if kind == "joined" {
					res.lastJoinAt = time.Now()
				}
			}
		})
	}
	htPollFor(t, time.Minute, "every join notice broadcast", func() bool { return joins.Load() == int64(members) })
	t.Logf("%d members joined in %v", members, time.Since(start))
	nLeavers := 0
	for i, p := range peers {
		if leaver(i) {
			p.conn.Close()
			nLeavers++
		}
	}
	htPollFor(t, time.Minute, "every leave notice broadcast", func() bool { return leaves.Load() == int64(nLeavers) })
	endSent := time.Now()
	g.BroadcastText("end")
	var lastJoinAt, lastEnd time.Time
	for range members {
		r := <-results
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		if leaver(r.id) {
			continue
		}
		for j := range members {
			if want := order[j] >= order[r.id]; r.joined[j] != want {
				t.Errorf("member %d (joined %dth): join notice of member %d (joined %dth): received %v", r.id, order[r.id], j, order[j], r.joined[j])
				break
			}
			if r.left[j] != leaver(j) {
				t.Errorf("member %d: leave notice of member %d: received %v", r.id, j, r.left[j])
				break
			}
		}
		if r.lastJoinAt.After(lastJoinAt) {
			lastJoinAt = r.lastJoinAt
		}
		if r.endAt.After(lastEnd) {
			lastEnd = r.endAt
		}
	}
	wg.Wait()
	t.Logf("every member had its last join notice %v after it was broadcast, and a broadcast to %d members %v after it was sent; stats %+v",
		lastJoinAt.Sub(time.Unix(0, lastJoin.Load())), members-nLeavers, lastEnd.Sub(endSent), g.Stats())
	if s := g.Stats(); s.Members != members-nLeavers || s.Disconnected != 0 || s.Dropped != 0 {
		t.Errorf("stats %+v", s)
	}
	for _, p := range peers {
		p.conn.Close()
	}
	srv.Close()
	waitGoroutines(t, "the room closed", base)
}

// htPollFor polls cond until it holds, failing the test after d.
func htPollFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestGroupChurn streams broadcasts to two members while others join and
// leave: by a close, a reset, or half a frame and a close. The two get
// every message in order; the leavers leave no goroutine behind.
func TestGroupChurn(t *testing.T) {
	base := runtime.NumGoroutine()
	g := &Group{}
	srv, _ := roomServer(t, g)
	streamers := []*peer{dialPeer(t, srv, RFC6455, true, "/"), dialPeer(t, srv, Hixie76, false, "/")}
	waitLen(t, g, 2)

	var sent atomic.Int64
	var read [2]atomic.Int64 // what each streamer has
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; k < 20000; k++ {
			select {
			case <-stop:
				g.BroadcastText("end")
				sent.Store(int64(k))
				return
			default:
			}
			g.BroadcastText("stream " + strconv.Itoa(k) + strings.Repeat(" ·", k%200))
			// Paced by the streamers (at most 100 messages behind), which
			// a loaded machine may slow down.
			for read[0].Load() < int64(k-100) || read[1].Load() < int64(k-100) {
				select {
				case <-stop:
				case <-time.After(100 * time.Microsecond):
					continue
				}
				break
			}
		}
		g.BroadcastText("end")
		sent.Store(20000)
	})
	got := make([]int, len(streamers))
	errs := make(chan error, len(streamers))
	for s, p := range streamers {
		p.conn.SetDeadline(time.Now().Add(time.Minute))
		wg.Go(func() {
			for k := 0; ; k++ {
				_, msg, err := p.tryNext()
				if err != nil {
					errs <- fmt.Errorf("%s after %d messages: %w", p, k, err)
					return
				}
				if string(msg) == "end" {
					got[s] = k
					return
				}
				if want := "stream " + strconv.Itoa(k) + strings.Repeat(" ·", k%200); string(msg) != want {
					errs <- fmt.Errorf("%s: message %d is %.20q", p, k, msg)
					return
				}
				read[s].Add(1)
			}
		})
	}

	for i := range 150 {
		d := allDialects[i%len(allDialects)]
		p := dialPeer(t, srv, d, d.hybi() && i%4 == 0, "/")
		time.Sleep(time.Duration(i%5) * time.Millisecond) // some get broadcasts first
		switch i % 3 {
		case 0:
			p.closeAsClient()
		case 1:
			p.conn.(*net.TCPConn).SetLinger(0) // a reset
			p.conn.Close()
		case 2:
			if d.hybi() {
				p.write(clientFrame(true, 1, []byte("half a frame"))[:5])
			} else {
				p.write([]byte("\x00half a fr"))
			}
			p.conn.Close()
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for s, p := range streamers {
		if int64(got[s]) != sent.Load() {
			t.Errorf("%s got %d messages, %d were sent", p, got[s], sent.Load())
		}
	}
	waitLen(t, g, 2)
	for _, p := range streamers {
		p.conn.Close()
	}
	waitLen(t, g, 0)
	srv.Close()
	waitGoroutines(t, "the members closed", base)
}
