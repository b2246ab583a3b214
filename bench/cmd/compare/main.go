// Command compare runs the echo servers of this library and its peers
// through the same tests in interleaved rounds and prints a Markdown table
// of the medians, with ratios to this library.
//
//	go run ./bench/cmd/compare                  # full run: 3 rounds of 1.5 s tests, about 25 minutes
//	go run ./bench/cmd/compare -quick           # smoke run, about 30 s
//	go run ./bench/cmd/compare -libs hybi,gws -tests echo32,deflate
//	go run ./bench/cmd/compare -libs hybi,gorilla,gws -tests broadcast -members 5000
//	go run ./bench/cmd/compare -libs hybi,gorilla,gws -tests burst32,burst1k -members 1000,10000 -burst 100 -bursts 3
//	go run ./bench/cmd/compare -libs hybi,gorilla,coder,gws -tests client32,client16k
//	go run ./bench/cmd/compare -conns 512 -idle 10000,19000 -libs hybi-ev,hybi,gws,nbio -tests echo32,echo1k,idle,handshake
//
// Each server runs in a process of its own (this program, started again);
// the load generator speaks RFC 6455 over raw TCP and checks every echo.
// The client tests invert it: one echo server (gws's, -clientserver) in a
// process of its own, each library's client in another, measured from
// outside.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hybi/websocket/bench"
	"github.com/hybi/websocket/bench/servers"
)

func main() {
	bench.ServeIfChild()

	def := bench.DefaultConfig
	quick := flag.Bool("quick", false, "smoke run: 1 round of 300 ms tests, 500 idle connections and broadcast members (about 30 s)")
	rounds := flag.Int("rounds", def.Rounds, "rounds of every test on every library")
	duration := flag.Duration("duration", def.Duration, "measured window of each timed test")
	warmup := flag.Duration("warmup", def.Warmup, "unmeasured load before each measured window")
	settle := flag.Duration("settle", def.Settle, "wait before reading the server's RSS")
	idle := bench.Ints(def.Idle)
	flag.Var(&idle, "idle", "comma-separated numbers of connections of the idle test: it runs once for each "+
		"(the open-file limit, raised to the hard limit, must be above each)")
	conns := flag.Int("conns", 0, "connections carrying the load in the echo and deflate tests (default each test's own: 64, echo1k 512)")
	memconns := flag.Int("memconns", def.MemConns, "connections held by the compressed tests for their memory measure")
	workers := flag.Int("workers", def.Workers, "concurrent clients of the handshake test")
	members := bench.Ints(def.Members)
	flag.Var(&members, "members", "comma-separated sizes of the broadcast set: "+
		"each broadcast and burst test runs once for each")
	broadcasts := flag.Int("broadcasts", def.Broadcasts, "measured broadcasts of the broadcast test, each run")
	burst := flag.Int("burst", def.Burst, "messages per burst of the burst tests (at most 256, gorilla's "+
		"hub's queue, for every library's defaults to keep a reading member)")
	bursts := flag.Int("bursts", def.Bursts, "measured bursts of the burst tests, each run (after 1 unmeasured)")
	libs := flag.String("libs", "", "comma-separated libraries (default all: "+strings.Join(servers.Libs, ",")+")")
	tests := flag.String("tests", "", "comma-separated tests (default all: "+strings.Join(bench.TestNames(), ",")+")")
	clientServer := flag.String("clientserver", bench.DefaultClientServer, "the echo server of the client tests (client32, client16k)")
	clientProfile := flag.String("clientprofile", "", "directory where each client of the client tests writes a CPU profile "+
		"of its measured window (client-<lib>-<size>B-<pid>.pprof)")
	out := flag.String("o", "", "also write the table to this file")
	flag.Parse()

	cfg := def
	if *quick {
		cfg = bench.QuickConfig
	}
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rounds":
			cfg.Rounds = *rounds
		case "duration":
			cfg.Duration = *duration
		case "warmup":
			cfg.Warmup = *warmup
		case "settle":
			cfg.Settle = *settle
		case "idle":
			cfg.Idle = idle
		case "conns":
			cfg.Conns = *conns
		case "memconns":
			cfg.MemConns = *memconns
		case "workers":
			cfg.Workers = *workers
		case "members":
			cfg.Members = members
		case "broadcasts":
			cfg.Broadcasts = *broadcasts
		case "burst":
			cfg.Burst = *burst
		case "bursts":
			cfg.Bursts = *bursts
		case "clientserver":
			cfg.ClientServer = *clientServer
		case "clientprofile":
			cfg.ClientProfile = *clientProfile
		}
	})
	if *libs != "" {
		cfg.Libs = strings.Split(*libs, ",")
	}
	if *tests != "" {
		cfg.Tests = strings.Split(*tests, ",")
	}
	cfg.Log = os.Stderr

	start := time.Now()
	res, err := bench.Run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "done in %s\n\n", time.Since(start).Round(time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", res.Config.Describe())
	res.Table(&b)
	fmt.Print(b.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "compare:", err)
			os.Exit(1)
		}
	}
	for _, r := range res.Runs {
		if r.Err != nil {
			os.Exit(1)
		}
	}
}
