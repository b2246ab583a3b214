package loadgen

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// BurstTest measures a broadcast server's throughput. It opens Members
// connections to the server and waits until the server counts them all as
// members. Then it triggers Warmup unmeasured and Bursts measured bursts,
// one at a time: a burst is one POST of Burst messages of Payload bytes
// each (all different), which the server broadcasts back to back, one
// broadcast call per message; the next burst is triggered once every member
// has every message of the previous one.
//
// Every connection has a goroutine of its own that reads it frame by frame
// and checks that it receives every message of every burst exactly once,
// byte for byte and in order (and, at the end, nothing more). For each
// burst the test reports the time from the trigger (just before the
// request is written) until every member has all of its messages, and
// until half of them have. The server's CPU time and system calls, and the
// generator's own CPU time, are read before the first measured burst and
// after the last.
type BurstTest struct {
	Addr    string
	PID     int
	Members int
	Payload int // bytes of each message, at least 8
	Burst   int // messages per burst
	Warmup  int // unmeasured bursts first
	Bursts  int // measured bursts
	// Timeout bounds each burst and the members' joining (0: 60 s).
	Timeout time.Duration
}

// BurstResult is what a BurstTest measured, beside the common Result: Ops
// is the number of deliveries (members × Burst × Bursts), Elapsed the sum of
// the measured bursts' times (so Rate is deliveries per second), CPU and
// Syscalls the server's over the measured bursts (and the triggers' HTTP
// requests, and 50 ms after the last burst).
type BurstResult struct {
	Last, Half []time.Duration // per measured burst: until all (half the) members had all its messages
	GenCPU     time.Duration   // the generator's CPU time over the measured bursts
}

// Run runs the test.
func (t *BurstTest) Run() (Result, error) {
	res := Result{RSSPerConn: math.NaN(), Burst: &BurstResult{}}
	if t.Members <= 0 || t.Burst <= 0 || t.Bursts <= 0 || t.Payload < 8 || t.Warmup < 0 {
		return res, fmt.Errorf("bad burst test: %+v", *t)
	}
	m, err := (&bursts{addr: t.Addr, pid: t.PID, members: t.Members, payload: t.Payload, burst: t.Burst,
		warmup: t.Warmup, measured: t.Bursts, timeout: t.Timeout, name: "burst"}).run(&res)
	res.Burst.Last, res.Burst.Half, res.Burst.GenCPU = m.last, m.half, m.genCPU
	for _, d := range m.last {
		res.Elapsed += d
	}
	res.Ops = uint64(t.Members) * uint64(t.Burst) * uint64(len(m.last))
	return res, err
}

// bursts is what BurstTest and BroadcastTest share (a broadcast is a burst
// of one message): members join the broadcast server at addr; warmup
// unmeasured and then measured bursts of burst messages of payload bytes
// are triggered, one at a time, each once every member has every message
// of the previous one; a reader per member checks that it gets every
// message exactly once, byte for byte and in order, and nothing more.
type bursts struct {
	addr             string
	pid              int
	members          int
	payload, burst   int           // bytes per message (the first 8 number it if there are 8), messages per burst
	warmup, measured int           // bursts
	timeout          time.Duration // for each burst and for the members to join (0: 60 s)
	name             string        // what errors call a burst: "burst", "broadcast"

	// rss: measure the server's RSS per member, settle after the members
	// have joined (into Result.RSSPerConn) and settle after the last burst.
	rss    bool
	settle time.Duration
}

// burstMeasures is what bursts.run measured beside the common Result.
type burstMeasures struct {
	// Per measured burst, from its trigger (just before the request is
	// written) until the first, the median and the last member had all of
	// it, read and checked.
	first, half, last []time.Duration
	wall              time.Duration // from the first measured trigger until 50 ms after the last burst
	genCPU            time.Duration // the generator's CPU time over the measured bursts
	rssAfter          float64       // server RSS per member after the bursts, bytes (NaN unless rss)
}

// run runs the bursts. It sets res.Conns, res.Verified, res.CPU and
// res.Syscalls (the server's over the measured bursts, and 50 ms after),
// and res.RSSPerConn if b.rss.
func (b *bursts) run(res *Result) (burstMeasures, error) {
	m := burstMeasures{rssAfter: math.NaN()}
	timeout := b.timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	total := b.warmup + b.measured
	// bodies[j] holds burst j's messages one after the other; each message
	// starts with its burst and its index, so that no two are equal.
	bodies := make([][]byte, total)
	for j := range bodies {
		body := make([]byte, b.burst*b.payload)
		_, _ = rand.Read(body)
		if b.payload >= 8 {
			for k := range b.burst {
				binary.BigEndian.PutUint32(body[k*b.payload:], uint32(j))
				binary.BigEndian.PutUint32(body[k*b.payload+4:], uint32(k))
			}
		}
		bodies[j] = body
	}
	message := func(j, k int) []byte { return bodies[j][k*b.payload : (k+1)*b.payload] }

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
		Timeout: timeout}
	defer hc.CloseIdleConnections()
	base := "http://" + b.addr

	var rss0 int64
	if b.rss {
		var err error
		if rss0, err = RSS(b.pid); err != nil {
			return m, err
		}
	}
	conns, err := join(b.addr, b.members, hc, base, timeout)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return m, err
	}
	if b.rss {
		time.Sleep(b.settle)
		rss1, err := RSS(b.pid)
		if err != nil {
			return m, err
		}
		res.RSSPerConn = float64(rss1-rss0) / float64(b.members)
	}
	res.Conns = b.members

	// arrivals[j][i] is when member i had all of burst j; left[j] counts the
	// members still waiting for some of it, and the reader that takes it
	// to zero says so on done.
	arrivals := make([][]time.Time, total)
	left := make([]atomic.Int64, total)
	for j := range arrivals {
		arrivals[j] = make([]time.Time, b.members)
		left[j].Store(int64(b.members))
	}
	done := make(chan int, total)
	errs := make(chan error, b.members)
	var verified atomic.Uint64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var buf []byte
			fail := func(err error) { errs <- fmt.Errorf("member %d: %w", i, err) }
			for j := range total {
				for k := range b.burst {
					op, compressed, msg, err := readMessage(c.br, buf)
					buf = msg
					var ce *ErrClosed
					switch {
					case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ce):
						err = fmt.Errorf("the server closed the connection (%w): did it drop the member?", err)
					case err != nil:
					case op != OpBinary:
						err = fmt.Errorf("opcode %d, want %d", op, OpBinary)
					case compressed:
						err = errors.New("compressed message")
					case !bytes.Equal(msg, message(j, k)):
						err = b.mismatch(msg)
					}
					if err != nil {
						fail(fmt.Errorf("%s: %w", b.where(j, k), err))
						return
					}
					verified.Add(1)
				}
				arrivals[j][i] = time.Now()
				if left[j].Add(-1) == 0 {
					done <- j
				}
			}
			// Nothing more may come.
			_ = c.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _, msg, err := readMessage(c.br, buf)
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				fail(fmt.Errorf("after the last %s: %d bytes more (%v)", b.name, len(msg), err))
			}
		})
	}
	stop := func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}

	var cpu0, gen0 time.Duration
	var sys0 uint64
	var start time.Time
	for j := range total {
		if j == b.warmup {
			if sys0, err = Syscalls(b.pid); err == nil {
				if cpu0, err = CPUTime(b.pid); err == nil {
					gen0, err = CPUTime(os.Getpid())
				}
			}
			if err != nil {
				stop()
				return m, err
			}
			start = time.Now()
		}
		t0 := time.Now()
		if err := trigger(hc, base, bodies[j], b.burst); err != nil {
			stop()
			return m, fmt.Errorf("%s %d: %w", b.name, j, err)
		}
		select {
		case <-done:
		case err := <-errs:
			stop()
			return m, err
		case <-time.After(timeout - time.Since(t0)):
			stop()
			what := "it"
			if b.burst > 1 {
				what = fmt.Sprintf("all %d messages", b.burst)
			}
			return m, fmt.Errorf("%s %d: %d of %d members did not get %s within %s",
				b.name, j, left[j].Load(), b.members, what, timeout)
		}
		if j < b.warmup {
			continue
		}
		d := make([]time.Duration, b.members)
		for i, a := range arrivals[j] {
			d[i] = a.Sub(t0)
		}
		slices.Sort(d)
		m.first = append(m.first, d[0])
		m.half = append(m.half, d[(len(d)-1)/2])
		m.last = append(m.last, d[len(d)-1])
	}
	// Let the server finish what follows the last write (its writers
	// ending) inside the window.
	time.Sleep(50 * time.Millisecond)
	m.wall = time.Since(start)
	cpu1, err := CPUTime(b.pid)
	if err == nil {
		res.CPU = cpu1 - cpu0
		var sys1 uint64
		if sys1, err = Syscalls(b.pid); err == nil {
			res.Syscalls = sys1 - sys0
			var gen1 time.Duration
			if gen1, err = CPUTime(os.Getpid()); err == nil {
				m.genCPU = gen1 - gen0
			}
		}
	}
	if !waitTimeout(&wg, timeout) { // every reader has checked that nothing more came
		stop()
		if err == nil {
			err = errors.New("readers did not finish")
		}
	}
	res.Verified = verified.Load()
	select {
	case rerr := <-errs:
		if err == nil {
			err = rerr
		}
	default:
	}
	if err == nil && b.rss {
		time.Sleep(b.settle)
		if rss2, err := RSS(b.pid); err == nil {
			m.rssAfter = float64(rss2-rss0) / float64(b.members)
		}
	}
	return m, err
}

// where names message k of burst j in errors: "burst 1, message 3", or
// "broadcast 1" if a burst is one message.
func (b *bursts) where(j, k int) string {
	if b.burst == 1 {
		return fmt.Sprintf("%s %d", b.name, j)
	}
	return fmt.Sprintf("%s %d, message %d", b.name, j, k)
}

// mismatch describes a message that is not the one expected: which message
// it is, if it is one of the test's (a duplicate or one out of order).
func (b *bursts) mismatch(msg []byte) error {
	if len(msg) != b.payload {
		return fmt.Errorf("%d bytes, want %d", len(msg), b.payload)
	}
	if len(msg) < 8 {
		return errors.New("differs from the message expected")
	}
	return fmt.Errorf("differs from the message expected (it starts as %s)",
		b.where(int(binary.BigEndian.Uint32(msg)), int(binary.BigEndian.Uint32(msg[4:]))))
}
