package loadgen

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Paths of a broadcast server (see package servers): a POST to
// BroadcastPath sends its body to every member; MembersPath answers their
// number.
const (
	BroadcastPath = "/broadcast"
	MembersPath   = "/members"
)

// BroadcastTest opens Members connections to a broadcast server, waits
// until the server counts them all as members, waits Settle and measures
// the server's RSS per member. Then it triggers Warmup unmeasured and
// Broadcasts measured broadcasts, one at a time: each is a POST of a
// Payload-byte message (a different one each time) to the server, and the
// next is triggered once every member has received the previous one.
//
// A broadcast is a burst of one message: the test runs on BurstTest's
// machinery, and every connection has a goroutine of its own that reads it
// (frame by frame, as EchoTest) and checks that it receives every
// broadcast exactly once, byte for byte and in order (and, at the end,
// nothing more); it notes the time it has the whole message, read and
// checked. For each broadcast the test reports the time from the trigger
// (just before the request is written) to the first, the median and the
// last member's arrival, and the server's RSS per member after the
// broadcasts (and Settle). That time includes the generator's own work (10 000 goroutines
// woken, their reads and checks), the same for every server; the
// generator's CPU time over the measured broadcasts is reported too.
type BroadcastTest struct {
	Addr       string
	PID        int
	Members    int
	Payload    int // bytes of each message
	Warmup     int // unmeasured broadcasts first
	Broadcasts int // measured broadcasts
	Settle     time.Duration
	Timeout    time.Duration // for each broadcast and for the members to join (0: 60 s)
}

// BroadcastResult is what a BroadcastTest measured, beside the common
// Result: Ops is the number of measured broadcasts, CPU and Syscalls are
// the server's over them, RSSPerConn is per member once joined.
type BroadcastResult struct {
	First, Half, Last []time.Duration // per measured broadcast, from its trigger
	GenCPU            time.Duration   // the generator's CPU time over the measured broadcasts
	RSSAfter          float64         // server RSS per member after the broadcasts, bytes
}

// Run runs the test.
func (t *BroadcastTest) Run() (Result, error) {
	res := Result{RSSPerConn: math.NaN(), Broadcast: &BroadcastResult{RSSAfter: math.NaN()}}
	if t.Members <= 0 || t.Broadcasts <= 0 || t.Payload <= 0 || t.Warmup < 0 {
		return res, fmt.Errorf("bad broadcast test: %+v", *t)
	}
	m, err := (&bursts{addr: t.Addr, pid: t.PID, members: t.Members, payload: t.Payload, burst: 1,
		warmup: t.Warmup, measured: t.Broadcasts, timeout: t.Timeout, name: "broadcast",
		rss: true, settle: t.Settle}).run(&res)
	*res.Broadcast = BroadcastResult{First: m.first, Half: m.half, Last: m.last, GenCPU: m.genCPU,
		RSSAfter: m.rssAfter}
	res.Elapsed = m.wall
	res.Ops = uint64(len(m.last))
	return res, err
}

// join opens n connections to the broadcast server at addr and waits until
// the server (at base) counts them all as members. It returns the
// connections it opened, even on error: the caller closes them.
func join(addr string, n int, hc *http.Client, base string, timeout time.Duration) ([]*Conn, error) {
	conns, err := open(n, func(int) (*Conn, error) { return Dial(addr, "", dialTimeout) })
	if err == nil {
		err = waitMembers(hc, base, n, timeout)
	}
	return conns, err
}

// waitMembers polls the server until it counts want members.
func waitMembers(hc *http.Client, base string, want int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := hc.Get(base + MembersPath)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", MembersPath, resp.Status)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("%s: %q", MembersPath, b)
		}
		if n == want {
			return nil
		}
		if n > want || time.Now().After(deadline) {
			return fmt.Errorf("the server counts %d members, want %d", n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trigger asks the server to broadcast the count messages of equal length
// that body holds, one after the other.
func trigger(hc *http.Client, base string, body []byte, count int) error {
	url := base + BroadcastPath
	if count != 1 {
		url += "?count=" + strconv.Itoa(count)
	}
	resp, err := hc.Post(url, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("%s: %s %q", BroadcastPath, resp.Status, b)
	}
	return nil
}
