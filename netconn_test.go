package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// netConnCase is how the two ends of a NetConn pair are connected.
type netConnCase struct {
	name     string
	dialect  Dialect
	compress bool
	pipe     bool // through Pipe, in memory, instead of a socket
	http2    bool // a stream of an HTTP/2 connection (RFC 8441)
}

var netConnCases = []netConnCase{
	{name: "RFC 6455", dialect: RFC6455},
	{name: "hybi-08", dialect: Hybi08},
	{name: "hybi-07", dialect: Hybi07},
	{name: "RFC 6455 deflate", dialect: RFC6455, compress: true},
	{name: "Pipe", dialect: RFC6455, pipe: true},
	{name: "HTTP/2", dialect: RFC6455, http2: true},
}

// netConnPair connects a client and a server and returns their NetConns
// (of type typ), the client's first. The server's Serve lasts until its
// Conn closes.
func netConnPair(t testing.TB, tc netConnCase, typ MessageType) (client, server net.Conn) {
	t.Helper()
	servers := make(chan net.Conn, 1)
	h := &Handler{Serve: func(c *Conn) {
		servers <- NetConn(c, typ)
		<-c.Context().Done()
	}}
	opts := &DialOptions{Dialect: tc.dialect}
	if tc.compress {
		h.Compression = &CompressionOptions{ContextTakeover: true}
		opts.Compression = &CompressionOptions{ContextTakeover: true}
	}
	var c *Conn
	switch {
	case tc.pipe:
		var err error
		if c, err = Pipe(h, opts); err != nil {
			t.Fatal(err)
		}
	case tc.http2:
		_, url, h2opts := h2Server(t, h)
		c = dialH2(t, url, h2opts)
	default:
		url, _ := testServer(t, h, false)
		c = dialTest(t, url, opts)
	}
	if tc.compress && c.Extensions() == "" {
		t.Fatal("permessage-deflate not agreed")
	}
	client = NetConn(c, typ)
	select {
	case server = <-servers:
	case <-time.After(5 * time.Second):
		t.Fatal("no server connection")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// streamOf is n bytes of a stream of seed, the same for the same seed.
func streamOf(seed uint64, n int64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

func sumOf(r io.Reader) [32]byte {
	h := sha256.New()
	io.Copy(h, r)
	return [32]byte(h.Sum(nil))
}

// TestNetConnCopyBothWays copies a stream each way at once, 64 MiB over
// RFC 6455 and less over the other cases, and checks every byte.
func TestNetConnCopyBothWays(t *testing.T) {
	for _, tc := range netConnCases {
		t.Run(tc.name, func(t *testing.T) {
			n := int64(8 << 20)
			if tc.name == "RFC 6455" {
				n = 64 << 20
			}
			client, server := netConnPair(t, tc, BinaryMessage)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i, nc := range []net.Conn{client, server} {
				wg.Add(2)
				go func() {
					defer wg.Done()
					if _, err := io.Copy(nc, streamOf(uint64(i), n)); err != nil {
						errs <- fmt.Errorf("writing: %w", err)
					}
				}()
				go func() {
					defer wg.Done()
					got := sumOf(io.LimitReader(nc, n))
					if got != sumOf(streamOf(uint64(1-i), n)) {
						errs <- fmt.Errorf("end %d read other bytes than sent", i)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

// chanListener is a net.Listener of the NetConns a Handler's Serve hands it.
type chanListener struct {
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error   { l.closed.Do(func() { close(l.done) }); return nil }
func (l *chanListener) Addr() net.Addr { return pipeAddr{} }

// TestNetConnHTTP2 serves HTTP/2 over cleartext (h2c, prior knowledge)
// through NetConns: the http.Server accepts them from a Handler, the
// client's http.Transport dials them; concurrent requests are multiplexed
// on the WebSockets, bodies echoed byte for byte.
func TestNetConnHTTP2(t *testing.T) {
	for _, tc := range netConnCases {
		t.Run(tc.name, func(t *testing.T) {
			l := &chanListener{conns: make(chan net.Conn), done: make(chan struct{})}
			h := &Handler{Serve: func(c *Conn) {
				select {
				case l.conns <- NetConn(c, BinaryMessage):
					<-c.Context().Done()
				case <-l.done:
				}
			}}
			opts := &DialOptions{Dialect: tc.dialect}
			if tc.compress {
				h.Compression = &CompressionOptions{}
				opts.Compression = &CompressionOptions{}
			}
			var h2 http.Protocols
			h2.SetUnencryptedHTTP2(true)
			srv := &http.Server{Protocols: &h2, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Proto", r.Proto)
				io.Copy(w, r.Body)
			})}
			go srv.Serve(l)
			defer srv.Close()
			defer l.Close()

			var url string
			if !tc.pipe {
				url, _ = testServer(t, h, false)
			}
			var dials sync.WaitGroup
			tr := &http.Transport{Protocols: &h2, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				dials.Add(1)
				defer dials.Done()
				if tc.pipe {
					c, err := Pipe(h, opts)
					if err != nil {
						return nil, err
					}
					return NetConn(c, BinaryMessage), nil
				}
				c, _, err := Dial(ctx, url, opts)
				if err != nil {
					return nil, err
				}
				return NetConn(c, BinaryMessage), nil
			}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

			// The first request dials; those after it share its connection.
			var wg sync.WaitGroup
			for i := range 9 {
				wg.Add(1)
				post := func() {
					defer wg.Done()
					body := bytes.Repeat([]byte{byte('a' + i)}, 1<<i*1000)
					resp, err := client.Post("http://h2c.test/echo", "application/octet-stream", bytes.NewReader(body))
					if err != nil {
						t.Error(err)
						return
					}
					defer resp.Body.Close()
					got, err := io.ReadAll(resp.Body)
					switch {
					case err != nil:
						t.Error(err)
					case resp.ProtoMajor != 2 || resp.Header.Get("X-Proto") != "HTTP/2.0":
						t.Errorf("request %d went over %s, served as %s", i, resp.Proto, resp.Header.Get("X-Proto"))
					case !bytes.Equal(got, body):
						t.Errorf("request %d: %d bytes echoed of %d", i, len(got), len(body))
					}
				}
				if i == 0 {
					post()
				} else {
					go post()
				}
			}
			wg.Wait()
			dials.Wait()
			// Usually one; the Transport may dial another while the
			// first is busy.
			if n := h.Stats().Accepted; n > 4 {
				t.Errorf("%d WebSockets for 9 requests: HTTP/2 multiplexes", n)
			}
		})
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) && errors.As(err, &ne) && ne.Timeout()
}

// TestNetConnDeadlines: a Read that times out leaves the stream intact;
// so does a past deadline set while a Read waits (net/http's way of
// ending a Read); a past write deadline fails a Write before it starts;
// a Write that the peer's not reading blocks times out.
func TestNetConnDeadlines(t *testing.T) {
	client, server := netConnPair(t, netConnCases[0], BinaryMessage)
	buf := make([]byte, 64)

	client.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if n, err := client.Read(buf); n != 0 || !isTimeoutErr(err) {
		t.Fatalf("Read past its deadline: %d, %v", n, err)
	}
	if waited := time.Since(start); waited < 40*time.Millisecond {
		t.Fatalf("the Read returned after %v, before its deadline", waited)
	}
	server.Write([]byte("after the timeout"))
	client.SetReadDeadline(time.Time{})
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "after the timeout" {
		t.Fatalf("Read after a timeout: %q, %v", buf[:n], err)
	}

	got := make(chan error, 1)
	go func() {
		_, err := client.Read(buf)
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	client.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-got:
		if !isTimeoutErr(err) {
			t.Fatalf("a waiting Read ended by a past deadline: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a past deadline did not end the waiting Read")
	}
	client.SetReadDeadline(time.Time{})
	server.Write([]byte("still there"))
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "still there" {
		t.Fatalf("Read after an aborted Read: %q, %v", buf[:n], err)
	}

	server.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := server.Write([]byte("late")); n != 0 || !isTimeoutErr(err) {
		t.Fatalf("Write past its deadline: %d, %v", n, err)
	}
	server.SetWriteDeadline(time.Time{})
	if _, err := server.Write([]byte("on time")); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "on time" {
		t.Fatalf("Read after a refused Write: %q, %v", buf[:n], err)
	}

	// The client stops reading: the server's writes fill the sockets,
	// then block until the deadline.
	server.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	chunk := make([]byte, 1<<20)
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = server.Write(chunk)
	}
	if !isTimeoutErr(err) {
		t.Fatalf("a blocked Write ended with %v, want a timeout", err)
	}
}

// TestNetConnClose: what was written before a Close is read, then io.EOF;
// a Read waiting when the peer closes gets io.EOF; writing to a closed
// peer fails; a close with another code reads as that *CloseError; after
// Close, Read and Write return net.ErrClosed; no goroutine is left.
func TestNetConnClose(t *testing.T) {
	base := runtime.NumGoroutine()
	t.Cleanup(func() { waitGoroutines(t, "every NetConn closed", base) }) // after the servers' cleanups
	for _, tc := range netConnCases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := netConnPair(t, tc, BinaryMessage)
			sent := make(chan error, 1)
			go func() {
				_, err := io.Copy(client, streamOf(7, 1<<20))
				sent <- errors.Join(err, client.Close())
			}()
			if got := sumOf(server); got != sumOf(streamOf(7, 1<<20)) {
				t.Fatal("the bytes before the close differ")
			}
			if err := <-sent; err != nil {
				t.Fatalf("client's copy and Close: %v", err)
			}
			if n, err := server.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("Read after the peer's close: %d, %v", n, err)
			}
			if _, err := server.Write([]byte("to a closed peer")); err == nil {
				t.Fatal("Write to a closed peer succeeded")
			}
			if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Write after Close: %v", err)
			}
			if _, err := client.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
			if err := client.Close(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("a second Close: %v", err)
			}
			server.Close()

			// The peer closes while a Read waits.
			client, server = netConnPair(t, tc, BinaryMessage)
			got := make(chan error, 1)
			go func() {
				_, err := client.Read(make([]byte, 1))
				got <- err
			}()
			time.Sleep(20 * time.Millisecond)
			server.Close()
			if err := <-got; err != io.EOF {
				t.Fatalf("a waiting Read when the peer closed: %v", err)
			}
		})
	}

	// A peer that only writes answers the close at once, not after
	// CloseTimeout: its NetConn reads from the start.
	client, server := netConnPair(t, netConnCases[0], BinaryMessage)
	server.Write([]byte("unread"))
	start := time.Now()
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= DefaultCloseTimeout {
		t.Fatalf("Close took %v: the peer that only writes did not answer", took)
	}

	// A close with a code other than 1000 or 1001.
	servers := make(chan *Conn, 1)
	url, _ := testServer(t, &Handler{Serve: func(c *Conn) { servers <- c; c.ReadMessage() }}, false)
	nc := NetConn(dialTest(t, url, nil), BinaryMessage)
	go (<-servers).Close(4000, "done with you")
	if _, err := nc.Read(make([]byte, 1)); CloseStatus(err) != 4000 {
		t.Fatalf("Read after a close with 4000: %v", err)
	}
	nc.Close()
}

// TestNetConnLargeMessage: a peer may send a stream in messages of any
// size (coder's NetConn sends each Write whole): a NetConn reads them
// whatever its Conn's read limit was.
func TestNetConnLargeMessage(t *testing.T) {
	servers := make(chan *Conn, 1)
	url, _ := testServer(t, &Handler{ReadLimit: 1 << 10, Serve: func(c *Conn) {
		servers <- c
		<-c.Context().Done()
	}}, false)
	client := dialTest(t, url, nil)
	defer client.CloseNow()
	server := NetConn(<-servers, BinaryMessage)
	defer server.Close()
	go client.WriteMessage(BinaryMessage, binaryPattern(4<<20))
	got, err := io.ReadAll(io.LimitReader(server, 4<<20))
	if err != nil || !bytes.Equal(got, binaryPattern(4<<20)) {
		t.Fatalf("a 4 MiB message read as %d bytes, %v", len(got), err)
	}
}

// TestNetConnHixie: a hixie connection carries text only: a text NetConn
// carries a text protocol both ways; a binary one refuses Writes.
func TestNetConnHixie(t *testing.T) {
	for _, d := range []Dialect{Hixie76, Hixie75} {
		t.Run(d.String(), func(t *testing.T) {
			client, server := netConnPair(t, netConnCase{dialect: d}, TextMessage)
			go func() {
				r := bufio.NewScanner(server)
				for r.Scan() {
					fmt.Fprintf(server, "%s!\n", strings.ToUpper(r.Text()))
				}
			}()
			r := bufio.NewReader(client)
			for _, line := range []string{"hello", "κόσμε", strings.Repeat("long ", 5000)} {
				fmt.Fprintf(client, "%s\n", line)
				got, err := r.ReadString('\n')
				if err != nil || got != strings.ToUpper(line)+"!\n" {
					t.Fatalf("%q answered with %.40q, %v", line, got, err)
				}
			}
			bin := NetConn(dialTest(t, mustServerURL(t), &DialOptions{Dialect: d}), BinaryMessage)
			defer bin.Close()
			if _, err := bin.Write([]byte{0xFF}); !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("a binary Write over %s: %v", d, err)
			}
		})
	}
}

// mustServerURL is the URL of a server that reads until its peer closes.
func mustServerURL(t *testing.T) string {
	url, _ := testServer(t, &Handler{Serve: func(c *Conn) { c.ReadMessage() }}, false)
	return url
}

// BenchmarkNetConnCopy streams 64 KiB Writes through a NetConn pair over
// loopback, one way (the client's masked, or the server's), read in 64 KiB
// Reads; BenchmarkTCPCopy does the same over a bare TCP connection, the
// ceiling. Compare their MB/s from one run:
//
//	go test -run '^$' -bench '^Benchmark(NetConn|TCP)Copy$' -count 5 .
func BenchmarkNetConnCopy(b *testing.B) {
	b.Run("client to server", func(b *testing.B) {
		client, server := netConnPair(b, netConnCases[0], BinaryMessage)
		benchmarkCopy(b, client, server)
	})
	b.Run("server to client", func(b *testing.B) {
		client, server := netConnPair(b, netConnCases[0], BinaryMessage)
		benchmarkCopy(b, server, client)
	})
}

func BenchmarkTCPCopy(b *testing.B) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server := <-accepted
	defer client.Close()
	defer server.Close()
	benchmarkCopy(b, client, server)
}

// benchmarkCopy writes b.N times 64 KiB to w and reads them from r.
func benchmarkCopy(b *testing.B, w, r net.Conn) {
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(buf)))
	total := int64(b.N) * int64(len(buf))
	done := make(chan error, 1)
	go func() {
		in := make([]byte, len(buf))
		for read := int64(0); read < total; {
			n, err := r.Read(in)
			read += int64(n)
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
