package loadgen

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Result is what one test measured on one server.
type Result struct {
	Ops     uint64        // round trips (or handshakes) completed in the measured window
	Elapsed time.Duration // length of the measured window
	P50     time.Duration // round-trip (or handshake) latency
	P99     time.Duration
	CPU     time.Duration // the server's CPU time (user + system) in the window
	// Syscalls counts the server's read and write system calls in the window.
	Syscalls uint64

	Conns      int     // connections held for the memory measure
	RSSPerConn float64 // bytes of server RSS per held connection; NaN if not measured

	Verified          uint64  // echoes checked byte for byte, setup and warm-up included
	Extensions        string  // the server's Sec-WebSocket-Extensions answer
	WireBytes         float64 // mean payload bytes of a reply on the wire
	CompressedReplies uint64  // replies with RSV1 set

	Broadcast *BroadcastResult // the broadcast test's own measures; nil for the others
	Burst     *BurstResult     // the burst test's own measures; nil for the others

	// ServerCPU is, in the client tests (where CPU and Syscalls are the
	// client process's), the echo server's CPU time in the window.
	ServerCPU time.Duration
}

// Rate is operations per second in the measured window.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// SyscallsPerOp is the server's read and write system calls per operation.
func (r Result) SyscallsPerOp() float64 {
	if r.Ops == 0 {
		return math.NaN()
	}
	return float64(r.Syscalls) / float64(r.Ops)
}

// CPUPerOp is the server's CPU time per operation, in microseconds.
func (r Result) CPUPerOp() float64 {
	if r.Ops == 0 {
		return math.NaN()
	}
	return float64(r.CPU.Microseconds()) / float64(r.Ops)
}

const (
	dialConcurrency = 64
	dialTimeout     = 10 * time.Second
	stopTimeout     = 30 * time.Second
)

// EchoTest sends Payload to the server on each of Conns connections, one
// message in flight each, for Warmup and then Duration, the window measured.
// Before that it opens MemConns connections (the first Conns of them carry
// the load), exchanges one message on each, waits Settle and measures the
// server's RSS per connection. Conns 0 measures memory only.
type EchoTest struct {
	Addr     string
	PID      int
	Conns    int
	MemConns int
	Payload  []byte
	Op       byte   // OpText or OpBinary
	Offer    string // Sec-WebSocket-Extensions offered; "" for none
	Deflate  bool   // compress what is sent; permessage-deflate must be agreed
	Warmup   time.Duration
	Duration time.Duration
	Settle   time.Duration
}

// frames builds each frame once per distinct client window.
type frames struct {
	t  *EchoTest
	mu sync.Mutex
	m  map[int][]byte
}

func (f *frames) get(c *Conn) ([]byte, error) {
	if f.t.Deflate && !c.Deflate {
		return nil, fmt.Errorf("permessage-deflate not agreed (answer %q)", c.Extensions)
	}
	bits := 0
	if c.Deflate {
		bits = c.ClientWindowBits
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fr, ok := f.m[bits]; ok {
		return fr, nil
	}
	var fr []byte
	if f.t.Deflate {
		fr = MaskedFrame(f.t.Op, Deflate(f.t.Payload, bits), true)
	} else {
		fr = MaskedFrame(f.t.Op, f.t.Payload, false)
	}
	if f.m == nil {
		f.m = map[int][]byte{}
	}
	f.m[bits] = fr
	return fr, nil
}

type connStats struct {
	hist       Histogram
	ops        uint64
	verified   uint64
	wire       uint64
	compressed uint64
}

func (s *connStats) add(o *connStats) {
	s.hist.Add(&o.hist)
	s.ops += o.ops
	s.verified += o.verified
	s.wire += o.wire
	s.compressed += o.compressed
}

// Run runs the test.
func (t *EchoTest) Run() (Result, error) {
	res := Result{RSSPerConn: math.NaN()}
	if t.Op != OpText && t.Op != OpBinary {
		return res, errors.New("EchoTest.Op must be OpText or OpBinary")
	}
	n := max(t.Conns, t.MemConns)
	fr := &frames{t: t}
	rss0, err := RSS(t.PID)
	if err != nil {
		return res, err
	}
	var setup connStats
	conns, err := open(n, func(i int) (*Conn, error) {
		c, err := Dial(t.Addr, t.Offer, dialTimeout)
		if err != nil {
			return nil, err
		}
		frame, err := fr.get(c)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(dialTimeout))
			var e Echo
			e, err = c.RoundTrip(frame, t.Op, t.Payload)
			_ = c.SetDeadline(time.Time{})
			if err == nil && i >= t.Conns {
				c.Release()
			}
			if err == nil {
				atomic.AddUint64(&setup.verified, 1)
				if e.Compressed {
					atomic.AddUint64(&setup.compressed, 1)
				}
			}
		}
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	})
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	res.Extensions = conns[0].Extensions
	res.Verified = setup.verified
	res.CompressedReplies = setup.compressed
	if t.MemConns > 0 {
		time.Sleep(t.Settle)
		rss1, err := RSS(t.PID)
		if err != nil {
			return res, err
		}
		res.Conns = n
		res.RSSPerConn = float64(rss1-rss0) / float64(n)
	}
	if t.Conns == 0 {
		return res, nil
	}

	var phase atomic.Int32 // 0 warm-up, 1 measured, 2 stop
	stats := make([]connStats, t.Conns)
	errs := make(chan error, t.Conns)
	var wg sync.WaitGroup
	for i, c := range conns[:t.Conns] {
		frame, _ := fr.get(c)
		st := &stats[i]
		wg.Go(func() {
			for {
				p := phase.Load()
				if p == 2 {
					return
				}
				t0 := time.Now()
				e, err := c.RoundTrip(frame, t.Op, t.Payload)
				if err != nil {
					if phase.Load() != 2 {
						errs <- err
					}
					return
				}
				st.verified++
				if p == 1 {
					st.hist.Record(time.Since(t0))
					st.ops++
					st.wire += uint64(e.WireBytes)
					if e.Compressed {
						st.compressed++
					}
				}
			}
		})
	}
	runErr := measure(&res, &phase, errs, t.PID, t.Warmup, t.Duration)
	if !waitTimeout(&wg, stopTimeout) {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
		if runErr == nil {
			runErr = errors.New("echo did not finish")
		}
	}
	if runErr != nil {
		return res, runErr
	}
	all := summarize(&res, stats)
	res.Verified += all.verified
	res.CompressedReplies += all.compressed
	if all.ops > 0 {
		res.WireBytes = float64(all.wire) / float64(all.ops)
	}
	return res, nil
}

// open opens n connections with dial, dialConcurrency at a time.
func open(n int, dial func(i int) (*Conn, error)) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(n, dialConcurrency) {
		wg.Go(func() {
			for failed.Load() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := dial(i)
				if err != nil {
					err = fmt.Errorf("connection %d: %w", i, err)
					failed.CompareAndSwap(nil, &err)
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		var opened []*Conn
		for _, c := range conns {
			if c != nil {
				opened = append(opened, c)
			}
		}
		return opened, *err
	}
	return conns, nil
}

// measure lets the workers warm up, then counts (phase 1) for duration
// while it reads the server's CPU time and system calls around the window,
// and stops them (phase 2). It returns the first error.
func measure(res *Result, phase *atomic.Int32, errs <-chan error, pid int, warmup, duration time.Duration) error {
	var runErr error
	select {
	case runErr = <-errs:
	case <-time.After(warmup):
	}
	var cpu0 time.Duration
	var sys0 uint64
	var start time.Time
	if runErr == nil {
		sys0, runErr = Syscalls(pid)
	}
	if runErr == nil {
		cpu0, runErr = CPUTime(pid)
		start = time.Now()
		phase.Store(1)
		select {
		case runErr = <-errs:
		case <-time.After(duration):
		}
	}
	res.Elapsed = time.Since(start)
	phase.Store(2)
	cpu1, err := CPUTime(pid)
	if runErr == nil {
		runErr = err
	}
	sys1, err := Syscalls(pid)
	if runErr == nil {
		runErr = err
	}
	res.CPU = cpu1 - cpu0
	res.Syscalls = sys1 - sys0
	return runErr
}

// summarize adds up the workers' stats and puts the counts and latency
// quantiles into res.
func summarize(res *Result, stats []connStats) connStats {
	var all connStats
	for i := range stats {
		all.add(&stats[i])
	}
	res.Ops = all.ops
	res.P50 = all.hist.Quantile(0.50)
	res.P99 = all.hist.Quantile(0.99)
	return all
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// HandshakeTest opens and closes connections on Workers goroutines, each
// doing one at a time: dial, handshake, close handshake, TCP close. It
// warms up for Warmup and measures for Duration; latency is from dial to the
// checked 101 answer.
type HandshakeTest struct {
	Addr     string
	PID      int
	Workers  int
	Warmup   time.Duration
	Duration time.Duration
}

// Run runs the test.
func (t *HandshakeTest) Run() (Result, error) {
	res := Result{RSSPerConn: math.NaN()}
	var phase atomic.Int32
	stats := make([]connStats, t.Workers)
	errs := make(chan error, t.Workers)
	var wg sync.WaitGroup
	for i := range t.Workers {
		st := &stats[i]
		wg.Go(func() {
			for {
				p := phase.Load()
				if p == 2 {
					return
				}
				t0 := time.Now()
				c, err := Dial(t.Addr, "", dialTimeout)
				if err != nil {
					errs <- err
					return
				}
				d := time.Since(t0)
				err = c.CloseHandshake(dialTimeout)
				c.Close()
				if err != nil {
					errs <- fmt.Errorf("close handshake: %w", err)
					return
				}
				st.verified++
				if p == 1 {
					st.hist.Record(d)
					st.ops++
				}
			}
		})
	}
	runErr := measure(&res, &phase, errs, t.PID, t.Warmup, t.Duration)
	if !waitTimeout(&wg, stopTimeout) && runErr == nil {
		runErr = errors.New("handshakes did not finish")
	}
	if runErr != nil {
		return res, runErr
	}
	all := summarize(&res, stats)
	res.Verified = all.verified
	return res, nil
}
