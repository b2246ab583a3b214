// Package clients holds one WebSocket echo client per library compared by
// the harness's client tests, each written the way that library's own
// documentation shows, and the plumbing to run one as a process: open the
// connections, keep one message in flight on each, check every echo byte
// for byte, count the round trips of the measured window (told by the
// parent on stdin) and report them on stdout.
package clients

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hybi/websocket/bench/loadgen"
	"github.com/hybi/websocket/bench/servers"
)

// Libs lists the libraries with a client here, this one first.
var Libs = []string{"hybi", "gorilla", "coder", "gws"}

// Supports reports whether lib has a client.
func Supports(lib string) bool { return slices.Contains(Libs, lib) }

// Config is what a client process does.
type Config struct {
	Lib     string
	URL     string        // ws://host:port/ of the echo server
	Conns   int           // connections, one message in flight on each
	Size    int           // payload bytes (binary; Payload(Size))
	MaxTime time.Duration // the process ends after this long, whatever happens
	// ProfileDir, if set: a CPU profile of the measured window is written
	// there, as client-<lib>-<size>B-<pid>.pprof.
	ProfileDir string `json:",omitempty"`
}

// Report is what a client process prints at the end, one JSON line.
type Report struct {
	Ops      uint64        // round trips in the measured window
	Window   time.Duration // its length, from "start" to "stop" as the client saw them
	Verified uint64        // echoes checked byte for byte, warm-up included
	P50, P99 time.Duration
	Err      string `json:",omitempty"`
}

// readLimit is the largest message every client accepts, as every server
// (servers.ReadLimit): coder's default is 32 KiB.
const readLimit = servers.ReadLimit

// maxOpsPerConn bounds the round trips of one connection.
const maxOpsPerConn = 50_000_000

// Payload returns the n-byte payload every client sends: the same bytes in
// every process (a fixed seed), random-looking.
func Payload(n int) []byte {
	r := rand.New(rand.NewPCG(17, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// startProfile starts the CPU profile of cfg and returns what stops it.
func startProfile(cfg Config) (func(), error) {
	f, err := os.Create(filepath.Join(cfg.ProfileDir, fmt.Sprintf("client-%s-%dB-%d.pprof", cfg.Lib, cfg.Size, os.Getpid())))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// Phases of a run, told by the parent.
const (
	warmup   int32 = iota // running, not counted
	measured              // running, counted
	stopped               // stop
)

// run is the state shared by a process's connections.
type run struct {
	payload []byte
	phase   atomic.Int32
	stats   []stats
	errOnce sync.Once
	err     error
	failed  chan struct{} // closed on the first error
	setup   atomic.Uint64 // first echoes checked before the load
}

type stats struct {
	hist     loadgen.Histogram
	ops      uint64
	verified uint64
	_        [64]byte // no false sharing between connections
}

func (r *run) fail(err error) {
	r.errOnce.Do(func() {
		r.err = err
		close(r.failed)
	})
}

// echoed checks p against the payload and counts a round trip of conn i
// started at t0; it reports whether the connection should go on.
func (r *run) echoed(i int, p []byte, t0 time.Time) bool {
	if !bytes.Equal(p, r.payload) {
		r.fail(fmt.Errorf("connection %d: echo of %d bytes differs from the %d sent", i, len(p), len(r.payload)))
		return false
	}
	st := &r.stats[i]
	st.verified++
	switch r.phase.Load() {
	case measured:
		st.hist.Record(time.Since(t0))
		st.ops++
	case stopped:
		return false
	}
	return st.verified < maxOpsPerConn
}

// syncClient is a connection of a library whose client reads and writes
// with blocking calls: one goroutine per connection loops roundTrip.
type syncClient interface {
	// roundTrip writes the payload and returns the echo (valid until the
	// next call).
	roundTrip(payload []byte) ([]byte, error)
	close()
}

// asyncClient is a connection of an event-driven library (gws): start sends
// the first message; each echo's handler calls r.echoed and, if it says
// so, sends the next; done is closed once the connection stops (its
// handler no longer runs: r.echoed said stop, or the connection ended).
type asyncClient interface {
	start() error
	done() <-chan struct{}
	close()
}

type dialer struct {
	sync  func(ctx context.Context, url string) (syncClient, error)
	async func(ctx context.Context, url string, r *run, i int) (asyncClient, error)
}

var dialers = map[string]dialer{
	"hybi":    {sync: dialHybi},
	"gorilla": {sync: dialGorilla},
	"coder":   {sync: dialCoder},
	"gws":     {async: dialGws},
}

// Main runs the client process of cfg: it opens the connections, checks one
// echo on each, prints "ready" on out and starts the load; then each line
// of in moves it on: "start" begins the measured window (it answers
// "started"), "stop" ends it and the load (it answers "stopped" at once,
// then stops the connections); it prints the Report as one JSON line and
// returns. The answers let the parent read the process's CPU time when the
// window really begins and ends, even if the process was slow to read. An
// error, EOF on in or cfg.MaxTime ends it early (the Report then says why).
func Main(cfg Config, in io.Reader, out io.Writer) error {
	rep := mainRun(cfg, in, out)
	b, _ := json.Marshal(rep)
	_, err := fmt.Fprintf(out, "%s\n", b)
	if rep.Err != "" {
		return errors.New(rep.Err)
	}
	return err
}

func mainRun(cfg Config, in io.Reader, out io.Writer) (rep Report) {
	d, ok := dialers[cfg.Lib]
	if !ok || cfg.Conns <= 0 || cfg.Size < 0 || cfg.MaxTime <= 0 {
		return Report{Err: fmt.Sprintf("bad client config %+v (libraries %v)", cfg, Libs)}
	}
	deadline := time.After(cfg.MaxTime)
	r := &run{payload: Payload(cfg.Size), stats: make([]stats, cfg.Conns), failed: make(chan struct{})}

	// Open the connections and check one echo on each.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	syncs := make([]syncClient, cfg.Conns)
	asyncs := make([]asyncClient, cfg.Conns)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range cfg.Conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			if d.sync != nil {
				var c syncClient
				if c, err = d.sync(ctx, cfg.URL); err == nil {
					syncs[i] = c
					var p []byte
					if p, err = c.roundTrip(r.payload); err == nil && !bytes.Equal(p, r.payload) {
						err = errors.New("first echo differs")
					} else if err == nil {
						r.setup.Add(1)
					}
				}
			} else {
				asyncs[i], err = d.async(ctx, cfg.URL, r, i)
			}
			if err != nil {
				r.fail(fmt.Errorf("connection %d: %w", i, err))
			}
		})
	}
	wg.Wait()
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			for i := range cfg.Conns {
				if syncs[i] != nil {
					syncs[i].close()
				}
				if asyncs[i] != nil {
					asyncs[i].close()
				}
			}
		})
	}
	defer closeAll()
	if r.err != nil {
		return Report{Err: r.err.Error()}
	}

	// The load: one message in flight on each connection.
	for i := range cfg.Conns {
		if c := syncs[i]; c != nil {
			wg.Go(func() {
				for {
					t0 := time.Now()
					p, err := c.roundTrip(r.payload)
					if err != nil {
						if r.phase.Load() != stopped {
							r.fail(fmt.Errorf("connection %d: %w", i, err))
						}
						return
					}
					if !r.echoed(i, p, t0) {
						return
					}
				}
			})
			continue
		}
		c := asyncs[i]
		if err := c.start(); err != nil {
			r.fail(fmt.Errorf("connection %d: %w", i, err))
			break
		}
		wg.Go(func() { <-c.done() })
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		r.fail(err)
	}

	// The parent's commands.
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	stop := false
	var stopProfile func()
	var windowStart time.Time
	var window time.Duration
	for !stop {
		select {
		case line, ok := <-lines:
			switch {
			case !ok:
				r.fail(errors.New("stdin closed before stop"))
				stop = true
			case line == "start" && windowStart.IsZero():
				r.phase.Store(measured)
				windowStart = time.Now()
				if _, err := fmt.Fprintln(out, "started"); err != nil {
					r.fail(err)
				}
				if cfg.ProfileDir != "" && stopProfile == nil {
					var err error
					if stopProfile, err = startProfile(cfg); err != nil {
						r.fail(err)
					}
				}
			case line == "stop" && !windowStart.IsZero():
				r.phase.Store(stopped)
				window = time.Since(windowStart)
				if _, err := fmt.Fprintln(out, "stopped"); err != nil {
					r.fail(err)
				}
				stop = true
			}
		case <-r.failed:
			stop = true
		case <-deadline:
			r.fail(fmt.Errorf("no stop within %s", cfg.MaxTime))
			stop = true
		}
	}
	r.phase.Store(stopped)
	if stopProfile != nil {
		stopProfile()
	}

	// Every connection stops after its message in flight; on a failure (or
	// if they do not stop) the connections are closed, which ends them.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-r.failed:
	case <-time.After(10 * time.Second):
		r.fail(errors.New("connections did not stop"))
	}
	select {
	case <-done:
	default:
		closeAll()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			return Report{Err: r.err.Error() + " (and the connections did not end)"}
		}
	}
	var all stats
	for i := range r.stats {
		all.hist.Add(&r.stats[i].hist)
		all.ops += r.stats[i].ops
		all.verified += r.stats[i].verified
	}
	rep = Report{Ops: all.ops, Window: window, Verified: all.verified + r.setup.Load(),
		P50: all.hist.Quantile(0.5), P99: all.hist.Quantile(0.99)}
	if r.err != nil {
		rep.Err = r.err.Error()
	}
	return rep
}
