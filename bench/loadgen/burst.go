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
	br := res.Burst
	if t.Members <= 0 || t.Burst <= 0 || t.Bursts <= 0 || t.Payload < 8 || t.Warmup < 0 {
		return res, fmt.Errorf("bad burst test: %+v", *t)
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	total := t.Warmup + t.Bursts
	// bodies[b] holds burst b's messages one after the other; each message
	// starts with its burst and its index, so that no two are equal.
	bodies := make([][]byte, total)
	for b := range bodies {
		body := make([]byte, t.Burst*t.Payload)
		_, _ = rand.Read(body)
		for k := range t.Burst {
			binary.BigEndian.PutUint32(body[k*t.Payload:], uint32(b))
			binary.BigEndian.PutUint32(body[k*t.Payload+4:], uint32(k))
		}
		bodies[b] = body
	}
	message := func(b, k int) []byte { return bodies[b][k*t.Payload : (k+1)*t.Payload] }

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
		Timeout: timeout}
	defer hc.CloseIdleConnections()
	base := "http://" + t.Addr
	conns, err := join(t.Addr, t.Members, hc, base, timeout)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	res.Conns = t.Members

	// arrivals[b][i] is when member i had all of burst b; left[b] counts the
	// members still waiting for some of it, and the reader that takes it
	// to zero says so on done.
	arrivals := make([][]time.Time, total)
	left := make([]atomic.Int64, total)
	for b := range arrivals {
		arrivals[b] = make([]time.Time, t.Members)
		left[b].Store(int64(t.Members))
	}
	done := make(chan int, total)
	errs := make(chan error, t.Members)
	var verified atomic.Uint64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var buf []byte
			fail := func(err error) { errs <- fmt.Errorf("member %d: %w", i, err) }
			for b := range total {
				for k := range t.Burst {
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
					case !bytes.Equal(msg, message(b, k)):
						err = mismatch(msg, t.Payload)
					}
					if err != nil {
						fail(fmt.Errorf("burst %d, message %d: %w", b, k, err))
						return
					}
					verified.Add(1)
				}
				arrivals[b][i] = time.Now()
				if left[b].Add(-1) == 0 {
					done <- b
				}
			}
			// Nothing more may come.
			_ = c.nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, _, msg, err := readMessage(c.br, buf)
			var ne net.Error
			if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
				fail(fmt.Errorf("after the last burst: %d bytes more (%v)", len(msg), err))
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
	for b := range total {
		if b == t.Warmup {
			if sys0, err = Syscalls(t.PID); err == nil {
				if cpu0, err = CPUTime(t.PID); err == nil {
					gen0, err = CPUTime(os.Getpid())
				}
			}
			if err != nil {
				stop()
				return res, err
			}
		}
		t0 := time.Now()
		if err := triggerBurst(hc, base, bodies[b], t.Burst); err != nil {
			stop()
			return res, fmt.Errorf("burst %d: %w", b, err)
		}
		select {
		case <-done:
		case err := <-errs:
			stop()
			return res, err
		case <-time.After(timeout - time.Since(t0)):
			stop()
			return res, fmt.Errorf("burst %d: %d of %d members did not get all %d messages within %s",
				b, left[b].Load(), t.Members, t.Burst, timeout)
		}
		if b < t.Warmup {
			continue
		}
		d := make([]time.Duration, t.Members)
		for i, a := range arrivals[b] {
			d[i] = a.Sub(t0)
		}
		slices.Sort(d)
		br.Half = append(br.Half, d[(len(d)-1)/2])
		br.Last = append(br.Last, d[len(d)-1])
		res.Elapsed += d[len(d)-1]
	}
	// Let the server finish what follows the last write (its writers
	// ending) inside the window.
	time.Sleep(50 * time.Millisecond)
	res.Ops = uint64(t.Members) * uint64(t.Burst) * uint64(t.Bursts)
	cpu1, err := CPUTime(t.PID)
	if err == nil {
		res.CPU = cpu1 - cpu0
		var sys1 uint64
		if sys1, err = Syscalls(t.PID); err == nil {
			res.Syscalls = sys1 - sys0
			var gen1 time.Duration
			if gen1, err = CPUTime(os.Getpid()); err == nil {
				br.GenCPU = gen1 - gen0
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
	return res, err
}

// mismatch describes a message that is not the one expected: which message
// it is, if it is one of the test's (a duplicate or one out of order).
func mismatch(msg []byte, payload int) error {
	if len(msg) != payload {
		return fmt.Errorf("%d bytes, want %d", len(msg), payload)
	}
	return fmt.Errorf("differs from the message expected (it starts as burst %d, message %d)",
		binary.BigEndian.Uint32(msg), binary.BigEndian.Uint32(msg[4:]))
}
