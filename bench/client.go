package bench

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hybi/websocket/bench/clients"
	"github.com/hybi/websocket/bench/loadgen"
)

// envClient tells a process started by SelfSpawnClient to be an echo
// client: its value is a clients.Config in JSON.
const envClient = "HYBI_BENCH_CLIENT"

// DefaultClientServer is the echo server of the client tests: gws's, a
// peer's rather than this library's (so that no client is measured against
// its own server), and as fast as this library's on the echo tests (CPU per
// echo within 0-18 % of hybi's, see README.md), so that it leaves as much of
// the machine as any to the client.
const DefaultClientServer = "gws"

// clientConns is how many connections each client opens.
const clientConns = 64

// serveClientIfChild runs the client process and exits if the environment
// says so (see ServeIfChild).
func serveClientIfChild() {
	v := os.Getenv(envClient)
	if v == "" {
		return
	}
	var cfg clients.Config
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "echoclient:", err)
		os.Exit(1)
	}
	if err := clients.Main(cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echoclient:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Client is an echo client process (see clients.Main).
type Client struct {
	PID   int
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // its stdout, line by line; closed at EOF
}

// SpawnClientFunc starts an echo client process.
type SpawnClientFunc func(cfg clients.Config) (*Client, error)

// SelfSpawnClient starts the running executable again as an echo client
// (see ServeIfChild).
func SelfSpawnClient(cfg clients.Config) (*Client, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return SpawnClient(exec.Command(exe), cfg)
}

// SpawnClient starts cmd, a program calling ServeIfChild first, as the echo
// client of cfg.
func SpawnClient(cmd *exec.Cmd, cfg clients.Config) (*Client, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	in, out, err := startChild(cmd, envClient+"="+string(b))
	if err != nil {
		return nil, err
	}
	c := &Client{PID: cmd.Process.Pid, cmd: cmd, in: in, lines: make(chan string, 4)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	return c, nil
}

// next returns the client's next line of output, or an error after timeout
// or at its end.
func (c *Client) next(timeout time.Duration) (string, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return "", errors.New("client exited")
		}
		return line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("client silent for %s", timeout)
	}
}

// tell writes a command line to the client.
func (c *Client) tell(cmd string) error {
	_, err := io.WriteString(c.in, cmd+"\n")
	return err
}

// Stop ends the client process and waits for it.
func (c *Client) Stop() {
	_ = c.in.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill() // our own child, by its PID
		<-done
	}
}

// report parses the client's last line, its clients.Report.
func report(line string) (clients.Report, error) {
	var rep clients.Report
	if err := json.Unmarshal([]byte(line), &rep); err != nil {
		return rep, fmt.Errorf("client said %q", line)
	}
	if rep.Err != "" {
		return rep, errors.New(rep.Err)
	}
	return rep, nil
}

// clientEcho is a client test: lib's client process opens clientConns
// connections to the echo server s, keeps one size-byte binary message in
// flight on each, and is measured from outside (its CPU time and system
// calls, the server's CPU time) over the window.
func clientEcho(size int) func(*Config, *Server, string, int) (loadgen.Result, error) {
	return func(cfg *Config, s *Server, lib string, _ int) (loadgen.Result, error) {
		res := loadgen.Result{RSSPerConn: math.NaN()}
		c, err := cfg.SpawnClient(clients.Config{Lib: lib, URL: "ws://" + s.Addr + "/", Conns: clientConns,
			Size: size, MaxTime: cfg.Warmup + cfg.Duration + time.Minute, ProfileDir: cfg.ClientProfile})
		if err != nil {
			return res, err
		}
		defer c.Stop()
		line, err := c.next(30 * time.Second)
		if err != nil {
			return res, err
		}
		if line != "ready" {
			_, err := report(line)
			return res, fmt.Errorf("client not ready: %v", err)
		}
		// The warm-up: the client runs; it only speaks again if it fails.
		select {
		case line := <-c.lines:
			_, err := report(line)
			return res, fmt.Errorf("in the warm-up: %v", err)
		case <-time.After(cfg.Warmup):
		}
		// The window: from the client's "started" to its "stopped", the
		// CPU times read on each.
		if err := c.tell("start"); err != nil {
			return res, err
		}
		if line, err := c.next(30 * time.Second); err != nil || line != "started" {
			return res, fmt.Errorf("client did not start: %q, %v", line, err)
		}
		cpu0, err1 := loadgen.CPUTime(c.PID)
		sys0, err2 := loadgen.Syscalls(c.PID)
		srv0, err3 := loadgen.CPUTime(s.PID)
		if err := errors.Join(err1, err2, err3); err != nil {
			return res, err
		}
		var early string
		select {
		case early = <-c.lines:
		case <-time.After(cfg.Duration):
		}
		if early != "" {
			_, err := report(early)
			return res, fmt.Errorf("in the window: %v", err)
		}
		if err := c.tell("stop"); err != nil {
			return res, err
		}
		if line, err := c.next(30 * time.Second); err != nil || line != "stopped" {
			if err == nil {
				_, err = report(line)
			}
			return res, fmt.Errorf("client did not stop: %v", err)
		}
		cpu1, err1 := loadgen.CPUTime(c.PID)
		sys1, err2 := loadgen.Syscalls(c.PID)
		srv1, err3 := loadgen.CPUTime(s.PID)
		if err := errors.Join(err1, err2, err3); err != nil {
			return res, err
		}
		line, err = c.next(30 * time.Second)
		if err != nil {
			return res, err
		}
		rep, err := report(line)
		if err != nil {
			return res, err
		}
		res.Ops, res.Elapsed, res.Verified, res.P50, res.P99 = rep.Ops, rep.Window, rep.Verified, rep.P50, rep.P99
		res.CPU, res.Syscalls, res.ServerCPU = cpu1-cpu0, sys1-sys0, srv1-srv0
		return res, nil
	}
}

// clientTable writes the table of the client tests, if they ran (after a
// blank line if sep); it reports whether it wrote anything. Below it, for
// each test, this library's client against the best peer's.
func (res *Results) clientTable(w io.Writer, sep bool) bool {
	cfg := res.Config
	base := cfg.Libs[0]
	var rows, notes []string
	for _, t := range Tests {
		if t.table != clientTable {
			continue
		}
		b, hasBase := res.summarize(t.Name, base, 0)
		hasBase = hasBase && b.failed < b.runs
		bestCPU, bestRate := math.NaN(), math.NaN()
		var bestCPULib, bestRateLib string
		for _, lib := range cfg.Libs {
			s, ok := res.summarize(t.Name, lib, 0)
			if !ok {
				continue
			}
			if s.failed > 0 {
				notes = append(notes, fmt.Sprintf("%s, %s: %d of %d runs failed: %v", t.Title, lib, s.failed, s.runs, s.err))
			}
			if s.failed == s.runs {
				rows = append(rows, fmt.Sprintf("| %s | %s | failed | | | | | | | | |", t.Title, lib))
				continue
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", t.Title, lib,
				fmtRate(s.rate), fmtDur(time.Duration(s.p50)), fmtDur(time.Duration(s.p99)), fmtNum(s.cpu),
				fmtNum(s.sys), fmtNum(s.serverCPU), ratio(s.rate, b.rate, hasBase), ratio(s.cpu, b.cpu, hasBase),
				ratio(s.serverCPU, b.serverCPU, hasBase)))
			if lib == base || math.IsNaN(s.cpu) || math.IsNaN(s.rate) {
				continue
			}
			if !(s.cpu >= bestCPU) {
				bestCPU, bestCPULib = s.cpu, lib
			}
			if !(s.rate <= bestRate) {
				bestRate, bestRateLib = s.rate, lib
			}
		}
		if hasBase && bestCPULib != "" {
			notes = append(notes, fmt.Sprintf("%s: %s's client CPU per message is %s× the best peer's (%s), its msgs/s %s× the best peer's (%s)",
				t.Title, base, cmp.Or(ratio(b.cpu, bestCPU, true), "?"), bestCPULib,
				cmp.Or(ratio(b.rate, bestRate, true), "?"), bestRateLib))
			var cpu, rate []string
			for _, lib := range cfg.Libs[1:] {
				c := res.pairedRatio(t.Name, base, lib, loadgen.Result.CPUPerOp)
				r := res.pairedRatio(t.Name, base, lib, loadgen.Result.Rate)
				if !math.IsNaN(c) {
					cpu = append(cpu, fmt.Sprintf("%s %.2f", lib, c))
					rate = append(rate, fmt.Sprintf("%s %.2f", lib, r))
				}
			}
			if len(cpu) > 0 {
				notes = append(notes, fmt.Sprintf("%s, paired by round (median of each round's %s / peer): client CPU per message %s; msgs/s %s",
					t.Title, base, strings.Join(cpu, ", "), strings.Join(rate, ", ")))
			}
		}
	}
	if len(rows) == 0 {
		return false
	}
	if sep {
		fmt.Fprintln(w)
	}
	writeRows(w, "| test | client | msgs/s | p50 | p99 | client CPU µs/msg | client syscalls/msg | server CPU µs/msg | msgs/s vs hybi | client CPU vs hybi | server CPU vs hybi |", rows)
	writeNotes(w, notes)
	return true
}

// pairedRatio is the median over the rounds of base's measure over lib's in
// the same round (the two ran minutes apart at most, under the same load);
// NaN if no round has both.
func (res *Results) pairedRatio(test, base, lib string, measure func(loadgen.Result) float64) float64 {
	var xs []float64
	for _, a := range res.Runs {
		if a.Test != test || a.Lib != base || a.Err != nil || a.Result.Ops == 0 {
			continue
		}
		for _, b := range res.Runs {
			if b.Test == test && b.Lib == lib && b.Round == a.Round && b.Err == nil && b.Result.Ops > 0 {
				if y := measure(b.Result); y > 0 {
					xs = append(xs, measure(a.Result)/y)
				}
			}
		}
	}
	return median(xs)
}
