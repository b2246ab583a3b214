package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// idleCase is a kind of connection whose idle memory is measured.
type idleCase struct {
	name     string
	handler  *Handler
	tls      bool
	conns    int           // 0: 1000
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
		// Serve needs nothing from the request and lets it go.
		{name: "echo, request released", handler: &Handler{Serve: func(c *Conn) {
			c.ReleaseRequest()
			reusingEcho(c)
		}}, maxStack: 3072, maxHeap: 2048},
		// The classic demo: the time pushed by a goroutine of each
		// connection's, which a Ticker and a Context add to the heap.
		// Every connection has pushed when it is measured.
		{name: "echo and Tick", handler: &Handler{Serve: func(c *Conn) {
			go Tick(context.Background(), c, 100*time.Millisecond, nil)
			reusingEcho(c)
		}}, wait: 150 * time.Millisecond, maxStack: 3072, maxHeap: 6144},
		// Streamed, as gorilla's users write an echo.
		{name: "streamed echo", handler: &Handler{Serve: func(c *Conn) {
			for {
				typ, r, err := c.NextReader()
				if err != nil {
					return
				}
				w, err := c.NextWriter(typ)
				if err != nil {
					return
				}
				if _, err := io.Copy(w, r); err != nil || w.Close() != nil {
					return
				}
			}
		}}, maxStack: 3072, maxHeap: 4096},
		// A compressed message each way: inflating grows the stack to 4
		// KiB, no more (compressing on the stack grew it to 32 KiB); the
		// heap includes the pooled compressor and decompressor.
		{name: "deflate", handler: &Handler{Serve: reusingEcho, Compression: &CompressionOptions{}},
			offer: "permessage-deflate", maxStack: 5120, maxHeap: 6144},
		// Over TLS: crypto/tls's own state and buffers (about 6 KiB), and
		// no read buffer of this package's while the connection waits (4
		// KiB more when it held one); reading through crypto/tls needs a 4
		// KiB stack.
		{name: "TLS", handler: &Handler{Serve: reusingEcho}, tls: true, conns: 300,
			maxStack: 5120, maxHeap: 11264},
	} {
		t.Run(tc.name, func(t *testing.T) { idleConnectionMemory(t, tc) })
	}
}

func idleConnectionMemory(t *testing.T, tc *idleCase) {
	h := tc.handler
	var addr string
	var open func(n int) // opens n more idle connections
	if tc.tls {
		srv := httptest.NewUnstartedServer(h)
		srv.StartTLS()
		defer srv.Close()
		addr = srv.Listener.Addr().String()
		open = tlsClients(t, addr)
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		defer srv.Close()
		addr = ln.Addr().String()
		bare := bareClients(t, addr, tc.offer)
		open = func(n int) { bare(n) }
	}
	conns := 1000
	if tc.conns != 0 {
		conns = tc.conns
	}
	open(1) // the server's first connection warms its pools
	var before, after runtime.MemStats
	g0 := settle(&before)
	open(conns)
	time.Sleep(tc.wait)
	g1 := settle(&after)
	if active := h.Stats().Active; active != conns+1 {
		t.Fatalf("%d connections active, want %d", active, conns+1)
	}
	stack := float64(after.StackInuse-before.StackInuse) / float64(g1-g0)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / float64(conns)
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

// settle lets the connections just opened come to rest, then reads the
// memory in use and returns the number of goroutines. It collects twice:
// what earlier tests left in sync.Pools survives one collection, as the
// pools' victims, and would be freed during the measurement.
func settle(ms *runtime.MemStats) int {
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(ms)
	return runtime.NumGoroutine()
}

// idleExchange is what a client of the idle test sends and awaits: the
// handshake, a ping, and a message echoed (compressed, with offer).
func idleExchange(t testing.TB, addr, offer string) (out [][]byte, want []string) {
	req := handshakeRequest(RFC6455, addr, "/")
	msg := bytes.Repeat([]byte("m"), 32)
	frame := clientFrame(true, 2, msg)
	reply := string(append([]byte{0x82, 32}, msg...))
	if offer != "" {
		req = handshakeRequest(RFC6455, addr, "/", "Sec-WebSocket-Extensions: "+offer)
		frame = dflWire(1, newDflClient(false, false, 15, 15).compress(t, dflJSON(1)), true, nil)
		reply = "\xc1" // a compressed text message
	}
	ping := clientFrame(true, 0x9, []byte("ka"))
	return [][]byte{[]byte(req), ping, frame}, []string{" 101 ", "\x8a\x02ka", reply}
}

// bareClients opens connections from bare sockets, which put nothing on
// the test's heap, and returns their descriptors; they are closed when the
// test ends, if not before.
func bareClients(t *testing.T, addr, offer string) func(n int) []int {
	out, want := idleExchange(t, addr, offer)
	tcpAddr, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	// exchange writes b and reads until w has arrived, retrying the system
	// calls the runtime's signals interrupt.
	exchange := func(fd int, b []byte, w string) {
		t.Helper()
		for len(b) > 0 {
			n, err := syscall.Write(fd, b)
			if err != nil && err != syscall.EINTR {
				t.Fatal(err)
			}
			b = b[max(n, 0):]
		}
		got := 0
		for !bytes.Contains(buf[:got], []byte(w)) {
			n, err := syscall.Read(fd, buf[got:])
			switch {
			case err == syscall.EINTR:
			case err != nil || n == 0:
				t.Fatalf("got %q, %v; want %q", buf[:got], err, w)
			default:
				got += n
			}
		}
	}
	var fds []int
	t.Cleanup(func() {
		for _, fd := range fds {
			syscall.Close(fd)
		}
	})
	return func(n int) []int {
		fds = slices.Grow(fds, n) // before measuring
		for range n {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			fds = append(fds, fd)
			tv := syscall.Timeval{Sec: 10}
			syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
			if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: tcpAddr.Port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			for i := range out {
				exchange(fd, out[i], want[i])
			}
		}
		return fds[len(fds)-n:]
	}
}

// tlsClients opens TLS connections from a process of their own (this test
// binary, running TestIdleTLSClientsHelper), so that the clients' memory
// is not the test's: each line written to it opens that many more.
func tlsClients(t *testing.T, addr string) func(n int) {
	stdin, stdout := startChild(t, "TestIdleTLSClientsHelper", "WEBSOCKET_TLS_CLIENTS="+addr)
	return func(n int) {
		t.Helper()
		fmt.Fprintln(stdin, n)
		if line, err := stdout.ReadString('\n'); line != "opened\n" {
			t.Fatalf("TLS clients: %q, %v", line, err)
		}
	}
}

// TestIdleTLSClientsHelper is the process of tlsClients' connections.
func TestIdleTLSClientsHelper(t *testing.T) {
	addr := os.Getenv("WEBSOCKET_TLS_CLIENTS")
	if addr == "" {
		t.Skip("the clients of TestIdleConnectionMemory's TLS case, run by it")
	}
	out, want := idleExchange(t, addr, "")
	var conns []*tls.Conn
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		for range n {
			conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4096)
			for i := range out {
				if _, err := conn.Write(out[i]); err != nil {
					t.Fatal(err)
				}
				for got := 0; !bytes.Contains(buf[:got], []byte(want[i])); {
					n, err := conn.Read(buf[got:])
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			}
			conn.SetDeadline(time.Time{})
			conns = append(conns, conn)
		}
		fmt.Println("opened")
	}
	for _, c := range conns {
		c.Close()
	}
}
