package websocket

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// idleCase is a kind of connection whose idle memory is measured.
type idleCase struct {
	name     string
	handler  *Handler
	offer    string        // Sec-WebSocket-Extensions, if any
	wait     time.Duration // before measuring
	maxStack int           // per goroutine
	maxHeap  int           // per connection
}

// An idle connection, after a ping and a message each way, costs little
// memory: its goroutines keep the smallest stack (2 KiB; the read waits,
// and every write, the pong too, is made where the stack is shallow, as
// are Tick's pushes) and its heap is the Conn, the kept request and the
// socket. The clients are bare sockets, so that the memory measured is the
// server's alone.
func TestIdleConnectionMemory(t *testing.T) {
	for _, tc := range []*idleCase{
		{name: "echo", handler: &Handler{Serve: reusingEcho}, maxStack: 3072, maxHeap: 4096},
		// The classic demo: the time pushed by a goroutine of each
		// connection's, which a Ticker and a Context add to the heap.
		// Every connection has pushed when it is measured.
		{name: "echo and Tick", handler: &Handler{Serve: func(c *Conn) {
			go Tick(context.Background(), c, 100*time.Millisecond, nil)
			reusingEcho(c)
		}}, wait: 150 * time.Millisecond, maxStack: 3072, maxHeap: 6144},
		// A compressed message each way: inflating grows the stack to 4
		// KiB, no more (compressing on the stack grew it to 32 KiB); the
		// heap includes the pooled compressor and decompressor.
		{name: "deflate", handler: &Handler{Serve: reusingEcho, Compression: &CompressionOptions{}},
			offer: "permessage-deflate", maxStack: 5120, maxHeap: 6144},
	} {
		t.Run(tc.name, func(t *testing.T) { idleConnectionMemory(t, tc) })
	}
}

func idleConnectionMemory(t *testing.T, tc *idleCase) {
	h := tc.handler
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	const conns = 1000
	req := []byte(handshakeRequest(RFC6455, ln.Addr().String(), "/"))
	msg := bytes.Repeat([]byte("m"), 32)
	frame := clientFrame(true, 2, msg)
	reply := string(append([]byte{0x82, 32}, msg...))
	if tc.offer != "" {
		req = []byte(handshakeRequest(RFC6455, ln.Addr().String(), "/", "Sec-WebSocket-Extensions: "+tc.offer))
		frame = dflWire(1, newDflClient(false, false, 15, 15).compress(t, dflJSON(1)), true, nil)
		reply = "\xc1" // a compressed text message
	}
	ping := clientFrame(true, 0x9, []byte("ka"))
	pong := []byte{0x8a, 2, 'k', 'a'}
	buf := make([]byte, 4096)
	var fds []int
	defer func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	}()
	// exchange writes out and reads until want has arrived, retrying the
	// system calls the runtime's signals interrupt.
	exchange := func(fd int, out []byte, want string) {
		t.Helper()
		for len(out) > 0 {
			n, err := syscall.Write(fd, out)
			if err != nil && err != syscall.EINTR {
				t.Fatal(err)
			}
			out = out[max(n, 0):]
		}
		got := 0
		for !bytes.Contains(buf[:got], []byte(want)) {
			n, err := syscall.Read(fd, buf[got:])
			switch {
			case err == syscall.EINTR:
			case err != nil || n == 0:
				t.Fatalf("got %q, %v; want %q", buf[:got], err, want)
			default:
				got += n
			}
		}
	}
	dial := func() {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		tv := syscall.Timeval{Sec: 10}
		syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		exchange(fd, req, " 101 ")
		exchange(fd, ping, string(pong))
		exchange(fd, frame, reply)
	}
	dial() // the server's first connection warms its pools
	settle := func(ms *runtime.MemStats) int {
		time.Sleep(50 * time.Millisecond)
		runtime.GC()
		runtime.ReadMemStats(ms)
		return runtime.NumGoroutine()
	}
	var before, after runtime.MemStats
	g0 := settle(&before)
	for range conns {
		dial()
	}
	time.Sleep(tc.wait)
	g1 := settle(&after)
	if active := h.Stats().Active; active != conns+1 {
		t.Fatalf("%d connections active, want %d", active, conns+1)
	}
	stack := float64(after.StackInuse-before.StackInuse) / float64(g1-g0)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / conns
	t.Logf("per idle connection: %d goroutines, %.0f B of stack each, %.0f B of heap", (g1-g0)/conns, stack, heap)
	// 3072 is below 4 KiB: the goroutines kept their 2 KiB stacks (the
	// rest is the runtime's own). Under -race every frame is larger and
	// the detector allocates for its own bookkeeping: the limits double.
	if maxStack := tc.maxStack * (1 + raceEnabled); stack > float64(maxStack) {
		t.Errorf("%.0f B of stack per goroutine, want at most %d", stack, maxStack)
	}
	if maxHeap := tc.maxHeap * (1 + raceEnabled); heap > float64(maxHeap) {
		t.Errorf("%.0f B of heap per idle connection, want at most %d", heap, maxHeap)
	}
}
