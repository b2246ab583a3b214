package loadgen

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
// Every connection has a goroutine of its own that reads it (frame by
// frame, as EchoTest) and checks each message byte for byte against the
// broadcast it must be; it notes the time it has the whole message. For
// each broadcast the test reports the time from the trigger (just before
// the request is written) to the first, the median and the last member's
// arrival. That time includes the generator's own work (10 000 goroutines
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
	br := res.Broadcast
	if t.Members <= 0 || t.Broadcasts <= 0 || t.Payload <= 0 || t.Warmup < 0 {
		return res, fmt.Errorf("bad broadcast test: %+v", *t)
	}
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	total := t.Warmup + t.Broadcasts
	payloads := make([][]byte, total)
	for k := range payloads {
		p := make([]byte, t.Payload)
		_, _ = rand.Read(p)
		if len(p) >= 8 {
			binary.BigEndian.PutUint64(p, uint64(k)) // distinct, whatever rand says
		}
		payloads[k] = p
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
		Timeout: timeout}
	defer hc.CloseIdleConnections()
	base := "http://" + t.Addr

	rss0, err := RSS(t.PID)
	if err != nil {
		return res, err
	}
	conns, err := join(t.Addr, t.Members, hc, base, timeout)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if err != nil {
		return res, err
	}
	time.Sleep(t.Settle)
	rss1, err := RSS(t.PID)
	if err != nil {
		return res, err
	}
	res.Conns = t.Members
	res.RSSPerConn = float64(rss1-rss0) / float64(t.Members)

	// arrivals[k][i] is when member i had broadcast k; left[k] counts the
	// members still waiting for it, and the one that takes it to zero says
	// so on done.
	arrivals := make([][]time.Time, total)
	left := make([]atomic.Int64, total)
	for k := range arrivals {
		arrivals[k] = make([]time.Time, t.Members)
		left[k].Store(int64(t.Members))
	}
	done := make(chan int, total)
	errs := make(chan error, t.Members)
	var verified atomic.Uint64
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			var buf []byte
			for k := range total {
				op, compressed, msg, err := readMessage(c.br, buf)
				buf = msg
				now := time.Now()
				switch {
				case err != nil:
				case op != OpBinary:
					err = fmt.Errorf("opcode %d, want %d", op, OpBinary)
				case compressed:
					err = errors.New("compressed message")
				case !bytes.Equal(msg, payloads[k]):
					err = fmt.Errorf("%d bytes differing from the %d sent", len(msg), len(payloads[k]))
				}
				if err != nil {
					errs <- fmt.Errorf("member %d, broadcast %d: %w", i, k, err)
					return
				}
				verified.Add(1)
				arrivals[k][i] = now
				if left[k].Add(-1) == 0 {
					done <- k
				}
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
	for k := range total {
		if k == t.Warmup {
			if sys0, err = Syscalls(t.PID); err == nil {
				if cpu0, err = CPUTime(t.PID); err == nil {
					gen0, err = CPUTime(os.Getpid())
				}
			}
			if err != nil {
				stop()
				return res, err
			}
			start = time.Now()
		}
		t0 := time.Now()
		if err := trigger(hc, base, payloads[k]); err != nil {
			stop()
			return res, fmt.Errorf("broadcast %d: %w", k, err)
		}
		select {
		case <-done:
		case err := <-errs:
			stop()
			return res, err
		case <-time.After(timeout):
			stop()
			return res, fmt.Errorf("broadcast %d: %d of %d members did not get it within %s",
				k, left[k].Load(), t.Members, timeout)
		}
		if k < t.Warmup {
			continue
		}
		d := make([]time.Duration, t.Members)
		for i, a := range arrivals[k] {
			d[i] = a.Sub(t0)
		}
		slices.Sort(d)
		br.First = append(br.First, d[0])
		br.Half = append(br.Half, d[(len(d)-1)/2])
		br.Last = append(br.Last, d[len(d)-1])
	}
	// Let the server finish what follows the last write (its writers
	// ending) inside the window.
	time.Sleep(50 * time.Millisecond)
	res.Elapsed = time.Since(start)
	res.Ops = uint64(t.Broadcasts)
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
	wg.Wait() // every reader has read every broadcast
	res.Verified = verified.Load()
	if err != nil {
		return res, err
	}
	time.Sleep(t.Settle)
	if rss2, err := RSS(t.PID); err == nil {
		br.RSSAfter = float64(rss2-rss0) / float64(t.Members)
	}
	return res, nil
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

// trigger asks the server to broadcast msg, one message.
func trigger(hc *http.Client, base string, msg []byte) error {
	return triggerBurst(hc, base, msg, 1)
}

// triggerBurst asks the server to broadcast the count messages of equal
// length that body holds, one after the other.
func triggerBurst(hc *http.Client, base string, body []byte, count int) error {
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
