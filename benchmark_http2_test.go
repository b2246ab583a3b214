//go:build unix

package websocket

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
)

// BenchmarkEchoTransport echoes messages through one server, which speaks
// HTTP/1.1 and HTTP/2 over TLS, over each: a WebSocket on a TLS
// connection of its own, and one on an HTTP/2 stream (RFC 8441, Dial with
// HTTP2). Client and server share the process; an op is a message each
// way, and cpu-ns/op the CPU time the process spent on it (both ends'),
// beside its wall time. Over HTTP/2 every frame goes through net/http's
// HTTP/2 server and client: their goroutines, flow control and
// allocations are in the figures (see the README's "HTTP/2").
func BenchmarkEchoTransport(b *testing.B) {
	srv := httptest.NewUnstartedServer(&Handler{Serve: reusingEcho})
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	for _, h2 := range []bool{false, true} {
		for _, n := range benchSizes {
			name := "HTTP1.1"
			if h2 {
				name = "HTTP2"
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				opts := &DialOptions{HTTP2: h2, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
				dial := dialTest
				if h2 {
					dial = dialH2
				}
				c := dial(b, url, opts)
				msg := bytes.Repeat([]byte("x"), n)
				buf := make([]byte, 0, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					if err := c.WriteMessage(TextMessage, msg); err != nil {
						b.Fatal(err)
					}
					var err error
					if _, buf, err = c.AppendMessage(buf[:0]); err != nil || len(buf) != n {
						b.Fatal(err, len(buf))
					}
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime is the CPU time the process has used, user and system, in ns.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
