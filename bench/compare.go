package bench

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hybi/websocket/bench/clients"
	"github.com/hybi/websocket/bench/loadgen"
	"github.com/hybi/websocket/bench/servers"
)

// Config says what Run runs.
type Config struct {
	Rounds   int           // rounds; each runs every test on every server once
	Duration time.Duration // measured window of each timed test
	Warmup   time.Duration // unmeasured load before it
	Settle   time.Duration // wait before reading the server's RSS
	// Idle: connections of the idle test; it runs once for each number.
	Idle []int
	// Conns: connections carrying the load in the echo and deflate tests;
	// 0 for each test's own (64; 512 for echo1k).
	Conns    int
	MemConns int // connections held by the compressed tests for their memory measure
	Workers  int // concurrent clients of the handshake test
	// Members: the sizes of the broadcast set; each broadcast test (the
	// broadcast latency test and the burst tests) runs once for each.
	Members []int
	// Broadcasts: measured broadcasts (after one unmeasured) of the
	// broadcast latency test.
	Broadcasts int
	// Burst and Bursts: messages per burst, and measured bursts (after one
	// unmeasured), of the burst tests. Burst must not exceed the smallest
	// queue of the servers (gorilla's hub: 256 messages; hybi's Group: 1
	// MiB, and a member is slow only once its queue stayed full for 5 s;
	// gws: unbounded), or a member that reads every message may still be
	// disconnected, or its messages dropped, by its library's defaults.
	Burst  int
	Bursts int
	Libs   []string  // libraries, in order (default servers.Libs)
	Tests  []string  // test names (default all, see Tests)
	Spawn  SpawnFunc // starts a server (default SelfSpawn)
	// ClientServer is the library whose echo server the client tests'
	// clients talk to (default DefaultClientServer); SpawnClient starts a
	// client (default SelfSpawnClient).
	ClientServer string
	SpawnClient  SpawnClientFunc
	// ClientProfile, if set, is a directory where each client process
	// writes a CPU profile of its measured window.
	ClientProfile string
	Log           io.Writer // progress, if not nil
}

// Defaults of the full run and of the quick (smoke) run.
var (
	DefaultConfig = Config{Rounds: 3, Duration: 1500 * time.Millisecond, Warmup: 300 * time.Millisecond,
		Settle: 500 * time.Millisecond, Idle: []int{10000}, MemConns: 1000, Workers: 16, Members: []int{1000, 10000},
		Broadcasts: 10, Burst: 100, Bursts: 3}
	QuickConfig = Config{Rounds: 1, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond,
		Settle: 200 * time.Millisecond, Idle: []int{500}, MemConns: 100, Workers: 16, Members: []int{500},
		Broadcasts: 5, Burst: 100, Bursts: 2}
)

// Test is one test of the comparison.
type Test struct {
	Name  string       // for -tests
	Title string       // for the table, before the size
	Mode  servers.Mode // the server's compression mode, or servers.Broadcast
	table table
	// unit is what the sizes count: the table's title is "Title, size
	// unit"; "" for a test of one size (0).
	unit string
	// sizes lists the sizes the test runs at, once each: the connections
	// carrying the load, the idle connections, the handshake clients, the
	// members of the broadcast set; nil for a test of one size (0).
	sizes func(cfg *Config) []int
	// run runs the test of lib, at size, on the server s (lib's server,
	// or, for the client tests, Config.ClientServer's).
	run func(cfg *Config, s *Server, lib string, size int) (loadgen.Result, error)
}

// Sizes lists the sizes the test runs at with cfg (see Test.sizes).
func (t Test) Sizes(cfg *Config) []int {
	if t.sizes == nil {
		return []int{0}
	}
	return t.sizes(cfg)
}

// title is the table's title of the test at size.
func (t Test) title(size int) string {
	if t.unit == "" {
		return t.Title
	}
	return fmt.Sprintf("%s, %d %s", t.Title, size, t.unit)
}

// conns are the sizes of an echo test whose own number of connections is
// n: Config.Conns if set, else n.
func conns(n int) func(cfg *Config) []int {
	return func(cfg *Config) []int { return []int{cmp.Or(cfg.Conns, n)} }
}

func members(cfg *Config) []int { return cfg.Members }

// table is the table a test's rows go in.
type table int

const (
	echoTable      table = iota // echo, idle, handshake, deflate
	broadcastTable              // broadcast latency
	burstTable                  // burst throughput
	clientTable                 // client echo: each library's client against one server
)

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

// echo is an echo test: size connections, one message in flight on each;
// the compressed tests (memConns < 0) first open Config.MemConns for their
// memory measure.
func echo(memConns int, payload []byte, op byte, mode servers.Mode) func(*Config, *Server, string, int) (loadgen.Result, error) {
	return func(cfg *Config, s *Server, _ string, conns int) (loadgen.Result, error) {
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

func burst(payload int) func(*Config, *Server, string, int) (loadgen.Result, error) {
	return func(cfg *Config, s *Server, _ string, members int) (loadgen.Result, error) {
		t := &loadgen.BurstTest{Addr: s.Addr, PID: s.PID, Members: members, Payload: payload,
			Burst: cfg.Burst, Warmup: 1, Bursts: cfg.Bursts}
		return t.Run()
	}
}

// Tests lists the tests, in the order they run in a round.
var Tests = []Test{
	{"echo32", "echo 32 B", servers.None, echoTable, "conns", conns(64), echo(0, payload32, loadgen.OpBinary, servers.None)},
	{"echo16k", "echo 16 KiB", servers.None, echoTable, "conns", conns(64), echo(0, payload16K, loadgen.OpBinary, servers.None)},
	{"echo1k", "echo 1 KiB", servers.None, echoTable, "conns", conns(512), echo(0, payload1K, loadgen.OpBinary, servers.None)},
	{"idle", "idle", servers.None, echoTable, "conns", func(cfg *Config) []int { return cfg.Idle },
		func(cfg *Config, s *Server, _ string, conns int) (loadgen.Result, error) {
			t := &loadgen.EchoTest{Addr: s.Addr, PID: s.PID, MemConns: conns, Payload: payload32,
				Op: loadgen.OpBinary, Settle: cfg.Settle}
			return t.Run()
		}},
	{"handshake", "handshakes", servers.None, echoTable, "clients", func(cfg *Config) []int { return []int{cfg.Workers} },
		func(cfg *Config, s *Server, _ string, workers int) (loadgen.Result, error) {
			t := &loadgen.HandshakeTest{Addr: s.Addr, PID: s.PID, Workers: workers,
				Warmup: cfg.Warmup, Duration: cfg.Duration}
			return t.Run()
		}},
	{"deflate", "deflate no takeover, 1 KiB JSON", servers.NoTakeover, echoTable, "conns", conns(64),
		echo(-1, payloadJSON, loadgen.OpText, servers.NoTakeover)},
	{"deflate-takeover", "deflate takeover, 1 KiB JSON", servers.Takeover, echoTable, "conns", conns(64),
		echo(-1, payloadJSON, loadgen.OpText, servers.Takeover)},
	{"broadcast", "broadcast 1 KiB binary", servers.Broadcast, broadcastTable, "members", members,
		func(cfg *Config, s *Server, _ string, members int) (loadgen.Result, error) {
			t := &loadgen.BroadcastTest{Addr: s.Addr, PID: s.PID, Members: members, Payload: 1 << 10,
				Warmup: 1, Broadcasts: cfg.Broadcasts, Settle: cfg.Settle}
			return t.Run()
		}},
	{"burst32", "32 B binary", servers.Broadcast, burstTable, "members", members, burst(32)},
	{"burst1k", "1 KiB binary", servers.Broadcast, burstTable, "members", members, burst(1 << 10)},
	{"client32", "client echo 32 B, 64 conns", servers.None, clientTable, "", nil, clientEcho(32)},
	{"client16k", "client echo 16 KiB, 64 conns", servers.None, clientTable, "", nil, clientEcho(16 << 10)},
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
	Size      int // the test's size (see Test.sizes)
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
	if cfg.ClientServer == "" {
		cfg.ClientServer = DefaultClientServer
	}
	if cfg.SpawnClient == nil {
		cfg.SpawnClient = SelfSpawnClient
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
	for _, t := range tests {
		if slices.ContainsFunc(t.Sizes(&cfg), func(n int) bool { return n < 0 }) || t.unit != "" && len(t.Sizes(&cfg)) == 0 {
			return nil, fmt.Errorf("bad config: %s: sizes %v", t.Name, t.Sizes(&cfg))
		}
	}
	if slices.ContainsFunc(tests, func(t Test) bool { return t.Mode == servers.Broadcast }) &&
		(len(cfg.Members) == 0 || slices.Min(cfg.Members) <= 0 || cfg.Broadcasts <= 0 ||
			cfg.Burst <= 0 || cfg.Burst > servers.MaxBurst || cfg.Bursts <= 0) {
		return nil, fmt.Errorf("bad config: broadcast members %v, %d broadcasts, bursts of %d (at most %d), %d bursts",
			cfg.Members, cfg.Broadcasts, cfg.Burst, servers.MaxBurst, cfg.Bursts)
	}
	for _, lib := range cfg.Libs {
		if !slices.Contains(servers.Libs, lib) && lib != servers.Floor {
			return nil, fmt.Errorf("unknown library %q (have %v and %s)", lib, servers.Libs, servers.Floor)
		}
	}
	if slices.ContainsFunc(tests, func(t Test) bool { return t.table == clientTable }) &&
		!servers.Supports(cfg.ClientServer, servers.None) {
		return nil, fmt.Errorf("bad config: no echo server %q for the client tests (have %v)", cfg.ClientServer, servers.Libs)
	}
	if _, err := servers.RaiseFileLimit(); err != nil {
		return nil, err
	}
	res := &Results{Config: cfg}
	for round := range cfg.Rounds {
		libs := append(slices.Clone(cfg.Libs[round%len(cfg.Libs):]), cfg.Libs[:round%len(cfg.Libs)]...)
		for _, t := range tests {
			for _, size := range t.Sizes(&cfg) {
				for _, lib := range libs {
					if !t.Supports(lib) {
						continue
					}
					r := RunResult{Test: t.Name, Lib: lib, Size: size, Round: round}
					start := time.Now()
					r.Result, r.Err = runOne(&cfg, t, lib, size)
					res.Runs = append(res.Runs, r)
					if cfg.Log != nil {
						logRun(cfg.Log, r, time.Since(start))
					}
				}
			}
		}
	}
	return res, nil
}

// logRun writes a line of progress about r, which took d.
func logRun(w io.Writer, r RunResult, d time.Duration) {
	name := r.Test
	if r.Size > 0 {
		name += fmt.Sprintf(" %d", r.Size)
	}
	line := fmt.Sprintf("round %d %-16s %-8s", r.Round+1, name, r.Lib)
	if r.Err != nil {
		fmt.Fprintf(w, "%s error: %v\n", line, r.Err)
		return
	}
	x := r.Result
	if b := x.Broadcast; b != nil && len(b.Last) > 0 {
		line += fmt.Sprintf(" all have it p50 %-7s p90 %-7s (first p50 %s) cpu %.1f ms/broadcast, generator %.1f ms",
			fmtDur(quantile(b.Last, 0.5)), fmtDur(quantile(b.Last, 0.9)), fmtDur(quantile(b.First, 0.5)),
			x.CPUPerOp()/1e3, float64(b.GenCPU.Microseconds())/1e3/float64(x.Ops))
	} else if b := x.Burst; b != nil && len(b.Last) > 0 {
		line += fmt.Sprintf(" %8.0f deliveries/s, burst p50 %-7s cpu %.2f µs/delivery, generator %.2f µs",
			x.Rate(), fmtDur(quantile(b.Last, 0.5)), x.CPUPerOp(), float64(b.GenCPU.Microseconds())/float64(x.Ops))
	} else if x.Ops > 0 {
		line += fmt.Sprintf(" %8.0f/s p50 %-7s p99 %-7s cpu %6.1f µs/op", x.Rate(), fmtDur(x.P50),
			fmtDur(x.P99), x.CPUPerOp())
	}
	if !math.IsNaN(x.RSSPerConn) {
		line += " rss/conn " + fmtBytes(x.RSSPerConn)
	}
	fmt.Fprintf(w, "%s (%.1fs)\n", line, d.Seconds())
}

// Supports reports whether the test runs on lib: lib has a server for the
// test's mode or, for the client tests, a client.
func (t Test) Supports(lib string) bool {
	if t.table == clientTable {
		return clients.Supports(lib)
	}
	return servers.Supports(lib, t.Mode)
}

func runOne(cfg *Config, t Test, lib string, size int) (loadgen.Result, error) {
	srv := lib
	if t.table == clientTable {
		srv = cfg.ClientServer
	}
	s, err := cfg.Spawn(srv, t.Mode)
	if err != nil {
		return loadgen.Result{}, err
	}
	r, err := t.run(cfg, s, lib, size)
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
	// The burst tests: the same times until the last (the median) member
	// had a whole burst, over the bursts of every run; the generator's CPU
	// per delivery (µs), and the server's CPU divided by it (rate, cpu and
	// sys are then per delivery).
	broadcasts                       int
	last50, last90, half50           time.Duration
	sysMember, gen, cpuGen, rssAfter float64

	// The client tests: the server's CPU per round trip (µs); cpu and sys
	// are then the client's.
	serverCPU float64
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

func (res *Results) summarize(test, lib string, size int) (summary, bool) {
	var s summary
	var rate, p50, p99, cpu, sys, rss, wire []float64
	var last, half []time.Duration
	var sysMember, gen, cpuGen, rssAfter, serverCPU []float64
	for _, r := range res.Runs {
		if r.Test != test || r.Lib != lib || r.Size != size {
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
			serverCPU = append(serverCPU, float64(x.ServerCPU.Microseconds())/float64(x.Ops))
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
		if b := x.Burst; b != nil && x.Ops > 0 {
			last = append(last, b.Last...)
			half = append(half, b.Half...)
			gen = append(gen, float64(b.GenCPU.Microseconds())/float64(x.Ops))
			if b.GenCPU > 0 {
				cpuGen = append(cpuGen, float64(x.CPU)/float64(b.GenCPU))
			}
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
	s.serverCPU = median(serverCPU)
	return s, true
}

// Summary is the median of one test's runs on one library, for checks.
type Summary struct {
	Rate     float64       // operations per second (burst: deliveries per second)
	P50, P99 time.Duration // latency
	CPU      float64       // server µs per operation (broadcast: per broadcast; burst: per delivery)
	Syscalls float64       // server read and write system calls per operation
	RSS      float64       // server bytes per connection (NaN if not measured)
	Verified uint64        // echoes (broadcast, burst: messages) verified, over all runs
	Failed   int           // runs that failed
	Err      error         // the last failure

	// The broadcast and burst tests: measured broadcasts (bursts) over all
	// runs, and the time from a trigger until every member had the
	// message (all the burst's messages); the generator's CPU per
	// broadcast (per delivery), µs.
	Broadcasts     int
	Last50, Last90 time.Duration
	GenCPU         float64
}

// Summary returns the medians of test on lib at size (see Test.sizes; 0
// for a test of one size), and false if it did not run.
func (res *Results) Summary(test, lib string, size int) (Summary, bool) {
	s, ok := res.summarize(test, lib, size)
	return Summary{Rate: s.rate, P50: time.Duration(s.p50), P99: time.Duration(s.p99), CPU: s.cpu,
		Syscalls: s.sys, RSS: s.rss, Verified: s.verified, Failed: s.failed, Err: s.err,
		Broadcasts: s.broadcasts, Last50: s.last50, Last90: s.last90, GenCPU: s.gen}, ok
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
// notes (the agreed extensions, failures), then one for the client tests,
// one for the broadcast test and one for the burst tests.
func (res *Results) Table(w io.Writer) {
	cfg := res.Config
	var rows, notes []string
	base := cfg.Libs[0]
	for _, t := range Tests {
		if t.table != echoTable {
			continue
		}
		for _, size := range t.Sizes(&cfg) {
			rows, notes = res.echoRows(t, size, rows, notes)
		}
	}
	writeRows(w, "| test | lib | ops/s | p50 | p99 | CPU µs/op | syscalls/op | RSS/conn | ops/s vs "+base+" | CPU vs "+base+
		" | RSS vs "+base+" |", rows)
	writeNotes(w, notes)
	sep := len(rows)+len(notes) > 0
	sep = res.clientTable(w, sep) || sep
	sep = res.broadcastTable(w, sep) || sep
	res.burstTable(w, sep)
}

// echoRows appends the rows of test t at size to rows, and its notes (the
// agreed extensions, failures) to notes.
func (res *Results) echoRows(t Test, size int, rows, notes []string) ([]string, []string) {
	cfg := res.Config
	b, hasBase := res.summarize(t.Name, cfg.Libs[0], size)
	title := t.title(size)
	for _, lib := range cfg.Libs {
		s, ok := res.summarize(t.Name, lib, size)
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
	return rows, notes
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

// broadcastTable writes the table of the broadcast test, if it ran (after a
// blank line if sep); it reports whether it wrote anything.
func (res *Results) broadcastTable(w io.Writer, sep bool) bool {
	base := res.Config.Libs[0]
	return res.membersTable(w, sep, broadcastTable,
		func(t Test, members int) string { return fmt.Sprintf("%s, %d members", t.Title, members) },
		"| test | lib | all have it p50 | all have it p90 | half have it p50 | server CPU ms/broadcast | syscalls/member | RSS/member | RSS/member after | generator CPU ms/broadcast | server CPU / generator CPU | time vs "+base+
			" | CPU vs "+base+" | RSS vs "+base+" |",
		func(s, b summary, hasBase bool) []string {
			return []string{fmtDur(s.last50), fmtDur(s.last90), fmtDur(s.half50), fmtNum(s.cpu / 1e3),
				fmtNum(s.sysMember), fmtBytes(s.rss), fmtBytes(s.rssAfter), fmtNum(s.gen / 1e3), fmtRatio(s.cpuGen),
				ratio(float64(s.last50), float64(b.last50), hasBase), ratio(s.cpu, b.cpu, hasBase),
				ratio(s.rss, b.rss, hasBase)}
		})
}

// burstTable writes the table of the burst tests, if they ran (after a
// blank line if sep).
func (res *Results) burstTable(w io.Writer, sep bool) {
	base := res.Config.Libs[0]
	res.membersTable(w, sep, burstTable,
		func(t Test, members int) string {
			return fmt.Sprintf("%d × %s, %d members", res.Config.Burst, t.Title, members)
		},
		"| burst | lib | deliveries/s | all have all p50 | half have all p50 | server CPU µs/delivery | syscalls/delivery | generator CPU µs/delivery | server CPU / generator CPU | deliveries/s vs "+base+
			" | CPU vs "+base+" | CPU / generator CPU vs "+base+" |",
		func(s, b summary, hasBase bool) []string {
			return []string{fmtRate(s.rate), fmtDur(s.last50), fmtDur(s.half50), fmtNum2(s.cpu),
				fmtNum2(s.sys), fmtNum2(s.gen), fmtRatio(s.cpuGen),
				ratio(s.rate, b.rate, hasBase), ratio(s.cpu, b.cpu, hasBase), ratio(s.cpuGen, b.cpuGen, hasBase)}
		})
}

// membersTable writes the table of the tests of kind table (which run once
// for each size of the broadcast set), if they ran (after a blank line if
// sep), then its notes; it reports whether it wrote anything. A case's
// rows are titled by title; header is the table's header; row gives a
// library's columns after the case and the library, from its summary s
// and that of the first library, b (hasBase: b ran and measured).
func (res *Results) membersTable(w io.Writer, sep bool, table table, title func(t Test, members int) string,
	header string, row func(s, b summary, hasBase bool) []string) bool {
	cfg := res.Config
	base := cfg.Libs[0]
	failed := " failed |" + strings.Repeat(" |", strings.Count(header, "|")-4)
	var rows, notes []string
	for _, t := range Tests {
		if t.table != table {
			continue
		}
		for _, members := range t.Sizes(&cfg) {
			title := title(t, members)
			b, hasBase := res.summarize(t.Name, base, members)
			hasBase = hasBase && b.broadcasts > 0
			for _, lib := range cfg.Libs {
				s, ok := res.summarize(t.Name, lib, members)
				if !ok {
					continue
				}
				if s.failed > 0 {
					notes = append(notes, fmt.Sprintf("%s, %s: %d of %d runs failed: %v", title, lib, s.failed, s.runs, s.err))
				}
				if s.broadcasts == 0 {
					rows = append(rows, fmt.Sprintf("| %s | %s |%s", title, lib, failed))
					continue
				}
				rows = append(rows, fmt.Sprintf("| %s | %s | %s |", title, lib, strings.Join(row(s, b, hasBase), " | ")))
			}
		}
	}
	if len(rows) == 0 {
		return false
	}
	if sep {
		fmt.Fprintln(w)
	}
	writeRows(w, header, rows)
	writeNotes(w, notes)
	return true
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

// fmtNum2 formats a small number to two decimals, a larger one as fmtNum.
func fmtNum2(x float64) string {
	if !math.IsNaN(x) && x < 10 {
		return strconv.FormatFloat(x, 'f', 2, 64)
	}
	return fmtNum(x)
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
	echoConns := "64 (echo1k 512)"
	if cfg.Conns > 0 {
		echoConns = strconv.Itoa(cfg.Conns)
	}
	return fmt.Sprintf("rounds %d, duration %s, warm-up %s, idle %v, echo conns %s, memconns %d, handshake clients %d, "+
		"broadcast members %v, broadcasts %d, bursts of %d messages %d (after 1 unmeasured), "+
		"client tests' server %s, libs %s",
		cfg.Rounds, cfg.Duration, cfg.Warmup, Ints(cfg.Idle), echoConns, cfg.MemConns, cfg.Workers, Ints(cfg.Members),
		cfg.Broadcasts, cfg.Burst, cfg.Bursts, cmp.Or(cfg.ClientServer, DefaultClientServer), strings.Join(cfg.Libs, ","))
}

// Ints is a comma-separated list of positive numbers, as a flag.
type Ints []int

func (xs Ints) String() string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// Set parses v, replacing the list.
func (xs *Ints) Set(v string) error {
	var list Ints
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("%q: want positive numbers separated by commas", v)
		}
		list = append(list, n)
	}
	*xs = list
	return nil
}
