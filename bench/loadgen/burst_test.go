package loadgen

import (
	"crypto/sha1"
	"encoding/base64"
	"io"
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
// order and returns those written to every member.
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
		msgs = f.fault(f.bursts, msgs)
		f.bursts++
		for _, c := range f.members {
			for _, m := range msgs {
				_, _ = c.Write(append([]byte{0x80 | OpBinary, byte(len(m))}, m...))
			}
		}
		f.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + guid))
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		_ = rw.Flush()
		f.mu.Lock()
		f.members = append(f.members, c)
		f.mu.Unlock()
	}
}

// TestBurstChecks runs BurstTest against a server that gets one burst
// wrong in each way a broadcast can, and one that gets none wrong.
func TestBurstChecks(t *testing.T) {
	const bursts = 3 // one unmeasured, two measured
	swap := func(msgs [][]byte, i, j int) [][]byte {
		msgs[i], msgs[j] = msgs[j], msgs[i]
		return msgs
	}
	for _, c := range []struct {
		name  string
		fault func(burst int, msgs [][]byte) [][]byte
		want  string // in the error; "" for none
	}{
		{"none", func(_ int, msgs [][]byte) [][]byte { return msgs }, ""},
		{"duplicate", func(b int, msgs [][]byte) [][]byte {
			if b == 1 {
				msgs = append(msgs[:4:4], msgs[3:]...)
			}
			return msgs
		}, "burst 1, message 4: differs from the message expected (it starts as burst 1, message 3)"},
		{"lost", func(b int, msgs [][]byte) [][]byte {
			if b == 2 {
				msgs = append(msgs[:2:2], msgs[3:]...)
			}
			return msgs
		}, "burst 2, message 2: differs from the message expected (it starts as burst 2, message 3)"},
		{"reordered", func(b int, msgs [][]byte) [][]byte {
			if b == 0 {
				msgs = swap(msgs, 5, 6)
			}
			return msgs
		}, "burst 0, message 5: differs"},
		{"one more at the end", func(b int, msgs [][]byte) [][]byte {
			if b == bursts-1 {
				msgs = append(msgs, msgs[len(msgs)-1])
			}
			return msgs
		}, "after the last burst: 32 bytes more"},
		{"corrupted", func(b int, msgs [][]byte) [][]byte {
			if b == 1 {
				m := append([]byte(nil), msgs[7]...)
				m[20] ^= 1
				msgs[7] = m
			}
			return msgs
		}, "burst 1, message 7: differs from the message expected (it starts as burst 1, message 7)"},
	} {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			f := &fakeBroadcast{fault: c.fault}
			srv := &http.Server{Handler: f}
			go func() { _ = srv.Serve(ln) }()
			defer func() {
				_ = srv.Close()
				f.mu.Lock()
				for _, c := range f.members {
					c.Close()
				}
				f.mu.Unlock()
			}()
			bt := &BurstTest{Addr: ln.Addr().String(), PID: os.Getpid(), Members: 3, Payload: 32,
				Burst: 8, Warmup: 1, Bursts: bursts - 1, Timeout: 5 * time.Second}
			res, err := bt.Run()
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if res.Verified != 3*8*bursts || res.Ops != 3*8*(bursts-1) || len(res.Burst.Last) != bursts-1 ||
					res.Elapsed <= 0 {
					t.Errorf("%+v %+v", res, *res.Burst)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}
