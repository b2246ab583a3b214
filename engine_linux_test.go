package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hybi/websocket/internal/poll"
)

// engineStart starts the engine's pollers, whose goroutines then count in
// the tests' base of goroutines.
func engineStart() { poll.Pick() }

// A callback that panics fails its own connection with 1011, and only
// it: another connection is served meanwhile and after.
func TestEnginePanicCallback(t *testing.T) {
	engineStart()
	h := &Handler{Events: &Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) {
		if string(msg) == "boom" {
			panic("boom")
		}
		c.WriteMessage(typ, msg)
	}}, Logger: slog.New(slog.DiscardHandler), CloseTimeout: 200 * time.Millisecond}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	good := dialDialect(t, srv, RFC6455, "/")
	bad := dialDialect(t, srv, RFC6455, "/")
	checkEcho(t, good, RFC6455, "before")
	bad.writeText(RFC6455, "boom")
	if code := bad.expectClose(); code != StatusInternalError {
		t.Fatalf("close %v after the panic, want 1011", code)
	}
	checkEcho(t, good, RFC6455, "after")
	engineWaitClosed(t, h, func(s Stats) bool { return s.Closed.Panic == 1 })
}

// A peer that stops reading blocks only the callbacks writing to it: the
// others are served meanwhile, and the silent peer is dropped once
// WriteTimeout passes with its socket full.
func TestEngineSlowPeer(t *testing.T) {
	engineStart()
	const writeTimeout = 500 * time.Millisecond
	big := bytes.Repeat([]byte("b"), 256<<10)
	h := &Handler{WriteTimeout: writeTimeout, Events: &Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) {
		if string(msg) == "flood me" {
			for c.WriteMessage(BinaryMessage, big) == nil {
			}
			return
		}
		c.WriteMessage(typ, msg)
	}}}
	srv := hosStart(t, h, hosSmallBuffers, false)
	silent := dialDialect(t, srv, RFC6455, "/")
	silent.conn.(*net.TCPConn).SetReadBuffer(8 << 10)
	silent.writeText(RFC6455, "flood me")
	time.Sleep(50 * time.Millisecond) // the flood's writer is blocked now
	for i := range 20 {
		c := dialDialect(t, srv, RFC6455, "/")
		start := time.Now()
		checkEcho(t, c, RFC6455, fmt.Sprint("served meanwhile ", i))
		if d := time.Since(start); d > writeTimeout/2 {
			t.Fatalf("an echo took %v while a peer did not read", d)
		}
	}
	engineWaitClosed(t, h, func(s Stats) bool { return s.Closed.WriteTimeout == 1 })
}

// queuedBytes is what c's engine socket holds in its write queue.
func queuedBytes(c *Conn) int {
	sl := c.br.conn.(*engineSocket).slow.Load()
	if sl == nil {
		return 0
	}
	sl.out.mu.Lock()
	defer sl.out.mu.Unlock()
	return sl.out.pending()
}

// A callback's writes to a peer that is not reading do not wait: what the
// socket cannot take is queued, up to maxQueuedBytes, and sent in order
// once the peer reads, with the close written after it behind it. Past
// the bound, a writer waits for the queue to drain.
func TestEngineWriteQueue(t *testing.T) {
	engineStart()
	type result struct{ queued, beyond, total int }
	done := make(chan result, 1)
	msg := bytes.Repeat([]byte("q"), 1000)
	h := &Handler{CloseTimeout: 200 * time.Millisecond, Events: &Events{OnMessage: func(c *Conn, typ MessageType, m []byte) {
		var r result
		write := func() bool {
			binary.BigEndian.PutUint32(msg, uint32(r.total))
			r.total++
			return c.WriteMessage(BinaryMessage, msg) == nil
		}
		// Until the socket is full and a frame queued, then 30 KiB more:
		// none of these waits.
		for queuedBytes(c) == 0 && write() {
		}
		for range 30 {
			write()
		}
		r.queued = queuedBytes(c)
		if string(m) == "past the bound" {
			for range 2 * maxQueuedBytes / len(msg) { // waits for the peer to read
				write()
			}
			r.beyond = 2 * maxQueuedBytes / len(msg)
		}
		done <- r
		c.Close(StatusNormalClosure, "done")
	}}}
	srv := hosStart(t, h, hosSmallBuffers, false)
	for _, ask := range []string{"within the bound", "past the bound"} {
		c := dialDialect(t, srv, RFC6455, "/")
		c.writeText(RFC6455, ask)
		var r result
		if ask == "within the bound" {
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the callback's writes wait for a peer that does not read")
			}
			if r.queued < 30*len(msg) || r.queued > maxQueuedBytes {
				t.Errorf("%d bytes queued after 30 messages more than the socket took", r.queued)
			}
		} else {
			time.Sleep(100 * time.Millisecond)
			select {
			case r = <-done:
				t.Fatalf("%d messages written past a full socket and a full queue without waiting", r.total)
			default:
			}
		}
		for i := 0; ; i++ {
			f, err := c.tryReadFrame()
			if err != nil {
				t.Fatalf("%s: frame %d: %v", ask, i, err)
			}
			if f.op == 8 {
				if ask == "past the bound" {
					r = <-done // the writer went on once the peer read
				}
				if code := binary.BigEndian.Uint16(f.payload); code != uint16(StatusNormalClosure) || i != r.total {
					t.Errorf("close %d after %d messages, want 1000 after %d", code, i, r.total)
				}
				break
			}
			if got := binary.BigEndian.Uint32(f.payload); f.op != 2 || got != uint32(i) || len(f.payload) != len(msg) {
				t.Fatalf("frame %d: op %d, message %d of %d bytes", i, f.op, got, len(f.payload))
			}
		}
		c.expectEOF()
	}
	engineWaitClosed(t, h, func(s Stats) bool { return s.Active == 0 })
}

// A slow callback (here, one that sleeps) holds up only its connection:
// the poller running it is handed to another goroutine.
func TestEngineSlowCallback(t *testing.T) {
	engineStart()
	release := make(chan struct{})
	h := &Handler{Events: &Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) {
		if string(msg) == "slow" {
			<-release
		}
		c.WriteMessage(typ, msg)
	}}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var slow []*rawClient
	for range 2 * runtime.GOMAXPROCS(0) { // every poller has a slow callback
		c := dialDialect(t, srv, RFC6455, "/")
		c.writeText(RFC6455, "slow")
		slow = append(slow, c)
	}
	time.Sleep(20 * time.Millisecond)
	for i := range 10 {
		c := dialDialect(t, srv, RFC6455, "/")
		start := time.Now()
		checkEcho(t, c, RFC6455, fmt.Sprint("not held up ", i))
		if d := time.Since(start); d > time.Second {
			t.Fatalf("an echo took %v beside slow callbacks", d)
		}
	}
	close(release)
	for _, c := range slow {
		if _, msg := c.readMessage(RFC6455); string(msg) != "slow" {
			t.Fatalf("the slow callback's echo: %q", msg)
		}
	}
}

// A message orders what its sender did before writing it before what
// OnMessage does with it, for the race detector too, as a read on a
// connection's goroutine does: the engine's raw reads keep the detector's
// annotations of a read system call (go test -race; without it, this
// only checks that each note is seen).
func TestEngineReadOrdersMemory(t *testing.T) {
	engineStart()
	notes := make([]string, 20) // each written by the client before its message, read by OnMessage
	h := &Handler{Events: &Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) {
		i, _ := strconv.Atoi(string(msg))
		c.WriteMessage(typ, []byte(notes[i]))
	}}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := dialDialect(t, srv, RFC6455, "/")
	for i := range notes {
		notes[i] = fmt.Sprint("note ", i)
		c.writeText(RFC6455, strconv.Itoa(i))
		if _, got := c.readMessage(RFC6455); string(got) != notes[i] {
			t.Fatalf("message %d: OnMessage saw %q, want %q", i, got, notes[i])
		}
	}
}

// A peer that sends its handshake, a message and its hang-up at once may
// have its connection run through to its end by a poller as soon as it
// is registered: it is registered only once the Handler tracks it, so
// that its end is counted and it is forgotten (Stats().Active back to 0).
func TestEngineLastWordsWithHandshake(t *testing.T) {
	engineStart()
	const conns = 200
	var messages, closes atomic.Int64
	h := &Handler{Events: &Events{
		OnMessage: func(c *Conn, typ MessageType, msg []byte) { messages.Add(1) },
		OnClose:   func(c *Conn, err error) { closes.Add(1) },
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	wire := append([]byte(handshakeRequest(RFC6455, addr, "/")), clientFrame(true, 1, []byte("last words"))...)
	for range conns {
		c := dialRaw(t, srv)
		c.write(wire)
		c.conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for closes.Load() < conns || h.Stats().Active != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections closed, Stats().Active %d, want 0", closes.Load(), conns, h.Stats().Active)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s := h.Stats(); s.Accepted != conns || s.Engine != 0 {
		t.Errorf("stats %+v: want %d accepted, none on the engine", s, conns)
	}
	if n := messages.Load(); n != conns {
		t.Errorf("OnMessage ran %d times, want %d", n, conns)
	}
}

// An engine connection's addresses are the client's, over IPv4 and IPv6,
// and its RemoteAddr outlives the socket (OnClose logs it).
func TestEngineAddresses(t *testing.T) {
	engineStart()
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			host := map[string]string{"tcp4": "127.0.0.1", "tcp6": "[::1]"}[network]
			ln, err := net.Listen(network, host+":0")
			if err != nil {
				t.Skipf("no %s loopback here: %v", network, err)
			}
			seen := make(chan string, 2)
			h := &Handler{Events: &Events{
				OnOpen:  func(c *Conn) { seen <- c.RemoteAddr().String() + " " + c.LocalAddr().String() },
				OnClose: func(c *Conn, err error) { seen <- c.RemoteAddr().String() },
			}}
			go Serve(ln, h)
			t.Cleanup(func() { ln.Close() })
			c := dialRaw(t, &httptest.Server{Listener: ln})
			c.write([]byte(handshakeRequest(RFC6455, ln.Addr().String(), "/")))
			if status, _, raw := c.readResponse(); !strings.Contains(status, " 101 ") {
				t.Fatalf("handshake: %q", raw)
			}
			if got, want := <-seen, c.conn.LocalAddr().String()+" "+c.conn.RemoteAddr().String(); got != want {
				t.Errorf("RemoteAddr and LocalAddr %q, want %q", got, want)
			}
			c.conn.Close()
			if got, want := <-seen, c.conn.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr in OnClose %q, want %q", got, want)
			}
		})
	}
}

// A connection reset in the middle of a frame ends the connection as a
// drop (OnClose with the error), keeping nothing: no goroutine, no
// connection tracked.
func TestEngineResetMidFrame(t *testing.T) {
	engineStart()
	closed := make(chan error, 1)
	h := &Handler{Events: &Events{
		OnMessage: echoEvents.OnMessage,
		OnClose:   func(c *Conn, err error) { closed <- err },
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	base := runtime.NumGoroutine()
	c := dialDialect(t, srv, RFC6455, "/")
	checkEcho(t, c, RFC6455, "whole")
	frame := clientFrame(true, 1, bytes.Repeat([]byte("x"), 1000))
	c.write(frame[:500])
	time.Sleep(20 * time.Millisecond) // the server holds the first half
	c.conn.(*net.TCPConn).SetLinger(0)
	c.conn.Close() // a reset
	select {
	case err := <-closed:
		if err == nil {
			t.Fatal("OnClose without an error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnClose was not called")
	}
	engineWaitClosed(t, h, func(s Stats) bool { return s.Closed.Dropped == 1 })
	hosWaitGoroutines(t, base)
}

// Shutdown closes thousands of idle connections on the engine with 1001,
// each answered by its client, and returns once every one has closed.
func TestEngineShutdown(t *testing.T) {
	engineStart()
	n := 2000
	if raceEnabled == 1 {
		n = 500
	}
	soakRaiseFileLimit(t, uint64(2*n+100))
	h := &Handler{Events: &Events{OnOpen: func(c *Conn) { c.ReleaseRequest() }}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	clients := make([]*rawClient, n)
	for i := range clients {
		clients[i] = dialDialect(t, srv, RFC6455, "/")
	}
	// A client has its answer a moment before its connection joins the engine.
	engineWaitClosed(t, h, func(s Stats) bool { return s.Engine == n })
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, c := range clients {
		wg.Go(func() {
			c.conn.SetDeadline(time.Now().Add(20 * time.Second))
			f, err := c.tryReadFrame()
			if err != nil || f.op != 8 || binary.BigEndian.Uint16(f.payload) != uint16(StatusGoingAway) {
				errs <- fmt.Errorf("expected a close 1001, got %+v, %v", f, err)
				return
			}
			c.write(clientFrame(true, 8, f.payload[:2]))
			if _, err := io.Copy(io.Discard, c.br); err != nil {
				errs <- err
			}
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := h.Stats(); s.Active != 0 || s.Engine != 0 || s.Closed.Shutdown != uint64(n) {
		t.Fatalf("after Shutdown: %+v", s)
	}
}

// A Group broadcasts to members on the engine as to any other: its
// shared writers write to their sockets, which the engine's pollers own.
func TestEngineGroup(t *testing.T) {
	engineStart()
	var g Group
	h := &Handler{Events: &Events{
		OnOpen: func(c *Conn) { g.Add(c) },
		OnMessage: func(c *Conn, typ MessageType, msg []byte) {
			g.Broadcast(typ, msg)
		},
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	var members []*rawClient
	for _, d := range allDialects {
		members = append(members, dialDialect(t, srv, d, "/"))
	}
	engineWaitClosed(t, h, func(Stats) bool { return g.Len() == len(members) })
	members[0].writeText(Hixie75, "to all")
	for i, c := range members {
		if _, msg := c.readMessage(allDialects[i]); string(msg) != "to all" {
			t.Fatalf("%s member got %q", allDialects[i], msg)
		}
	}
}

// engineWaitClosed waits until h's stats satisfy ok (that connections
// closed, usually).
func engineWaitClosed(t *testing.T, h *Handler, ok func(Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(h.Stats()); {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", h.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// 15 000 idle connections on the engine, after a ping and a message each
// way, their handshakes served by net/http's server and by Serve: no
// goroutine of theirs, a little heap each; once they are closed,
// goroutines and heap are back to their base. The clients live in a child
// process (TestEngineIdleClientsHelper), which holds the other 15 000
// descriptors. The RSS logged is measured once freed memory is returned,
// and also before (as bench/ reads it): Serve's handshakes leave less
// garbage, and the heap grows less for it.
func TestEngineIdleConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("15 000 connections: skipped in -short mode")
	}
	t.Run("http.Server", func(t *testing.T) {
		engineIdleConnections(t, func(ln net.Listener, h *Handler) func() {
			srv := &http.Server{Handler: h}
			go srv.Serve(ln)
			return func() { srv.Close() }
		})
	})
	t.Run("Serve", func(t *testing.T) {
		engineIdleConnections(t, func(ln net.Listener, h *Handler) func() {
			go Serve(ln, h)
			return func() { ln.Close() }
		})
	})
}

func engineIdleConnections(t *testing.T, serve func(net.Listener, *Handler) (stop func())) {
	n := 15000
	if raceEnabled == 1 {
		n = 5000
	}
	soakRaiseFileLimit(t, uint64(n+1000))
	engineStart()
	h := &Handler{Events: &Events{
		OnOpen:    func(c *Conn) { c.ReleaseRequest() },
		OnMessage: echoEvents.OnMessage,
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer serve(ln, h)()
	clients := engineClients(t, ln.Addr().String())
	clients("open 1") // warms the server's pools
	var before, after, end runtime.MemStats
	g0, rss0 := engineSettle(&before)
	clients("open " + strconv.Itoa(n))
	time.Sleep(500 * time.Millisecond) // as bench/ waits
	grown := procStatus("VmRSS")
	g1, rss1 := engineSettle(&after)
	if s := h.Stats(); s.Active != n+1 || s.Engine != n+1 {
		t.Fatalf("stats %+v, want %d connections on the engine", s, n+1)
	}
	heap := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n)
	rss := float64(rss1-rss0) / float64(n)
	t.Logf("per idle connection on the engine (%d): %d goroutines added in all, %.0f B of heap, %.0f B of RSS (%.0f B before freed memory was returned)",
		n, g1-g0, heap, rss, float64(grown-rss0)/float64(n))
	if g1-g0 > 4 {
		t.Errorf("%d goroutines more for %d idle connections", g1-g0, n)
	}
	if maxHeap := 640; heap > float64(maxHeap) { // a Conn (320 B) and a socket (128 B), with or without -race
		t.Errorf("%.0f B of heap per idle connection, want at most %d", heap, maxHeap)
	}
	clients("close")
	engineWaitClosed(t, h, func(s Stats) bool { return s.Active == 0 && s.Engine == 0 })
	g2, _ := engineSettle(&end)
	if g2 > g0+1 {
		t.Errorf("%d goroutines once closed, %d before", g2, g0)
	}
	if left := int64(end.HeapAlloc) - int64(before.HeapAlloc); left > int64(n)*64 {
		t.Errorf("%d B of heap left once the connections closed", left)
	}
}

// engineSettle settles the server (settle) and returns its goroutines and
// RSS, with the handshakes' garbage, which the heap would reuse, given back.
func engineSettle(ms *runtime.MemStats) (int, int64) {
	g := settle(ms)
	debug.FreeOSMemory()
	return g, procStatus("VmRSS")
}

// engineClients starts TestEngineIdleClientsHelper, to which each command
// is a line: "open N" opens N more idle connections, "close" closes them.
func engineClients(t *testing.T, addr string) func(cmd string) {
	stdin, stdout := startChild(t, "TestEngineIdleClientsHelper", "WEBSOCKET_ENGINE_CLIENTS="+addr)
	return func(line string) {
		t.Helper()
		fmt.Fprintln(stdin, line)
		if got, err := stdout.ReadString('\n'); got != "done\n" {
			t.Fatalf("clients: %q after %q, %v", got, line, err)
		}
	}
}

// TestEngineIdleClientsHelper is the process of engineClients' connections:
// bare sockets, each after a handshake, a ping and a message echoed.
func TestEngineIdleClientsHelper(t *testing.T) {
	addr := os.Getenv("WEBSOCKET_ENGINE_CLIENTS")
	if addr == "" {
		t.Skip("the clients of TestEngineIdleConnections, run by it")
	}
	soakRaiseFileLimit(t, 20000)
	open := bareClients(t, addr, "")
	var fds []int
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch line := in.Text(); {
		case strings.HasPrefix(line, "open "):
			n, _ := strconv.Atoi(strings.TrimPrefix(line, "open "))
			fds = append(fds, open(n)...)
		case line == "close":
			for _, fd := range fds {
				syscall.Close(fd)
			}
			fds = nil
		}
		fmt.Println("done")
	}
}

// TestEngineShutdownDuringHandshakes: a Shutdown that begins while
// handshakes are in flight closes each connection that completes, on the
// engine as on a goroutine, and leaves nothing open (a connection tracked
// before it joined the engine once panicked the handshake's goroutine).
func TestEngineShutdownDuringHandshakes(t *testing.T) {
	engineStart()
	var panics sync.Map
	h := &Handler{Events: &Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) { c.WriteMessage(typ, msg) }},
		Logger: slog.New(slog.DiscardHandler)}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		panics.Store(string(p), true)
		return len(p), nil
	}), "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := 0; i < 300; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, _, err := Dial(ctx, url, nil)
				cancel()
				if err != nil {
					continue // refused (503) once Shutdown began
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				c.WriteText("x") // echoed, unless Shutdown's close comes first
				c.ReadMessage()
				c.Close(StatusNormalClosure, "")
			}
		})
	}
	engineWaitClosed(t, h, func(s Stats) bool { return s.Accepted >= 100 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if s := h.Stats(); s.Active != 0 || s.Engine != 0 {
		t.Fatalf("after Shutdown: %+v", s)
	}
	panics.Range(func(k, _ any) bool {
		t.Errorf("the server logged: %s", k)
		return true
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// A message trickling in over many reads, a fragment at a time with pings
// among its fragments and each fragment cut in three, is checked as it
// arrives and delivered whole; text that turns invalid before its message
// ends fails it at once (1007), as reading from the socket does; a hixie
// text frame trickles in the same way.
func TestEngineTrickle(t *testing.T) {
	engineStart()
	h := &Handler{Events: &echoEvents}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	trickle := func(c *rawClient, b []byte) {
		for i := 0; i < 3; i++ {
			c.write(b[i*len(b)/3 : (i+1)*len(b)/3])
			time.Sleep(time.Millisecond) // another read, most likely
		}
	}
	text := strings.Repeat("aé€😀", 4<<10) // a fragment's cuts fall inside characters
	c := dialDialect(t, srv, RFC6455, "/")
	const fragments, pings = 32, 4
	for i := range fragments {
		op := byte(0)
		if i == 0 {
			op = 1
		}
		part := text[i*len(text)/fragments : (i+1)*len(text)/fragments]
		trickle(c, clientFrame(i == fragments-1, op, []byte(part)))
		if i%(fragments/pings) == 0 {
			c.write(clientFrame(true, 9, []byte(fmt.Sprint("ping ", i))))
		}
	}
	for range pings {
		if f := c.readFrame(); f.op != 10 {
			t.Fatalf("opcode %d, want a pong", f.op)
		}
	}
	if op, msg := c.readMessage(RFC6455); op != 1 || string(msg) != text {
		t.Fatalf("echo: opcode %d, %d bytes, want the %d bytes of text", op, len(msg), len(text))
	}

	invalid := dialDialect(t, srv, RFC6455, "/")
	trickle(invalid, clientFrame(false, 1, []byte(text[:8<<10])))
	trickle(invalid, clientFrame(false, 0, append([]byte("valid so far"), 0xFF)))
	if code := invalid.expectClose(); code != StatusInvalidPayload {
		t.Fatalf("close %v for invalid text in an unfinished message, want 1007", code)
	}

	hixie := dialDialect(t, srv, Hixie76, "/")
	trickle(hixie, append(append([]byte{0x00}, text...), 0xFF))
	if _, msg := hixie.readMessage(Hixie76); string(msg) != text {
		t.Fatalf("hixie echo: %d bytes, want %d", len(msg), len(text))
	}
}

// BenchmarkEngineTrickle sends a 1 MiB message as 1024 fragments, from a
// client whose socket sends 4 KiB at a time, to an echo on the engine,
// which reads it in hundreds of pieces: the server checks each byte once
// and copies the message a bounded number of times, however many reads
// it takes.
func BenchmarkEngineTrickle(b *testing.B) {
	engineStart()
	srv := httptest.NewServer(&Handler{ReadLimit: 2 << 20, Events: &echoEvents})
	defer srv.Close()
	c := dialDialect(b, srv, RFC6455, "/")
	c.conn.(*net.TCPConn).SetWriteBuffer(4 << 10)
	c.conn.SetDeadline(time.Time{})
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	const fragments = 1024
	frames := make([][]byte, fragments)
	for i := range frames {
		op := byte(0)
		if i == 0 {
			op = 2
		}
		frames[i] = clientFrame(i == fragments-1, op, payload)
	}
	b.SetBytes(fragments * int64(len(payload)))
	for b.Loop() {
		for _, f := range frames {
			c.write(f)
		}
		if _, msg := c.readMessage(RFC6455); len(msg) != fragments*len(payload) {
			b.Fatalf("echo of %d bytes", len(msg))
		}
	}
}

// Random fragmented messages with pings among their fragments, sent in
// random cuts with pauses between some (so that they arrive over many
// reads): each mode answers every ping and echoes every message, in the
// order in which they end on the wire.
func TestEngineRandomFraming(t *testing.T) {
	engineStart()
	for _, tc := range []struct {
		name string
		h    *Handler
	}{
		{"goroutine", &Handler{Serve: echoMessages}},
		{"engine", &Handler{Events: &echoEvents}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			t.Cleanup(srv.Close)
			rng := rand.New(rand.NewPCG(1, 2))
			var wire []byte
			type reply struct {
				op      byte
				payload string
			}
			var want []reply
			for m := range 60 {
				op := byte(1 + m%2)
				var msg []byte
				for f, frags := 0, 1+rng.IntN(5); f < frags; f++ {
					part := bytes.Repeat([]byte{byte('a' + rng.IntN(26))}, rng.IntN(3000))
					msg = append(msg, part...)
					fop := op
					if f > 0 {
						fop = 0
					}
					wire = append(wire, clientFrame(f == frags-1, fop, part)...)
					if f < frags-1 && rng.IntN(2) == 0 {
						ping := fmt.Sprint("ping ", m, " ", f, strings.Repeat("!", rng.IntN(100)))
						wire = append(wire, clientFrame(true, 9, []byte(ping))...)
						want = append(want, reply{10, ping})
					}
				}
				want = append(want, reply{op, string(msg)})
			}
			c := dialDialect(t, srv, RFC6455, "/")
			c.conn.SetDeadline(time.Now().Add(20 * time.Second))
			go func() {
				for rest := wire; len(rest) > 0; {
					n := min(len(rest), 1+rng.IntN(700))
					if _, err := c.conn.Write(rest[:n]); err != nil {
						return
					}
					rest = rest[n:]
					if rng.IntN(8) == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			}()
			for i, w := range want {
				var got reply
				if w.op == 10 {
					f := c.readFrame()
					got = reply{f.op, string(f.payload)}
				} else {
					op, msg := c.readMessage(RFC6455)
					got = reply{op, string(msg)}
				}
				if got != w {
					t.Fatalf("reply %d: opcode %d, %d bytes %.20q, want opcode %d, %d bytes %.20q", i, got.op, len(got.payload), got.payload, w.op, len(w.payload), w.payload)
				}
			}
		})
	}
}

// A ping between the fragments of a message still arriving is answered
// at once, and a pong there reaches the pong handler at once, before the
// message's last fragment is sent, in both modes; the message then
// arrives whole and in order.
func TestEngineControlInsideMessage(t *testing.T) {
	engineStart()
	pongs := make(chan string, 4)
	onPong := func(c *Conn) { c.SetPongHandler(func(p []byte) { pongs <- string(p) }) }
	for _, tc := range []struct {
		name string
		h    *Handler
	}{
		{"goroutine", &Handler{Serve: func(c *Conn) { onPong(c); echoMessages(c) }}},
		{"engine", &Handler{Events: &Events{OnOpen: onPong, OnMessage: echoEvents.OnMessage}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.h)
			t.Cleanup(srv.Close)
			c := dialDialect(t, srv, RFC6455, "/")
			c.conn.SetDeadline(time.Now().Add(5 * time.Second))
			c.write(clientFrame(false, 1, []byte("first, ")))
			for i := range 3 {
				ping := fmt.Sprint("ping ", i)
				c.write(clientFrame(true, 9, []byte(ping)))
				if f := c.readFrame(); f.op != 10 || string(f.payload) != ping {
					t.Fatalf("opcode %d %q, want a pong %q before the message ends", f.op, f.payload, ping)
				}
				c.write(clientFrame(false, 0, []byte(fmt.Sprint(i, ", "))))
			}
			c.write(clientFrame(true, 10, []byte("pong")))
			select {
			case p := <-pongs:
				if p != "pong" {
					t.Fatalf("pong handler got %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the pong handler was not called before the message ended")
			}
			c.write(clientFrame(true, 0, []byte("last")))
			if op, msg := c.readMessage(RFC6455); op != 1 || string(msg) != "first, 0, 1, 2, last" {
				t.Fatalf("echo: opcode %d %q", op, msg)
			}
		})
	}
}
