package loadgen

import (
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBroadcast is a broadcast server written by hand (see package
// servers), whose bursts can go wrong: fault gets each burst's messages in
// order and returns those written to every member (nil: all of them).
type fakeBroadcast struct {
	mu      sync.Mutex
	members []net.Conn
	bursts  int
	fault   func(burst int, msgs [][]byte) [][]byte
}

func (f *fakeBroadcast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == MembersPath:
		f.mu.Lock()
		_, _ = io.WriteString(w, strconv.Itoa(len(f.members)))
		f.mu.Unlock()
	case r.URL.Path == BroadcastPath && r.Method == http.MethodPost:
		count := 1
		if v := r.URL.Query().Get("count"); v != "" {
			count, _ = strconv.Atoi(v)
		}
		body, _ := io.ReadAll(r.Body)
		size := len(body) / count
		var msgs [][]byte
		for k := range count {
			msgs = append(msgs, body[k*size:(k+1)*size])
		}
		f.mu.Lock()
		if f.fault != nil {
			msgs = f.fault(f.bursts, msgs)
		}
		f.bursts++
		for _, c := range f.members {
			for _, m := range msgs {
				_, _ = c.Write(append([]byte{0x80 | OpBinary, byte(len(m))}, m...))
			}
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		c, _, err := acceptRaw(w, r)
		if err != nil {
			return
		}
		f.mu.Lock()
		f.members = append(f.members, c)
		f.mu.Unlock()
	}
}

// faultCase is one way a fakeBroadcast gets a burst wrong (fault nil: none),
// and what the test run against it must say (in its error; "" for none).
type faultCase struct {
	name  string
	fault func(burst int, msgs [][]byte) [][]byte
	want  string
}

// in is a fault that changes burst b's messages with f, and no other.
func in(b int, f func(msgs [][]byte) [][]byte) func(int, [][]byte) [][]byte {
	return func(burst int, msgs [][]byte) [][]byte {
		if burst == b {
			return f(msgs)
		}
		return msgs
	}
}

// repeatLast sends the last message twice.
func repeatLast(msgs [][]byte) [][]byte { return append(msgs, msgs[len(msgs)-1]) }

// corrupt flips a bit of message k.
func corrupt(k int) func([][]byte) [][]byte {
	return func(msgs [][]byte) [][]byte {
		m := append([]byte(nil), msgs[k]...)
		m[20] ^= 1
		msgs[k] = m
		return msgs
	}
}

// checkFaults runs a test (run, on the server at addr) against a
// fakeBroadcast with each of cases: each fault must fail it with its want;
// with none it must pass, and ok must accept its result.
func checkFaults(t *testing.T, cases []faultCase, run func(addr string) (Result, error), ok func(Result) bool) {
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			res, err := run(serveFake(t, c.fault))
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !ok(res) {
					t.Errorf("%+v %+v %+v", res, res.Burst, res.Broadcast)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

// serveFake serves a fakeBroadcast with fault until the end of the test,
// and returns its address.
func serveFake(t *testing.T, fault func(burst int, msgs [][]byte) [][]byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeBroadcast{fault: fault}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		f.mu.Lock()
		for _, c := range f.members {
			c.Close()
		}
		f.mu.Unlock()
	})
	return ln.Addr().String()
}

// TestBurstChecks runs BurstTest against a server that gets one burst
// wrong in each way a broadcast can, and one that gets none wrong.
func TestBurstChecks(t *testing.T) {
	const bursts = 3 // one unmeasured, two measured
	checkFaults(t, []faultCase{
		{"none", nil, ""},
		{"duplicate", in(1, func(msgs [][]byte) [][]byte { return append(msgs[:4:4], msgs[3:]...) }),
			"burst 1, message 4: differs from the message expected (it starts as burst 1, message 3)"},
		{"lost", in(2, func(msgs [][]byte) [][]byte { return append(msgs[:2:2], msgs[3:]...) }),
			"burst 2, message 2: differs from the message expected (it starts as burst 2, message 3)"},
		{"reordered", in(0, func(msgs [][]byte) [][]byte {
			msgs[5], msgs[6] = msgs[6], msgs[5]
			return msgs
		}), "burst 0, message 5: differs"},
		{"one more at the end", in(bursts-1, repeatLast), "after the last burst: 32 bytes more"},
		{"corrupted", in(1, corrupt(7)),
			"burst 1, message 7: differs from the message expected (it starts as burst 1, message 7)"},
	}, func(addr string) (Result, error) {
		return (&BurstTest{Addr: addr, PID: os.Getpid(), Members: 3, Payload: 32,
			Burst: 8, Warmup: 1, Bursts: bursts - 1, Timeout: 5 * time.Second}).Run()
	}, func(res Result) bool {
		return res.Verified == 3*8*bursts && res.Ops == 3*8*(bursts-1) && len(res.Burst.Last) == bursts-1 &&
			res.Elapsed > 0
	})
}

// TestBroadcastChecks runs BroadcastTest (a burst of one message, on
// BurstTest's machinery) against a server that gets one broadcast wrong,
// and one that gets none wrong.
func TestBroadcastChecks(t *testing.T) {
	const broadcasts = 3 // one unmeasured, two measured
	checkFaults(t, []faultCase{
		{"none", nil, ""},
		{"duplicate", in(1, repeatLast),
			": broadcast 2: differs from the message expected (it starts as broadcast 1)"},
		{"lost", in(1, func([][]byte) [][]byte { return nil }), "broadcast 1: 3 of 3 members did not get it within"},
		{"one more at the end", in(broadcasts-1, repeatLast), "after the last broadcast: 32 bytes more"},
		{"corrupted", in(1, corrupt(0)),
			"broadcast 1: differs from the message expected (it starts as broadcast 1)"},
	}, func(addr string) (Result, error) {
		return (&BroadcastTest{Addr: addr, PID: os.Getpid(), Members: 3, Payload: 32,
			Warmup: 1, Broadcasts: broadcasts - 1, Timeout: time.Second}).Run()
	}, func(res Result) bool {
		b := res.Broadcast
		return res.Verified == 3*broadcasts && res.Ops == broadcasts-1 && len(b.Last) == broadcasts-1 &&
			len(b.First) == broadcasts-1 && b.First[0] <= b.Half[0] && b.Half[0] <= b.Last[0] &&
			res.Elapsed > 0 && !math.IsNaN(res.RSSPerConn) && !math.IsNaN(b.RSSAfter)
	})
}
