package bench

import (
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hybi/websocket/bench/loadgen"
	"github.com/hybi/websocket/bench/servers"
)

// Config says what Run runs.
type Config struct {
	Rounds   int           // rounds; each runs every test on every server once
	Duration time.Duration // measured window of each timed test
	Warmup   time.Duration // unmeasured load before it
	Settle   time.Duration // wait before reading the server's RSS
	Idle     int           // connections of the idle test
	MemConns int           // connections held by the compressed tests for their memory measure
	Workers  int           // concurrent clients of the handshake test
	// Members and Broadcasts: connections that join the broadcast set, and
	// measured broadcasts (after one unmeasured), of the broadcast test.
	Members    int
	Broadcasts int
	Libs       []string  // libraries, in order (default servers.Libs)
	Tests      []string  // test names (default all, see Tests)
	Spawn      SpawnFunc // starts a server (default SelfSpawn)
	Log        io.Writer // progress, if not nil
}

// Defaults of the full run and of the quick (smoke) run.
var (
	DefaultConfig = Config{Rounds: 3, Duration: 1500 * time.Millisecond, Warmup: 300 * time.Millisecond,
		Settle: 500 * time.Millisecond, Idle: 10000, MemConns: 1000, Workers: 16, Members: 10000, Broadcasts: 10}
	QuickConfig = Config{Rounds: 1, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Settle: 200 * time.Millisecond, Idle: 500, MemConns: 100, Workers: 16, Members: 500, Broadcasts: 5}
)

// Test is one test of the comparison.
type Test struct {
	Name  string       // for -tests
	Title string       // for the table
	Mode  servers.Mode // the server's compression mode, or servers.Broadcast
	run   func(cfg *Config, s *Server) (loadgen.Result, error)
}

// Payloads of the tests, made once.
var (
	payload32   = randomBytes(32)
	payload1K   = randomBytes(1 << 10)
	payload16K  = randomBytes(16 << 10)
	payloadJSON = jsonLike(1 << 10)
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// jsonLike returns n bytes of JSON: an array of small records, as a chat or
// a dashboard would send.
func jsonLike(n int) []byte {
	events := []string{"join", "message", "typing", "leave", "reaction"}
	b := []byte(`{"type":"batch","items":[`)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"id":%d,"user":"user-%04d","event":%q,"ts":%d,"score":%d.%02d,"ok":%t}`,
			1000+i*7, (i*37)%1000, events[i%len(events)], 1767225600+i*13, i*3%100, i*17%100, i%3 != 0)
		if len(b)+len(item)+len(`,],"pad":""}`) > n {
			break
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, item...)
	}
	b = append(b, `],"pad":"`...)
	for len(b) < n-2 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

func echo(conns, memConns int, payload []byte, op byte, mode servers.Mode) func(*Config, *Server) (loadgen.Result, error) {
	return func(cfg *Config, s *Server) (loadgen.Result, error) {
		t := &loadgen.EchoTest{Addr: s.Addr, PID: s.PID, Conns: conns, Payload: payload, Op: op,
			Warmup: cfg.Warmup, Duration: cfg.Duration, Settle: cfg.Settle}
		switch mode {
		case servers.NoTakeover:
			t.Offer, t.Deflate = loadgen.OfferNoTakeover, true
		case servers.Takeover:
			t.Offer, t.Deflate = loadgen.OfferTakeover, true
		}
		if memConns < 0 { // the configured number
			t.MemConns = max(cfg.MemConns, conns)
		}
		return t.Run()
	}
}

// Tests lists the tests, in the order they run in a round.
var Tests = []Test{
	{"echo32", "echo 32 B, 64 conns", servers.None, echo(64, 0, payload32, loadgen.OpBinary, servers.None)},
	{"echo16k", "echo 16 KiB, 64 conns", servers.None, echo(64, 0, payload16K, loadgen.OpBinary, servers.None)},
	{"echo1k", "echo 1 KiB, 512 conns", servers.None, echo(512, 0, payload1K, loadgen.OpBinary, servers.None)},
	{"idle", "idle conns", servers.None, func(cfg *Config, s *Server) (loadgen.Result, error) {
		t := &loadgen.EchoTest{Addr: s.Addr, PID: s.PID, MemConns: cfg.Idle, Payload: payload32,
			Op: loadgen.OpBinary, Settle: cfg.Settle}
		return t.Run()
	}},
	{"handshake", "handshakes", servers.None, func(cfg *Config, s *Server) (loadgen.Result, error) {
		t := &loadgen.HandshakeTest{Addr: s.Addr, PID: s.PID, Workers: cfg.Workers,
			Warmup: cfg.Warmup, Duration: cfg.Duration}
		return t.Run()
	}},
	{"deflate", "deflate no takeover, 1 KiB JSON, 64 conns", servers.NoTakeover,
		echo(64, -1, payloadJSON, loadgen.OpText, servers.NoTakeover)},
	{"deflate-takeover", "deflate takeover, 1 KiB JSON, 64 conns", servers.Takeover,
		echo(64, -1, payloadJSON, loadgen.OpText, servers.Takeover)},
	{"broadcast", "broadcast 1 KiB binary", servers.Broadcast, func(cfg *Config, s *Server) (loadgen.Result, error) {
		t := &loadgen.BroadcastTest{Addr: s.Addr, PID: s.PID, Members: cfg.Members, Payload: 1 << 10,
			Warmup: 1, Broadcasts: cfg.Broadcasts, Settle: cfg.Settle}
		return t.Run()
	}},
}

// TestNames lists the names of Tests.
func TestNames() []string {
	var names []string
	for _, t := range Tests {
		names = append(names, t.Name)
	}
	return names
}

// Run is one test run of one library.
type RunResult struct {
	Test, Lib string
	Round     int
	Result    loadgen.Result
	Err       error
}

// Results are the runs of a comparison.
type Results struct {
	Config Config
	Runs   []RunResult
}

// Run runs the comparison: for each round, for each test, each library's
// server is started, measured and stopped in turn (the order of the
// libraries rotates from round to round).
func Run(cfg Config) (*Results, error) {
	if cfg.Rounds <= 0 || cfg.Duration <= 0 || cfg.Workers <= 0 {
		return nil, fmt.Errorf("bad config: %+v", cfg)
	}
	if len(cfg.Libs) == 0 {
		cfg.Libs = servers.Libs
	}
	if cfg.Spawn == nil {
		cfg.Spawn = SelfSpawn
	}
	var tests []Test
	if len(cfg.Tests) == 0 {
		tests = Tests
	} else {
		for _, name := range cfg.Tests {
			i := slices.IndexFunc(Tests, func(t Test) bool { return t.Name == name })
			if i < 0 {
				return nil, fmt.Errorf("unknown test %q (have %v)", name, TestNames())
			}
			tests = append(tests, Tests[i])
		}
	}
	if slices.ContainsFunc(tests, func(t Test) bool { return t.Mode == servers.Broadcast }) &&
		(cfg.Members <= 0 || cfg.Broadcasts <= 0) {
		return nil, fmt.Errorf("bad config: %d broadcast members, %d broadcasts", cfg.Members, cfg.Broadcasts)
	}
	for _, lib := range cfg.Libs {
		if !slices.Contains(servers.Libs, lib) {
			return nil, fmt.Errorf("unknown library %q (have %v)", lib, servers.Libs)
		}
	}
	if _, err := servers.RaiseFileLimit(); err != nil {
		return nil, err
	}
	res := &Results{Config: cfg}
	for round := range cfg.Rounds {
		libs := append(slices.Clone(cfg.Libs[round%len(cfg.Libs):]), cfg.Libs[:round%len(cfg.Libs)]...)
		for _, t := range tests {
			for _, lib := range libs {
				if !servers.Supports(lib, t.Mode) {
					continue
				}
				r := RunResult{Test: t.Name, Lib: lib, Round: round}
				start := time.Now()
				r.Result, r.Err = runOne(&cfg, t, lib)
				res.Runs = append(res.Runs, r)
				if cfg.Log != nil {
					if r.Err != nil {
						fmt.Fprintf(cfg.Log, "round %d %-16s %-8s error: %v\n", round+1, t.Name, lib, r.Err)
					} else {
						x := r.Result
						line := fmt.Sprintf("round %d %-16s %-8s", round+1, t.Name, lib)
						if b := x.Broadcast; b != nil && len(b.Last) > 0 {
							line += fmt.Sprintf(" all have it p50 %-7s p90 %-7s (first p50 %s) cpu %.1f ms/broadcast, generator %.1f ms",
								fmtDur(quantile(b.Last, 0.5)), fmtDur(quantile(b.Last, 0.9)), fmtDur(quantile(b.First, 0.5)),
								x.CPUPerOp()/1e3, float64(b.GenCPU.Microseconds())/1e3/float64(x.Ops))
						} else if x.Ops > 0 {
							line += fmt.Sprintf(" %8.0f/s p50 %-7s p99 %-7s cpu %6.1f µs/op", x.Rate(), fmtDur(x.P50),
								fmtDur(x.P99), x.CPUPerOp())
						}
						if !math.IsNaN(x.RSSPerConn) {
							line += " rss/conn " + fmtBytes(x.RSSPerConn)
						}
						fmt.Fprintf(cfg.Log, "%s (%.1fs)\n", line, time.Since(start).Seconds())
					}
				}
			}
		}
	}
	return res, nil
}

func runOne(cfg *Config, t Test, lib string) (loadgen.Result, error) {
	s, err := cfg.Spawn(lib, t.Mode)
	if err != nil {
		return loadgen.Result{}, err
	}
	r, err := t.run(cfg, s)
	if serr := s.Stop(); err == nil && serr != nil {
		err = serr
	}
	return r, err
}

// summary is the median of a test's runs on one library.
type summary struct {
	rate, p50, p99, cpu, sys, rss float64
	runs, failed                  int
	verified                      uint64
	ext                           string
	wire                          float64
	compressed                    bool
	err                           error

	// The broadcast test: the time until the last member (and the median
	// one) had a broadcast, over the broadcasts of every run; syscalls per
	// member and broadcast; the generator's CPU per broadcast (µs), and the
	// server's CPU divided by it; RSS per member after the broadcasts.
	broadcasts                       int
	last50, last90, half50           time.Duration
	sysMember, gen, cpuGen, rssAfter float64
}

func median(xs []float64) float64 {
	xs = slices.DeleteFunc(slices.Clone(xs), math.IsNaN)
	if len(xs) == 0 {
		return math.NaN()
	}
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

// quantile is the q-quantile of ds by nearest rank; 0 if ds is empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

func (res *Results) summarize(test, lib string) (summary, bool) {
	var s summary
	var rate, p50, p99, cpu, sys, rss, wire []float64
	var last, half []time.Duration
	var sysMember, gen, cpuGen, rssAfter []float64
	for _, r := range res.Runs {
		if r.Test != test || r.Lib != lib {
			continue
		}
		s.runs++
		if r.Err != nil {
			s.failed++
			s.err = r.Err
			continue
		}
		x := r.Result
		if x.Ops > 0 {
			rate = append(rate, x.Rate())
			p50 = append(p50, float64(x.P50))
			p99 = append(p99, float64(x.P99))
			cpu = append(cpu, x.CPUPerOp())
			sys = append(sys, x.SyscallsPerOp())
			wire = append(wire, x.WireBytes)
		}
		if b := x.Broadcast; b != nil && x.Ops > 0 {
			last = append(last, b.Last...)
			half = append(half, b.Half...)
			sysMember = append(sysMember, x.SyscallsPerOp()/float64(x.Conns))
			gen = append(gen, float64(b.GenCPU.Microseconds())/float64(x.Ops))
			if b.GenCPU > 0 {
				cpuGen = append(cpuGen, float64(x.CPU)/float64(b.GenCPU))
			}
			rssAfter = append(rssAfter, b.RSSAfter)
		}
		rss = append(rss, x.RSSPerConn)
		s.verified += x.Verified
		s.ext = x.Extensions
		s.compressed = x.CompressedReplies > 0
	}
	if s.runs == 0 {
		return s, false
	}
	s.rate, s.p50, s.p99, s.cpu, s.sys = median(rate), median(p50), median(p99), median(cpu), median(sys)
	s.rss, s.wire = median(rss), median(wire)
	s.broadcasts = len(last)
	s.last50, s.last90, s.half50 = quantile(last, 0.5), quantile(last, 0.9), quantile(half, 0.5)
	s.sysMember, s.gen, s.cpuGen, s.rssAfter = median(sysMember), median(gen), median(cpuGen), median(rssAfter)
	return s, true
}

// Summary is the median of one test's runs on one library, for checks.
type Summary struct {
	Rate     float64       // operations per second
	P50, P99 time.Duration // latency
	CPU      float64       // server µs per operation (broadcast: per broadcast)
	RSS      float64       // server bytes per connection (NaN if not measured)
	Verified uint64        // echoes (broadcast: messages) verified, over all runs
	Failed   int           // runs that failed
	Err      error         // the last failure

	// The broadcast test: measured broadcasts over all runs, and the time
	// from a trigger until every member had the message.
	Broadcasts     int
	Last50, Last90 time.Duration
}

// Summary returns the medians of test on lib, and false if it did not run.
func (res *Results) Summary(test, lib string) (Summary, bool) {
	s, ok := res.summarize(test, lib)
	return Summary{Rate: s.rate, P50: time.Duration(s.p50), P99: time.Duration(s.p99), CPU: s.cpu,
		RSS: s.rss, Verified: s.verified, Failed: s.failed, Err: s.err,
		Broadcasts: s.broadcasts, Last50: s.last50, Last90: s.last90}, ok
}

// ratio formats x/y, or nothing if either is missing.
func ratio(x, y float64, ok bool) string {
	if !ok || math.IsNaN(x) || math.IsNaN(y) || y == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", x/y)
}

// Table writes the medians as Markdown tables, with ratios to the first
// library (this one): one for the echo, idle and handshake tests, then
// notes (the agreed extensions, failures), then one for the broadcast test.
func (res *Results) Table(w io.Writer) {
	cfg := res.Config
	var rows, notes []string
	base := cfg.Libs[0]
	for _, t := range Tests {
		if t.Mode == servers.Broadcast {
			continue
		}
		b, hasBase := res.summarize(t.Name, base)
		title := t.Title
		switch t.Name {
		case "idle":
			title = fmt.Sprintf("idle, %d conns", cfg.Idle)
		case "handshake":
			title = fmt.Sprintf("handshakes, %d clients", cfg.Workers)
		}
		for _, lib := range cfg.Libs {
			s, ok := res.summarize(t.Name, lib)
			if !ok {
				continue
			}
			if s.failed == s.runs {
				rows = append(rows, fmt.Sprintf("| %s | %s | failed | | | | | | | | |", title, lib))
				notes = append(notes, fmt.Sprintf("%s, %s: %v", title, lib, s.err))
				continue
			}
			if s.failed > 0 {
				notes = append(notes, fmt.Sprintf("%s, %s: %d of %d runs failed: %v", title, lib, s.failed, s.runs, s.err))
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", title, lib,
				fmtRate(s.rate), fmtDur(time.Duration(s.p50)), fmtDur(time.Duration(s.p99)), fmtNum(s.cpu),
				fmtNum(s.sys), fmtBytes(s.rss), ratio(s.rate, b.rate, hasBase), ratio(s.cpu, b.cpu, hasBase),
				ratio(s.rss, b.rss, hasBase)))
			if t.Mode != servers.None {
				c := "compressed"
				if !s.compressed {
					c = "NOT compressed"
				}
				notes = append(notes, fmt.Sprintf("%s, %s: `%s`; replies %s, %.0f B on the wire",
					title, lib, s.ext, c, s.wire))
			}
		}
	}
	writeRows(w, "| test | lib | ops/s | p50 | p99 | CPU µs/op | syscalls/op | RSS/conn | ops/s vs hybi | CPU vs hybi | RSS vs hybi |", rows)
	writeNotes(w, notes)
	res.broadcastTable(w, len(rows)+len(notes) > 0)
}

// writeRows writes a markdown table, if it has rows: header, the alignment
// row (the first two columns text, the others numbers), then the rows.
func writeRows(w io.Writer, header string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, "| --- | --- |"+strings.Repeat(" ---: |", strings.Count(header, "|")-3))
	for _, r := range rows {
		fmt.Fprintln(w, r)
	}
}

// writeNotes writes notes as a list after a blank line, if there are any.
func writeNotes(w io.Writer, notes []string) {
	if len(notes) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, n := range notes {
		fmt.Fprintln(w, "- "+n)
	}
}

// broadcastTable writes the table of the broadcast test, if it ran.
func (res *Results) broadcastTable(w io.Writer, sep bool) {
	cfg := res.Config
	base := cfg.Libs[0]
	var rows, notes []string
	for _, t := range Tests {
		if t.Mode != servers.Broadcast {
			continue
		}
		title := fmt.Sprintf("%s, %d members", t.Title, cfg.Members)
		b, hasBase := res.summarize(t.Name, base)
		hasBase = hasBase && b.broadcasts > 0
		for _, lib := range cfg.Libs {
			s, ok := res.summarize(t.Name, lib)
			if !ok {
				continue
			}
			if s.failed > 0 {
				notes = append(notes, fmt.Sprintf("%s, %s: %d of %d runs failed: %v", title, lib, s.failed, s.runs, s.err))
			}
			if s.broadcasts == 0 {
				rows = append(rows, fmt.Sprintf("| %s | %s | failed | | | | | | | | | | | |", title, lib))
				continue
			}
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |",
				title, lib, fmtDur(s.last50), fmtDur(s.last90), fmtDur(s.half50), fmtNum(s.cpu/1e3),
				fmtNum(s.sysMember), fmtBytes(s.rss), fmtBytes(s.rssAfter), fmtNum(s.gen/1e3), fmtRatio(s.cpuGen),
				ratio(float64(s.last50), float64(b.last50), hasBase), ratio(s.cpu, b.cpu, hasBase),
				ratio(s.rss, b.rss, hasBase)))
		}
	}
	if len(rows) == 0 {
		return
	}
	if sep {
		fmt.Fprintln(w)
	}
	writeRows(w, "| test | lib | all have it p50 | all have it p90 | half have it p50 | server CPU ms/broadcast | syscalls/member | RSS/member | RSS/member after | generator CPU ms/broadcast | server CPU / generator CPU | time vs hybi | CPU vs hybi | RSS vs hybi |", rows)
	writeNotes(w, notes)
}

func fmtRate(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

func fmtRatio(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func fmtNum(x float64) string {
	if math.IsNaN(x) {
		return ""
	}
	if x >= 100 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return strconv.FormatFloat(x, 'f', 1, 64)
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtBytes(b float64) string {
	switch {
	case math.IsNaN(b):
		return ""
	case math.Abs(b) < 10<<10:
		return fmt.Sprintf("%.0f B", b)
	case math.Abs(b) < 10<<20:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	}
}

// Describe says what was run, in one line.
func (cfg Config) Describe() string {
	return fmt.Sprintf("rounds %d, duration %s, warm-up %s, idle %d, memconns %d, handshake clients %d, "+
		"broadcast members %d, broadcasts %d, libs %s", cfg.Rounds, cfg.Duration, cfg.Warmup, cfg.Idle,
		cfg.MemConns, cfg.Workers, cfg.Members, cfg.Broadcasts, strings.Join(cfg.Libs, ","))
}
