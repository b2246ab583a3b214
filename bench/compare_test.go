package bench

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hybi/websocket/bench/servers"
)

// TestMain lets the test binary serve as the echo servers it starts.
func TestMain(m *testing.M) {
	ServeIfChild()
	os.Exit(m.Run())
}

// TestQuickCompare runs every test of the harness but the client tests,
// briefly, against this library (both modes), gorilla and nbio, and checks
// that each run verified its echoes and measured something, at every size
// asked for.
func TestQuickCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	cfg := QuickConfig
	cfg.Duration = 200 * time.Millisecond
	cfg.Warmup = 50 * time.Millisecond
	cfg.Settle = 100 * time.Millisecond
	cfg.Idle = []int{100, 200}
	cfg.Conns = 16
	cfg.MemConns = 100
	cfg.Workers = 4
	cfg.Members = []int{50}
	cfg.Broadcasts = 3
	cfg.Bursts = 2
	cfg.Libs = []string{"hybi", "hybi-ev", "gorilla", "nbio"}
	for _, test := range Tests {
		if test.table != clientTable { // TestClientCompare's
			cfg.Tests = append(cfg.Tests, test.Name)
		}
	}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range Tests {
		if test.table == clientTable {
			continue
		}
		for _, lib := range cfg.Libs {
			for _, size := range test.Sizes(&cfg) {
				checkRun(t, res, cfg, test, lib, size)
			}
		}
	}
	var b strings.Builder
	res.Table(&b)
	for _, row := range []string{
		"| echo 32 B, 16 conns | hybi | ",
		"| echo 1 KiB, 16 conns | nbio | ",
		"| idle, 100 conns | hybi-ev | ",
		"| idle, 200 conns | nbio | ",
		"| handshakes, 4 clients | nbio | ",
		"| deflate no takeover, 1 KiB JSON, 16 conns | nbio | ",
		"| broadcast 1 KiB binary, 50 members | nbio | ",
		"| 100 × 32 B binary, 50 members | hybi-ev | ",
	} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("no row %q in the table:\n%s", row, b.String())
		}
	}
	t.Logf("\n%s", b.String())
}

// checkRun checks the summary of test on lib at size: it ran if lib
// supports it, verified what it sent and measured something.
func checkRun(t *testing.T, res *Results, cfg Config, test Test, lib string, size int) {
	t.Helper()
	s, ok := res.Summary(test.Name, lib, size)
	if ok != servers.Supports(lib, test.Mode) {
		t.Errorf("%s on %s at %d: ran %v, supported %v", test.Name, lib, size, ok, !ok)
	}
	if !ok {
		return
	}
	if s.Failed > 0 {
		t.Errorf("%s on %s at %d: %v", test.Name, lib, size, s.Err)
		return
	}
	if s.Verified == 0 {
		t.Errorf("%s on %s at %d: nothing verified", test.Name, lib, size)
	}
	if test.Mode == servers.Broadcast {
		checkBroadcast(t, test, lib, s, cfg, size)
		return
	}
	if test.Name == "idle" {
		if math.IsNaN(s.RSS) || s.RSS <= 0 {
			t.Errorf("%s on %s at %d: RSS per connection %v", test.Name, lib, size, s.RSS)
		}
		return
	}
	if !(s.Rate > 0) || s.P50 <= 0 || s.P99 < s.P50 || math.IsNaN(s.CPU) || s.CPU < 0 {
		t.Errorf("%s on %s at %d: rate %v, p50 %v, p99 %v, CPU %v µs", test.Name, lib, size, s.Rate, s.P50, s.P99, s.CPU)
	}
	if test.Mode != servers.None && math.IsNaN(s.RSS) {
		t.Errorf("%s on %s at %d: no RSS per connection", test.Name, lib, size)
	}
}

// checkBroadcast checks the summary of a broadcast or burst test's run
// with members.
func checkBroadcast(t *testing.T, test Test, lib string, s Summary, cfg Config, members int) {
	t.Helper()
	if test.table == burstTable {
		// One unmeasured burst, then cfg.Bursts, to every member.
		if want := uint64(cfg.Rounds * (cfg.Bursts + 1) * cfg.Burst * members); s.Verified != want {
			t.Errorf("%s on %s: %d messages verified, want %d", test.Name, lib, s.Verified, want)
		}
		if s.Broadcasts != cfg.Rounds*cfg.Bursts || s.Last50 <= 0 || s.Last90 < s.Last50 || !(s.Rate > 0) ||
			math.IsNaN(s.CPU) || s.CPU < 0 || !(s.Syscalls > 0) || !(s.GenCPU >= 0) {
			t.Errorf("%s on %s: %+v", test.Name, lib, s)
		}
		return
	}
	// One unmeasured broadcast, then cfg.Broadcasts, to every member.
	if want := uint64(cfg.Rounds * (cfg.Broadcasts + 1) * members); s.Verified != want {
		t.Errorf("broadcast on %s: %d messages verified, want %d", lib, s.Verified, want)
	}
	if s.Broadcasts != cfg.Rounds*cfg.Broadcasts || s.Last50 <= 0 || s.Last90 < s.Last50 ||
		math.IsNaN(s.CPU) || s.CPU < 0 || math.IsNaN(s.RSS) {
		t.Errorf("broadcast on %s: %+v", lib, s)
	}
}

// TestBroadcast runs the broadcast and burst tests, briefly, with two sizes
// of the broadcast set, on every library: those with a broadcast server must
// pass them, the others must be skipped.
func TestBroadcast(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	cfg := QuickConfig
	cfg.Settle = 50 * time.Millisecond
	cfg.Members = []int{20, 50}
	cfg.Broadcasts = 3
	cfg.Bursts = 2
	cfg.Tests = []string{"broadcast", "burst32", "burst1k"}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, test := range Tests {
		if test.Mode != servers.Broadcast {
			continue
		}
		for _, members := range cfg.Members {
			for _, lib := range servers.Libs {
				s, ok := res.Summary(test.Name, lib, members)
				if ok != servers.Supports(lib, servers.Broadcast) {
					t.Errorf("%s, %d members, %s: ran %v", test.Name, members, lib, ok)
				}
				if !ok {
					continue
				}
				if s.Failed > 0 {
					t.Errorf("%s, %d members, %s: %v", test.Name, members, lib, s.Err)
					continue
				}
				checkBroadcast(t, test, lib, s, cfg, members)
			}
		}
	}
	var b strings.Builder
	res.Table(&b)
	for _, row := range []string{
		"| broadcast 1 KiB binary, 50 members | gws | ",
		"| broadcast 1 KiB binary, 20 members | hybi | ",
		"| 100 × 32 B binary, 20 members | gorilla | ",
		"| 100 × 1 KiB binary, 50 members | gws | ",
		"| 100 × 1 KiB binary, 20 members | nbio | ",
		"| broadcast 1 KiB binary, 50 members | hybi-ev | ",
	} {
		if !strings.Contains(b.String(), row) {
			t.Errorf("no row %q in the table:\n%s", row, b.String())
		}
	}
	if strings.Contains(b.String(), "| ops/s |") || !strings.Contains(b.String(), "| deliveries/s |") {
		t.Errorf("table:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}

// TestClientCompare runs the client tests, briefly, with every library's
// client against the default server, and checks the table.
func TestClientCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts client and server processes")
	}
	cfg := QuickConfig // 300 ms windows: some round trips even under -race on a loaded machine
	cfg.Warmup = 50 * time.Millisecond
	cfg.Tests = []string{"client32", "client16k"}
	cfg.Libs = []string{"hybi", "gorilla", "coder", "gobwas", "gws"}
	res, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cfg.Tests {
		for _, lib := range cfg.Libs {
			s, ok := res.Summary(name, lib, 0)
			if ok != (lib != "gobwas") { // gobwas has no client here
				t.Errorf("%s on %s: ran %v", name, lib, ok)
			}
			if !ok {
				continue
			}
			if s.Failed > 0 {
				t.Errorf("%s on %s: %v", name, lib, s.Err)
				continue
			}
			if s.Verified < 64 || !(s.Rate > 0) || s.P50 <= 0 || s.P99 < s.P50 || math.IsNaN(s.CPU) || s.CPU < 0 ||
				!(s.Syscalls > 0) {
				t.Errorf("%s on %s: %+v", name, lib, s)
			}
		}
	}
	var b strings.Builder
	res.Table(&b)
	for _, want := range []string{
		"| test | client | msgs/s |",
		"| client echo 32 B, 64 conns | coder | ",
		"| client echo 16 KiB, 64 conns | gws | ",
		"client echo 16 KiB, 64 conns: hybi's client CPU per message is ",
		"client echo 32 B, 64 conns, paired by round (median of each round's hybi / peer): client CPU per message gorilla ",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in the table:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "| ops/s |") || strings.Contains(b.String(), "gobwas") {
		t.Errorf("table:\n%s", b.String())
	}
	t.Logf("\n%s", b.String())
}

// TestInts checks the list flags (-idle, -members): positive numbers
// separated by commas, printed back the same way; anything else refused.
func TestInts(t *testing.T) {
	var xs Ints
	if err := xs.Set("10000, 19000"); err != nil || xs.String() != "10000,19000" {
		t.Errorf("Set(%q): %v, %v", "10000, 19000", xs, err)
	}
	for _, bad := range []string{"", "0", "-5", "10000,", "ten", "1,x"} {
		before := xs.String()
		if err := xs.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted: %v", bad, xs)
		} else if xs.String() != before {
			t.Errorf("Set(%q) failed but changed the list to %v", bad, xs)
		}
	}
}
