package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proxies written by hand, for what the real ones (proxy_debian_test.go)
// cannot be made to do: stay silent, break off, answer garbage, send the
// server's first bytes behind their answer, give every SOCKS5 reply code.

// proxyEchoServer starts a TCP server on 127.0.0.1 that sends back what it
// reads, and returns its address.
func proxyEchoServer(t *testing.T) string {
	t.Helper()
	return proxyFake(t, func(c net.Conn) { io.Copy(c, c) }).addr
}

// fakeProxy is a listener on 127.0.0.1 whose connections are served by a
// test's function, each on a goroutine of its own.
type fakeProxy struct {
	addr string
	// ends receives, for each connection once its function has returned,
	// nil if the other end then closed it within 5 s (EOF or a reset),
	// or what was read instead.
	ends chan error
}

func proxyFake(t *testing.T, serve func(c net.Conn)) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeProxy{addr: ln.Addr().String(), ends: make(chan error, 16)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				serve(c)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(make([]byte, 1))
				switch {
				case n > 0:
					err = errors.New("the client sent more")
				case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
					err = nil
				}
				select {
				case f.ends <- err:
				default:
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return f
}

// closed checks that the client closed the connection to the proxy.
func (f *fakeProxy) closed(t *testing.T) {
	t.Helper()
	select {
	case err := <-f.ends:
		if err != nil {
			t.Errorf("the client did not close its connection to the proxy: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the proxy's connection is still being served")
	}
}

// checkTunnel sends bytes through conn to an echo server and reads them
// back: 256 KiB, both ways at once.
func checkTunnel(t *testing.T, conn net.Conn) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	sent := make([]byte, 256<<10)
	rand.Read(sent)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(sent)
		werr <- err
	}()
	got := make([]byte, len(sent))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading through the tunnel: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing through the tunnel: %v", err)
	}
	if !bytes.Equal(got, sent) {
		t.Fatal("the echo through the tunnel differs from what was sent")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testCtx ends after d, or with the test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestProxyDefaultPorts(t *testing.T) {
	errNoNet := errors.New("no network here")
	for _, tc := range []struct{ proxy, want string }{
		{"http://proxy.example", "proxy.example:80"},
		{"https://proxy.example", "proxy.example:443"},
		{"socks5://proxy.example", "proxy.example:1080"},
		{"socks5h://proxy.example", "proxy.example:1080"},
		{"http://user:secret@proxy.example:3128", "proxy.example:3128"},
		{"socks5h://[::1]", "[::1]:1080"},
	} {
		var dialled string
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialled = network + " " + addr
			return nil, errNoNet
		}
		_, err := dialProxy(context.Background(), mustURL(t, tc.proxy), "example.com:443", dial, nil)
		if dialled != "tcp "+tc.want {
			t.Errorf("%s: dialled %q, want tcp %s", tc.proxy, dialled, tc.want)
		}
		if !errors.Is(err, errNoNet) {
			t.Errorf("%s: error %v, want the dial's", tc.proxy, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", tc.proxy, err)
		}
	}
}

// TestProxyBadInput: a URL or address that cannot work is refused before
// any dial.
func TestProxyBadInput(t *testing.T) {
	for _, tc := range []struct {
		proxy *url.URL
		addr  string
	}{
		{nil, "example.com:80"},
		{mustURL(t, "ftp://proxy.example"), "example.com:80"},
		{mustURL(t, "socks4://proxy.example"), "example.com:80"},
		{mustURL(t, "http:///nohost"), "example.com:80"},
		{mustURL(t, "http://proxy.example"), "example.com"},
		{mustURL(t, "http://proxy.example"), ":80"},
		{mustURL(t, "http://proxy.example"), "example.com:http"},
		{mustURL(t, "http://proxy.example"), "example.com:65536"},
		{mustURL(t, "http://proxy.example"), "example.com\r\nX-Evil: 1:80"},
		{mustURL(t, "socks5h://proxy.example"), "a b:80"},
	} {
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			t.Errorf("%v to %q: dialled", tc.proxy, tc.addr)
			return nil, errors.New("dialled")
		}
		conn, err := dialProxy(context.Background(), tc.proxy, tc.addr, dial, nil)
		if err == nil || conn != nil {
			t.Errorf("%v to %q: got (%v, %v), want an error", tc.proxy, tc.addr, conn, err)
		}
	}
}

// TestProxyHTTPEarlyBytes: the CONNECT request is what RFC 9110 says, with
// the credentials, and bytes the proxy sent right behind its 200 (the
// start of the server's stream) are read first from the tunnel.
func TestProxyHTTPEarlyBytes(t *testing.T) {
	reqs := make(chan *http.Request, 1)
	f := proxyFake(t, func(c net.Conn) {
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			t.Errorf("reading CONNECT: %v", err)
			return
		}
		reqs <- r
		// The answer and the first bytes of the tunnel in one segment.
		c.Write([]byte("HTTP/1.1 200 Connection established\r\nVia: test\r\n\r\nearly bytes"))
		io.Copy(c, c)
	})
	conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://us%3Aer:p%40ss:w@"+f.addr), "example.com:8080", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := <-reqs
	if req.Method != "CONNECT" || req.RequestURI != "example.com:8080" || req.Host != "example.com:8080" {
		t.Errorf("request %s %s Host %s, want CONNECT example.com:8080 Host example.com:8080", req.Method, req.RequestURI, req.Host)
	}
	// "us:er" / "p@ss:w" (escaped in the URL), in base64.
	if got, want := req.Header.Get("Proxy-Authorization"), "Basic dXM6ZXI6cEBzczp3"; got != want {
		t.Errorf("Proxy-Authorization %q, want %q", got, want)
	}
	got := make([]byte, len("early bytes"))
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "early bytes" {
		t.Fatalf("first read %q, %v; want the early bytes", got, err)
	}
	checkTunnel(t, conn)
	conn.Close()
	f.closed(t)
}

// TestProxyHTTPNoAuth: without user info no Proxy-Authorization is sent,
// and a tunnel with nothing early is the bare TCP connection, which the
// Conn reads with raw socket I/O.
func TestProxyHTTPNoAuth(t *testing.T) {
	f := proxyFake(t, func(c net.Conn) {
		r, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			t.Errorf("reading CONNECT: %v", err)
			return
		}
		if v, ok := r.Header["Proxy-Authorization"]; ok {
			t.Errorf("Proxy-Authorization %q sent without credentials", v)
		}
		c.Write([]byte("HTTP/1.0 200 OK\r\n\r\n"))
		io.Copy(c, c)
	})
	conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://"+f.addr), "example.com:80", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conn.(*net.TCPConn); !ok {
		t.Errorf("tunnel is a %T, want the *net.TCPConn", conn)
	}
	checkTunnel(t, conn)
	conn.Close()
	f.closed(t)
}

// TestProxyHTTPRefused: a refusal is a *ProxyError with the status, the
// fields and the body's first bytes, even those sent a moment after the
// head, returned without waiting for the proxy to close a connection it
// holds open.
func TestProxyHTTPRefused(t *testing.T) {
	long := strings.Repeat("x", 2000)
	for _, tc := range []struct {
		name, answer string
		status       int
		body         string
	}{
		{"length", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 13\r\nX-Why: upstream\r\n\r\nno upstream\r\n", 502, "no upstream\r\n"},
		{"chunked", "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\nX-Why: rules\r\n\r\n6\r\nnot me\r\n0\r\n\r\n", 403, "not me"},
		{"401", "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nX-Why: creds\r\n\r\n", 401, ""},
		{"to EOF", "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\nX-Why: creds\r\n\r\n|who are you", 407, "who are you"},
		{"long", "HTTP/1.1 500 Oops\r\nContent-Length: 2000\r\nX-Why: long\r\n\r\n" + long, 500, long[:proxyBodyLimit]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := proxyFake(t, func(c net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					t.Errorf("reading CONNECT: %v", err)
					return
				}
				// The part after a | comes a little later; then the
				// connection stays open.
				head, later, _ := strings.Cut(tc.answer, "|")
				c.Write([]byte(head))
				time.Sleep(50 * time.Millisecond)
				c.Write([]byte(later))
			})
			start := time.Now()
			_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://"+f.addr), "example.com:80", nil, nil)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v: waited for the proxy to close", d)
			}
			var pe *ProxyError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ProxyError", err, err)
			}
			if pe.Status != tc.status || pe.Header.Get("X-Why") == "" || string(pe.Body) != tc.body {
				t.Errorf("got status %d, fields %v, body %q; want %d, X-Why, %q", pe.Status, pe.Header, pe.Body, tc.status, tc.body)
			}
			if got := errors.Is(err, ErrProxyAuth); got != (tc.status == 407 || tc.status == 401) {
				t.Errorf("errors.Is(%v, ErrProxyAuth) = %v", err, got)
			}
			if !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Errorf("error %q does not give the status", err)
			}
			f.closed(t)
		})
	}
}

// TestProxyHTTPBrokenAnswer: an answer cut short or not HTTP fails the
// dial, not as a refusal, and the connection is closed.
func TestProxyHTTPBrokenAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, answer string
		want         error
	}{
		{"closed mid-answer", "HTTP/1.1 200 Connection established\r\nProxy-Agent: fake\r\n", io.ErrUnexpectedEOF},
		{"garbage", "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n\r\n", nil},
		{"nothing", "", io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := proxyFake(t, func(c net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					t.Errorf("reading CONNECT: %v", err)
					return
				}
				c.Write([]byte(tc.answer))
				c.(*net.TCPConn).CloseWrite()
			})
			conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://"+f.addr), "example.com:80", nil, nil)
			if err == nil || conn != nil {
				t.Fatalf("got (%v, %v), want an error", conn, err)
			}
			var pe *ProxyError
			if errors.As(err, &pe) {
				t.Errorf("error %v is a refusal", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			f.closed(t)
		})
	}
}

// TestProxySilent: a proxy that accepts and never answers holds the dial
// until ctx ends, by its deadline or by a cancel, and no longer; the
// socket is closed and no goroutine is left.
func TestProxySilent(t *testing.T) {
	for _, scheme := range []string{"http", "socks5"} {
		for _, how := range []string{"deadline", "cancel"} {
			t.Run(scheme+" "+how, func(t *testing.T) {
				base := runtime.NumGoroutine()
				f := proxyFake(t, func(c net.Conn) {
					// Read the request and say nothing.
					c.Read(make([]byte, 512))
				})
				var ctx context.Context
				var cancel context.CancelFunc
				var want error
				if how == "deadline" {
					ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
					want = context.DeadlineExceeded
				} else {
					ctx, cancel = context.WithCancel(context.Background())
					time.AfterFunc(300*time.Millisecond, cancel)
					want = context.Canceled
				}
				defer cancel()
				start := time.Now()
				conn, err := dialProxy(ctx, mustURL(t, scheme+"://"+f.addr), "127.0.0.1:80", nil, nil)
				if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
					t.Errorf("returned after %v, want about 300ms", d)
				}
				if conn != nil || !errors.Is(err, want) {
					t.Fatalf("got (%v, %v), want %v", conn, err, want)
				}
				f.closed(t)
				// Only the fake's accept loop is left.
				waitGoroutines(t, "the dial failed", base+1)
			})
		}
	}
}

// TestProxyHTTPS: TLS to the proxy, verified with the client's roots under
// the proxy's name, then CONNECT inside it.
func TestProxyHTTPS(t *testing.T) {
	echo := proxyEchoServer(t)
	proxy := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect || r.Host != echo {
			http.Error(w, "CONNECT to the echo server only", http.StatusForbidden)
			return
		}
		target, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer target.Close()
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		brw.Flush()
		go func() {
			io.Copy(target, brw)
			target.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(c, target)
	}))
	t.Cleanup(proxy.Close)
	roots := x509.NewCertPool()
	roots.AddCert(proxy.Certificate())
	proxyURL := mustURL(t, proxy.URL)

	t.Run("tunnel", func(t *testing.T) {
		// The target's ALPN must not reach the proxy, which would refuse
		// to speak h2.
		cfg := &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}}
		conn, err := dialProxy(testCtx(t, 10*time.Second), proxyURL, echo, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		checkTunnel(t, conn)
		if cfg.ServerName != "" {
			t.Error("the caller's tls.Config was changed")
		}
	})
	t.Run("unknown root", func(t *testing.T) {
		_, err := dialProxy(testCtx(t, 10*time.Second), proxyURL, echo, nil, nil)
		var verr *tls.CertificateVerificationError
		if !errors.As(err, &verr) {
			t.Fatalf("error %v, want a certificate verification error", err)
		}
	})
	t.Run("refused", func(t *testing.T) {
		_, err := dialProxy(testCtx(t, 10*time.Second), proxyURL, "example.com:443", nil, &tls.Config{RootCAs: roots})
		var pe *ProxyError
		if !errors.As(err, &pe) || pe.Status != http.StatusForbidden {
			t.Fatalf("error %v, want a 403 *ProxyError", err)
		}
	})
}

// socksSeen is what a SOCKS5 client sent: the methods it offered, and the
// address part of its request (type, address, port).
type socksSeen struct{ methods, addr []byte }

// socksFake serves a SOCKS5 client: the method choice, RFC 1929 with
// user and pass if the client offered it, then the CONNECT request;
// answer writes the reply. What the client sent arrives on the channel
// once its connection has been served.
func socksFake(t *testing.T, answer func(c net.Conn)) (*fakeProxy, chan socksSeen) {
	seen := make(chan socksSeen, 16)
	return proxyFake(t, func(c net.Conn) {
		var s socksSeen
		defer func() { seen <- s }()
		br := bufio.NewReader(c)
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil || head[0] != 5 {
			t.Errorf("greeting %v, %v", head, err)
			return
		}
		offered := make([]byte, head[1])
		if _, err := io.ReadFull(br, offered); err != nil {
			t.Error(err)
			return
		}
		s.methods = offered
		if bytes.IndexByte(offered, 2) < 0 {
			if bytes.IndexByte(offered, 0) < 0 {
				c.Write([]byte{5, 0xff})
				return
			}
			c.Write([]byte{5, 0})
		} else {
			c.Write([]byte{5, 2})
			name, pass, err := readUserPass(br)
			if err != nil {
				t.Error(err)
				return
			}
			if name != "user" || pass != "pass" {
				c.Write([]byte{1, 1})
				return
			}
			c.Write([]byte{1, 0})
		}
		req := make([]byte, 4)
		if _, err := io.ReadFull(br, req); err != nil || req[0] != 5 || req[1] != 1 || req[2] != 0 {
			t.Errorf("request %v, %v", req, err)
			return
		}
		var n int
		switch req[3] {
		case 1:
			n = 4
		case 4:
			n = 16
		case 3:
			l, _ := br.ReadByte()
			req = append(req, l)
			n = int(l)
		}
		rest := make([]byte, n+2)
		if _, err := io.ReadFull(br, rest); err != nil {
			t.Error(err)
			return
		}
		s.addr = append(req[3:], rest...)
		answer(c)
	}), seen
}

func readUserPass(br *bufio.Reader) (name, pass string, err error) {
	ver, err := br.ReadByte()
	if err != nil || ver != 1 {
		return "", "", errors.New("bad RFC 1929 version")
	}
	field := func() string {
		n, _ := br.ReadByte()
		b := make([]byte, n)
		io.ReadFull(br, b)
		return string(b)
	}
	name = field()
	pass = field()
	return name, pass, nil
}

// socksOK is a success reply (bound address 10.0.0.1:1080, which the
// client ignores) followed by echoing.
func socksOK(extra string) func(c net.Conn) {
	return func(c net.Conn) {
		c.Write(append([]byte{5, 0, 0, 1, 10, 0, 0, 1, 4, 56}, extra...))
		io.Copy(c, c)
	}
}

// TestProxySOCKS5Address: socks5 resolves a name here and sends the
// address; socks5h sends the name; an address literal goes as one either
// way. The bytes behind the reply are the tunnel's first.
func TestProxySOCKS5Address(t *testing.T) {
	name := func(s string) []byte { return append([]byte{3, byte(len(s))}, s...) }
	for _, tc := range []struct {
		scheme, addr string
		want         [][]byte // any of these, without the port
	}{
		{"socks5", "localhost:8080", [][]byte{{1, 127, 0, 0, 1}, append([]byte{4}, net.IPv6loopback...)}},
		{"socks5h", "localhost:8080", [][]byte{name("localhost")}},
		{"socks5h", "127.0.0.1:8080", [][]byte{{1, 127, 0, 0, 1}}},
		{"socks5", "[2001:db8::1]:8080", [][]byte{append([]byte{4}, net.ParseIP("2001:db8::1")...)}},
		{"socks5h", "[::ffff:192.0.2.1]:8080", [][]byte{{1, 192, 0, 2, 1}}},
	} {
		t.Run(tc.scheme+" "+tc.addr, func(t *testing.T) {
			f, seen := socksFake(t, socksOK("early"))
			conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, tc.scheme+"://"+f.addr), tc.addr, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			early := make([]byte, 5)
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(conn, early); err != nil || string(early) != "early" {
				t.Fatalf("first read %q, %v; want the early bytes", early, err)
			}
			checkTunnel(t, conn)
			conn.Close()
			f.closed(t)
			got := (<-seen).addr
			ok := false
			for _, w := range tc.want {
				ok = ok || bytes.Equal(got, binary.BigEndian.AppendUint16(w, 8080))
			}
			if !ok {
				t.Errorf("address sent %v, want one of %v and port 8080", got, tc.want)
			}
		})
	}
}

// TestProxySOCKS5Auth: username/password (RFC 1929) when the URL has user
// info, offered beside no authentication; a rejection wraps ErrProxyAuth.
func TestProxySOCKS5Auth(t *testing.T) {
	for _, tc := range []struct {
		user    string
		methods []byte
		ok      bool
	}{
		{"user:pass@", []byte{0, 2}, true},
		{"user:wrong@", []byte{0, 2}, false},
		{"", []byte{0}, true},
	} {
		t.Run(tc.user, func(t *testing.T) {
			f, seen := socksFake(t, socksOK(""))
			conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5://"+tc.user+f.addr), "127.0.0.1:80", nil, nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				checkTunnel(t, conn)
				conn.Close()
			} else if !errors.Is(err, ErrProxyAuth) {
				t.Fatalf("error %v, want ErrProxyAuth", err)
			}
			f.closed(t)
			if methods := (<-seen).methods; !bytes.Equal(methods, tc.methods) {
				t.Errorf("methods offered %v, want %v", methods, tc.methods)
			}
		})
	}
	t.Run("no acceptable method", func(t *testing.T) {
		f := proxyFake(t, func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.Write([]byte{5, 0xff})
		})
		_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5://"+f.addr), "127.0.0.1:80", nil, nil)
		if !errors.Is(err, ErrProxyAuth) {
			t.Fatalf("error %v, want ErrProxyAuth", err)
		}
		f.closed(t)
	})
}

// TestProxySOCKS5Replies: each refusal code of RFC 1928 is a *SOCKSError
// that names it.
func TestProxySOCKS5Replies(t *testing.T) {
	for code, want := range map[byte]string{
		1: "general SOCKS server failure",
		2: "not allowed by ruleset",
		3: "network unreachable",
		4: "host unreachable",
		5: "connection refused",
		6: "TTL expired",
		7: "command not supported",
		8: "address type not supported",
		9: "reply code 0x09",
	} {
		t.Run(want, func(t *testing.T) {
			f, _ := socksFake(t, func(c net.Conn) {
				c.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
			})
			_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5h://"+f.addr), "example.com:80", nil, nil)
			var se *SOCKSError
			if !errors.As(err, &se) || se.Reply != code {
				t.Fatalf("error %v, want a *SOCKSError with code %d", err, code)
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to say %q", err, want)
			}
			f.closed(t)
		})
	}
}

// TestProxySOCKS5BrokenAnswer: a reply cut short or not SOCKS5 fails the
// dial and closes the connection.
func TestProxySOCKS5BrokenAnswer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(c net.Conn)
		want  error
	}{
		{"closed mid-reply", func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.Write([]byte{5, 0})
			c.Read(make([]byte, 64))
			c.Write([]byte{5, 0, 0, 1, 127})
			c.(*net.TCPConn).CloseWrite()
		}, io.ErrUnexpectedEOF},
		{"closed after greeting", func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.(*net.TCPConn).CloseWrite()
		}, io.EOF},
		{"an HTTP proxy", func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, nil},
		{"unknown address type", func(c net.Conn) {
			c.Read(make([]byte, 3))
			c.Write([]byte{5, 0})
			c.Read(make([]byte, 64))
			c.Write([]byte{5, 0, 0, 9, 0, 0})
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := proxyFake(t, tc.serve)
			conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5h://"+f.addr), "example.com:80", nil, nil)
			if err == nil || conn != nil {
				t.Fatalf("got (%v, %v), want an error", conn, err)
			}
			var se *SOCKSError
			if errors.As(err, &se) {
				t.Errorf("error %v is a refusal", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			f.closed(t)
		})
	}
}

// TestProxySOCKS5BadCredentials: credentials that RFC 1929 cannot carry
// fail before a byte is sent.
func TestProxySOCKS5BadCredentials(t *testing.T) {
	for _, user := range []string{":pass", strings.Repeat("n", 256) + ":pass", "user:" + strings.Repeat("p", 256)} {
		f := proxyFake(t, func(c net.Conn) {})
		_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5://"+user+"@"+f.addr), "127.0.0.1:80", nil, nil)
		if err == nil || !strings.Contains(err.Error(), "255") {
			t.Errorf("user %.10q…: error %v, want the length limits", user, err)
		}
		f.closed(t)
	}
}
