package websocket

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"testing"
)

// An idle WebSocket on an HTTP/2 stream, after a ping and a message each
// way, next to the TLS connection of HTTP/1.1 (TestIdleConnectionMemory):
// what one stream more on a connection costs the server. Serve runs on
// the stream's handler goroutine, whose stack holds net/http's frames
// under it; the heap holds net/http's stream, request and response writer
// (with its 4 KiB bufio.Writer, which net/http keeps while the handler
// runs), and the Conn. The clients are another process's.
func TestIdleHTTP2StreamMemory(t *testing.T) {
	h := &Handler{Serve: reusingEcho}
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close) // after the clients' process has ended: Close waits for the connection
	open := h2StreamClients(t, srv.Listener.Addr().String())
	const streams = 200 // net/http's server allows 250 at once on a connection
	open(1)             // the connection, and the server's pools warmed
	var before, after runtime.MemStats
	g0 := settle(&before)
	open(streams)
	g1 := settle(&after)
	if st := h.Stats(); st.ActiveHTTP2 != streams+1 {
		t.Fatalf("%d streams active, want %d", st.ActiveHTTP2, streams+1)
	}
	stack := float64(after.StackInuse-before.StackInuse) / float64(streams)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(streams)
	t.Logf("per idle HTTP/2 WebSocket: %d goroutine(s), %.0f B of stack, %.0f B of heap", (g1-g0)/streams, stack, heap)
	if g1-g0 != streams {
		t.Errorf("%d goroutines for %d streams, want one each: the handler's", g1-g0, streams)
	}
	// The handler's goroutine grows to 8 KiB under net/http's frames (9 KiB
	// with the runtime's share); the heap is net/http's stream state,
	// request and writer, and the Conn with its kept request.
	if maxStack := 9216 * (1 + raceEnabled); stack > float64(maxStack) {
		t.Errorf("%.0f B of stack per stream, want at most %d", stack, maxStack)
	}
	if maxHeap := 12288 * (1 + raceEnabled); heap > float64(maxHeap) {
		t.Errorf("%.0f B of heap per stream, want at most %d", heap, maxHeap)
	}
}

// h2StreamClients opens WebSockets as streams of one HTTP/2 connection
// from a process of their own (this test binary, running
// TestIdleHTTP2ClientsHelper): each line written to it opens that many more.
func h2StreamClients(t *testing.T, addr string) func(n int) {
	stdin, stdout := startChild(t, "TestIdleHTTP2ClientsHelper", "WEBSOCKET_H2_CLIENTS="+addr)
	return func(n int) {
		t.Helper()
		fmt.Fprintln(stdin, n)
		if line, err := stdout.ReadString('\n'); line != "opened\n" {
			t.Fatalf("HTTP/2 clients: %q, %v", line, err)
		}
	}
}

// TestIdleHTTP2ClientsHelper is the process of h2StreamClients' streams.
func TestIdleHTTP2ClientsHelper(t *testing.T) {
	addr := os.Getenv("WEBSOCKET_H2_CLIENTS")
	if addr == "" {
		t.Skip("the clients of TestIdleHTTP2StreamMemory, run by it")
	}
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	rt := h2Client(tc, addr)
	u := &url.URL{Scheme: "wss", Host: addr, Path: "/"}
	msg := make([]byte, 32)
	var conns []*Conn
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		for range n {
			resp, s, err := connectOn(rt, tc, u, addr, http.Header{":protocol": {"websocket"}, "Sec-Websocket-Version": {"13"}})
			if err != nil || s == nil {
				t.Fatalf("stream: %v, %v", resp, err)
			}
			c := openConn(s, nil, &handshake{dialect: RFC6455}, connConfig{}, true)
			if err := c.Ping([]byte("ka")); err != nil {
				t.Fatal(err)
			}
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				t.Fatal(err)
			}
			if _, got, err := c.ReadMessage(); err != nil || len(got) != len(msg) {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		fmt.Println("opened")
	}
	for _, c := range conns {
		c.CloseNow()
	}
}
