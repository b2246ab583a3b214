package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawServer serves loopback connections with serve, handed each with its
// handshake request read; it returns the ws:// URL.
func rawServer(t *testing.T, serve func(conn net.Conn, br *bufio.Reader, req *http.Request)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(conn)
				if req, err := http.ReadRequest(br); err == nil {
					serve(conn, br, req)
				}
			}()
		}
	}()
	return "ws://" + ln.Addr().String()
}

// hybiAnswer is a valid RFC 6455 answer to req with extra fields.
func hybiAnswer(req *http.Request, extra ...string) string {
	s := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	for _, f := range extra {
		s += f + "\r\n"
	}
	return s + "\r\n"
}

// hixie76Answer is a draft-hixie-76 answer to the request read from br,
// with the challenge answer computed by challenge.
func hixie76Answer(req *http.Request, br *bufio.Reader, location string, challenge func([16]byte) [16]byte) string {
	var key3 [8]byte
	io.ReadFull(br, key3[:])
	n1, _ := hixieKeyNumber(req.Header.Get("Sec-WebSocket-Key1"))
	n2, _ := hixieKeyNumber(req.Header.Get("Sec-WebSocket-Key2"))
	sum := challenge(hixieChallenge(n1, n2, key3))
	return "HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Location: " +
		location + "\r\n\r\n" + string(sum[:])
}

// serverFrameBytes is an unmasked frame, or masked with key when given.
func serverFrameBytes(b0 byte, payload []byte, key *[4]byte) []byte {
	if key != nil {
		return maskedFrame(b0, payload, *key)
	}
	return append(appendFrameHeader(nil, b0&0x80 != 0, opcode(b0&0xF), false, len(payload)), payload...)
}

func TestDialBadServers(t *testing.T) {
	same := func(c [16]byte) [16]byte { return c }
	tests := []struct {
		name    string
		dialect Dialect
		opts    func(*DialOptions)
		serve   func(conn net.Conn, br *bufio.Reader, req *http.Request)
		want    string // in the error
		status  int    // of the HandshakeError; 0: not one
	}{
		{"wrong accept", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
		}, "Sec-WebSocket-Accept", 101},
		{"missing Upgrade", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, strings.Replace(hybiAnswer(req), "Upgrade: websocket\r\n", "", 1))
		}, "Upgrade", 101},
		{"missing Connection", Hybi08, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, strings.Replace(hybiAnswer(req), "Connection: Upgrade\r\n", "", 1))
		}, "Connection", 101},
		{"200 OK", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
		}, "did not switch", 200},
		{"426", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13, 8, 7\r\nContent-Length: 0\r\n\r\n")
		}, "13, 8, 7", 426},
		{"unoffered subprotocol", RFC6455, func(o *DialOptions) { o.Subprotocols = []string{"chat"} }, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, hybiAnswer(req, "Sec-WebSocket-Protocol: superchat"))
		}, "subprotocol", 101},
		{"unoffered extension", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, hybiAnswer(req, "Sec-WebSocket-Extensions: permessage-deflate"))
		}, "extensions not offered", 101},
		{"wrong MD5", Hixie76, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, hixie76Answer(req, br, "ws://"+req.Host+"/", func(c [16]byte) [16]byte { c[3]++; return c }))
		}, "MD5", 101},
		{"wrong location", Hixie76, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, hixie76Answer(req, br, "ws://"+req.Host+"/elsewhere", same))
		}, "Location", 101},
		{"hixie-75 status line", Hixie75, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nWebSocket-Location: ws://"+req.Host+"/\r\n\r\n")
		}, "hixie-75", 101},
		{"never answers", RFC6455, func(o *DialOptions) { o.HandshakeTimeout = 200 * time.Millisecond }, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			br.ReadByte() // until the client hangs up
		}, context.DeadlineExceeded.Error(), 0},
		{"closes mid-answer", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgr")
		}, "reading the answer", 0},
		{"redirect loop", RFC6455, nil, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
			io.WriteString(conn, "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
		}, "after 10 redirects", 302},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := rawServer(t, tt.serve)
			base := runtime.NumGoroutine()
			opts := &DialOptions{Dialect: tt.dialect}
			if tt.opts != nil {
				tt.opts(opts)
			}
			c, resp, err := Dial(context.Background(), url+"/", opts)
			if c != nil || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Dial: %v, %v; want an error saying %q", c, err, tt.want)
			}
			var he *HandshakeError
			if errors.As(err, &he) != (tt.status != 0) || he != nil && (he.Status != tt.status || resp == nil || resp.StatusCode != tt.status) {
				t.Fatalf("error %#v, want a HandshakeError of status %d", err, tt.status)
			}
			if tt.status == 200 && string(he.Body) != "hello" {
				t.Fatalf("body %q", he.Body)
			}
			waitGoroutines(t, "the failed Dial", base)
		})
	}
}

// TestDialBadFrames: a server that masks its frames (1002), sends invalid
// UTF-8 (1007) or a frame over the read limit (1009) is failed with that
// code; a first frame in the answer's packet is not lost.
func TestDialBadFrames(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	tests := []struct {
		name  string
		frame []byte
		code  StatusCode
	}{
		{"masked", serverFrameBytes(0x81, []byte("hi"), &key), StatusProtocolError},
		{"invalid UTF-8", serverFrameBytes(0x81, []byte{'a', 0xff, 'b'}, nil), StatusInvalidPayload},
		{"over the read limit", serverFrameBytes(0x82, make([]byte, 101), nil), StatusMessageTooBig},
		{"first frame with the answer", serverFrameBytes(0x81, []byte("hello"), nil), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closeFrame := make(chan []byte, 1)
			url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, hybiAnswer(req)+string(tt.frame)) // one write: one packet
				var h [2]byte
				io.ReadFull(br, h[:])
				var mask [4]byte
				io.ReadFull(br, mask[:])
				payload := make([]byte, h[1]&0x7F)
				io.ReadFull(br, payload)
				maskBytes(mask, 0, payload)
				closeFrame <- append(h[:1], payload...)
			})
			base := runtime.NumGoroutine()
			c, _, err := Dial(context.Background(), url, &DialOptions{ReadLimit: 100})
			if err != nil {
				t.Fatal(err)
			}
			typ, msg, err := c.ReadMessage()
			if tt.code == 0 {
				if err != nil || typ != TextMessage || string(msg) != "hello" {
					t.Fatalf("read %v %q %v", typ, msg, err)
				}
				c.Close(StatusNormalClosure, "")
				tt.code = StatusNormalClosure
			} else {
				var pe *ProtocolError
				if !errors.As(err, &pe) || pe.Code != tt.code {
					t.Fatalf("read: %v, want a *ProtocolError %d", err, tt.code)
				}
			}
			f := <-closeFrame
			if f[0] != 0x88 || len(f) < 3 || StatusCode(binary.BigEndian.Uint16(f[1:])) != tt.code {
				t.Fatalf("close frame % x, want code %d", f, tt.code)
			}
			c.CloseNow()
			waitGoroutines(t, "the failed connection", base)
		})
	}
}

// TestDialMasksOnTheWire reads the client's frames raw: each masked, with
// keys that vary, unmasking to what was sent.
func TestDialMasksOnTheWire(t *testing.T) {
	keys := make(chan [4]byte, 100)
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, hybiAnswer(req))
		for i := 0; ; i++ {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				close(keys)
				return
			}
			if h[1]&0x80 == 0 {
				t.Error("unmasked client frame")
			}
			n := int(h[1] & 0x7F)
			if n == 126 {
				var l [2]byte
				io.ReadFull(br, l[:])
				n = int(binary.BigEndian.Uint16(l[:]))
			}
			var key [4]byte
			io.ReadFull(br, key[:])
			payload := make([]byte, n)
			io.ReadFull(br, payload)
			maskBytes(key, 0, payload)
			if h[0]&0xF == 1 && !bytes.Equal(payload, testMessage(n)) {
				t.Errorf("frame %d unmasks to %q", i, payload)
			}
			keys <- key
			if h[0]&0xF == 8 {
				conn.Write([]byte{0x88, 0})
			}
		}
	})
	c, _, err := Dial(context.Background(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 10, 125, 126, 5000, 5000, 5000} {
		if err := c.WriteMessage(TextMessage, testMessage(n)); err != nil {
			t.Fatal(err)
		}
	}
	c.Ping(nil)
	c.Close(StatusNormalClosure, "")
	seen := map[[4]byte]bool{}
	count := 0
	for k := range keys {
		seen[k] = true
		count++
	}
	if count != 10 || len(seen) < 9 {
		t.Fatalf("%d frames, %d distinct keys", count, len(seen))
	}
}

func TestDialRedirectAndCookies(t *testing.T) {
	var gotCookie string
	url, opts := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/old":
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cr3t"})
			http.Redirect(w, r, "/new?x=1", http.StatusFound)
		case "/new":
			if c, err := r.Cookie("session"); err == nil {
				gotCookie = c.Value
			}
			echoHandler(nil).ServeHTTP(w, r)
		}
	}), false)
	jar, _ := cookiejar.New(nil)
	opts.Jar = jar
	c := dialTest(t, url+"/old", opts)
	if gotCookie != "s3cr3t" {
		t.Fatalf("cookie at /new: %q", gotCookie)
	}
	c.WriteText("moved")
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "moved" {
		t.Fatalf("%q %v", msg, err)
	}
}

// TestDialCanceled: a ctx canceled while the server is silent closes the
// socket; Dial returns ctx's error and leaves no goroutine.
func TestDialCanceled(t *testing.T) {
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) { br.ReadByte() })
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	c, _, err := Dial(ctx, url, nil)
	if c != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial: %v, %v", c, err)
	}
	waitGoroutines(t, "the canceled Dial", base)
}

// TestDialHixieKeys: hixie-76 keys as the draft makes them.
func TestDialHixieKeys(t *testing.T) {
	for range 2000 {
		key, n := newHixieKey()
		spaces := strings.Count(key, " ")
		if got, err := hixieKeyNumber(key); err != nil || got != n || spaces < 1 || spaces > 12 ||
			key[0] == ' ' || key[len(key)-1] == ' ' || strings.Trim(key, "0123456789 ") == "" {
			t.Fatalf("key %q: number %d (%v), want %d", key, got, err, n)
		}
		for _, c := range []byte(key) {
			if c < ' ' || c > '~' {
				t.Fatalf("key %q has %q", key, c)
			}
		}
	}
}

// TestDialRequestFields: the fields each dialect sends, the origin under
// its dialect's name, and the fields the handshake owns refused.
func TestDialRequestFields(t *testing.T) {
	got := make(chan http.Header, 1)
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) { got <- req.Header })
	origin := http.Header{"Origin": {"https://app.example"}, "Authorization": {"Bearer x"}}
	want := map[Dialect]string{RFC6455: "Origin", Hybi08: "Sec-Websocket-Origin", Hybi07: "Sec-Websocket-Origin", Hixie76: "Origin", Hixie75: "Origin"}
	keys := map[string]bool{}
	for d, field := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		Dial(ctx, url, &DialOptions{Dialect: d, Header: origin, Subprotocols: []string{"chat"}})
		cancel()
		h := <-got
		if key := h.Get("Sec-Websocket-Key"); d.hybi() && (!validKey(key) || keys[key]) {
			t.Fatalf("%s: key %q (seen: %v)", d, key, keys[key])
		} else {
			keys[key] = true
		}
		if h.Get(field) != "https://app.example" || len(h["Origin"])+len(h["Sec-Websocket-Origin"]) != 1 || h.Get("Authorization") != "Bearer x" {
			t.Fatalf("%s sent %v", d, h)
		}
		if p := h.Get("Sec-Websocket-Protocol") + h.Get("Websocket-Protocol"); p != "chat" {
			t.Fatalf("%s offered %q", d, p)
		}
	}
	_, _, err := Dial(context.Background(), url, &DialOptions{Header: http.Header{"Sec-Websocket-Protocol": {"x"}}})
	if err == nil || !strings.Contains(err.Error(), "may not set") {
		t.Fatalf("a reserved field: %v", err)
	}
	_, _, err = Dial(context.Background(), "ftp://example.com/", nil)
	if err == nil || !strings.Contains(err.Error(), "scheme") {
		t.Fatalf("ftp: %v", err)
	}
}

// TestDialOrigins: a Handler's origin policy applies to our client's
// Origin, sent as each dialect sends it.
func TestDialOrigins(t *testing.T) {
	url, opts := testServer(t, echoHandler(func(h *Handler) { h.Origins = []string{"https://app.example"} }), false)
	for _, d := range allDialects {
		opts.Dialect = d
		opts.Header = http.Header{"Origin": {"https://app.example"}}
		dialTest(t, url, opts).CloseNow()
		opts.Header.Set("Origin", "https://evil.example")
		c, resp, err := Dial(context.Background(), url, opts)
		var he *HandshakeError
		if c != nil || !errors.As(err, &he) || he.Status != http.StatusForbidden || resp.StatusCode != http.StatusForbidden ||
			!strings.Contains(string(he.Body), "origin not allowed") {
			t.Fatalf("%s: %v, %v", d, c, err)
		}
	}
}

// TestDialClientInGroup: a client's Conn in a Group gets each broadcast
// masked with keys of its own, which the server reads.
func TestDialClientInGroup(t *testing.T) {
	got := make(chan string, 10)
	url, opts := testServer(t, &Handler{Serve: func(c *Conn) {
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			got <- string(msg)
		}
	}}, false)
	c := dialTest(t, url, opts)
	g := &Group{}
	g.Add(c)
	for _, m := range []string{"one", "two", strings.Repeat("three", 100)} {
		g.Broadcast(TextMessage, []byte(m))
		if s := <-got; s != m {
			t.Fatalf("server read %q, want %q", s, m)
		}
	}
	pm, _ := NewPreparedMessage(BinaryMessage, []byte("prepared"))
	c.WritePreparedMessage(pm)
	if s := <-got; s != "prepared" {
		t.Fatalf("server read %q", s)
	}
}

// TestDialKeepalive: a client with PingInterval drops a server that
// never answers its pings.
func TestDialKeepalive(t *testing.T) {
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, hybiAnswer(req))
		io.Copy(io.Discard, br)
	})
	c, _, err := Dial(context.Background(), url, &DialOptions{PingInterval: 20 * time.Millisecond, PongTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); !errors.Is(err, ErrPongTimeout) {
		t.Fatalf("read %v, want ErrPongTimeout", err)
	}
}

// TestDialRefusalEndlessBody: a refusal whose body never ends is reported
// at once, with its first KiB.
func TestDialRefusalEndlessBody(t *testing.T) {
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, "HTTP/1.1 503 Service Unavailable\r\n\r\n")
		for {
			if _, err := conn.Write(bytes.Repeat([]byte("busy "), 1000)); err != nil {
				return
			}
		}
	})
	c, _, err := Dial(context.Background(), url, &DialOptions{HandshakeTimeout: 5 * time.Second})
	var he *HandshakeError
	if c != nil || !errors.As(err, &he) || he.Status != 503 || len(he.Body) != maxErrorBody {
		t.Fatalf("Dial: %v, %v", c, err)
	}
}

// TestDialServerClosesEveryDialect: each dialect's close from the server
// ends the client's read, and both ends record a cause.
func TestDialServerClosesEveryDialect(t *testing.T) {
	url, opts := testServer(t, &Handler{Serve: func(c *Conn) {}}, false)
	for _, d := range allDialects {
		opts.Dialect = d
		c := dialTest(t, url, opts)
		_, _, err := c.ReadMessage()
		var ce *CloseError
		switch d {
		case Hixie75: // its only close is TCP's
			if !errors.Is(err, io.EOF) || !errors.Is(c.CloseCause(), ErrDropped) {
				t.Fatalf("%s: read %v, cause %v", d, err, c.CloseCause())
			}
		case Hixie76:
			if !errors.As(err, &ce) || ce.Code != StatusNoStatusRcvd {
				t.Fatalf("%s: read %v", d, err)
			}
		default:
			if !errors.As(err, &ce) || ce.Code != StatusNormalClosure {
				t.Fatalf("%s: read %v", d, err)
			}
		}
	}
}

// TestDialTLSUnknownAuthority: a certificate the client does not trust
// fails Dial with the TLS error, and leaves nothing behind.
func TestDialTLSUnknownAuthority(t *testing.T) {
	url, _ := testServer(t, echoHandler(nil), true)
	base := runtime.NumGoroutine()
	c, resp, err := Dial(context.Background(), url, nil)
	if c != nil || resp != nil || err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial: %v, %v, %v", c, resp, err)
	}
	waitGoroutines(t, "the failed TLS handshake", base)
}

// TestDialRedirectToWS: a redirect to another server's ws:// URL.
func TestDialRedirectToWS(t *testing.T) {
	target, opts := testServer(t, echoHandler(nil), false)
	url, _ := testServer(t, http.RedirectHandler(target+"/there", http.StatusTemporaryRedirect), false)
	c := dialTest(t, url+"/here", opts)
	c.WriteText("over there")
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "over there" {
		t.Fatalf("%q %v", msg, err)
	}
}

// TestDialURLCredentials: a URL's user info is sent as Basic credentials,
// unless the caller's Header carries its own Authorization.
func TestDialURLCredentials(t *testing.T) {
	got := make(chan http.Header, 1)
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) { got <- req.Header })
	withUser := strings.Replace(url, "ws://", "ws://al%20ice:p%3Ass@", 1)
	for _, tc := range []struct {
		header http.Header
		want   string
	}{
		{nil, "Basic YWwgaWNlOnA6c3M="}, // "al ice:p:ss"
		{http.Header{"Authorization": {"Bearer x"}}, "Bearer x"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		Dial(ctx, withUser, &DialOptions{Header: tc.header})
		cancel()
		if h := <-got; len(h["Authorization"]) != 1 || h.Get("Authorization") != tc.want || strings.Contains(h.Get("Host"), "@") {
			t.Fatalf("sent %v, want Authorization %q", h, tc.want)
		}
	}
}

// TestDialWaitsForServerClose: after the close handshake the client
// leaves closing TCP to the server (RFC 6455, section 7.1.1), and closes
// it itself only once CloseTimeout has passed.
func TestDialWaitsForServerClose(t *testing.T) {
	const hold = 300 * time.Millisecond
	eofAfter := make(chan time.Duration, 2)
	url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
		io.WriteString(conn, hybiAnswer(req))
		conn.Write(serverFrameBytes(0x88, []byte{0x03, 0xe8}, nil))
		var hdr [8]byte // the client's close, masked, with the code
		if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 0x88 {
			t.Errorf("the client's close: %x, %v", hdr, err)
			return
		}
		start := time.Now()
		conn.SetReadDeadline(start.Add(hold))
		if _, err := br.ReadByte(); err == io.EOF {
			eofAfter <- time.Since(start) // the client closed first
			return
		}
		eofAfter <- -1 // the client waited: the server closes first
	})
	for _, closeTimeout := range []time.Duration{time.Minute, 50 * time.Millisecond} {
		c := dialTest(t, url, &DialOptions{CloseTimeout: closeTimeout})
		_, _, err := c.ReadMessage()
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != StatusNormalClosure {
			t.Fatalf("read %v", err)
		}
		got := <-eofAfter
		switch {
		case closeTimeout == time.Minute && got != -1:
			t.Fatalf("the client closed TCP %v after its close, before the server", got)
		case closeTimeout < hold && (got < 0 || got > hold):
			t.Fatalf("with CloseTimeout %v the client closed after %v (-1: never)", closeTimeout, got)
		}
	}
}
