package websocket

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

// replayConn is a net.Conn whose reads replay the same bytes forever and
// whose writes are discarded: it measures the codec without the network.
type replayConn struct {
	net.Conn
	data []byte
	pos  int
}

func (r *replayConn) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.pos:])
	r.pos = (r.pos + n) % len(r.data)
	return n, nil
}

func (r *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (r *replayConn) SetWriteDeadline(time.Time) error { return nil }
func (r *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (r *replayConn) Close() error                     { return nil }
func (r *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (r *replayConn) CloseWrite() error                { return nil }
func (r *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (r *replayConn) SetDeadline(t time.Time) error    { return nil }

func benchConn(d Dialect, wire []byte, h *Handler) *Conn {
	rc := &replayConn{data: wire}
	brw := bufio.NewReadWriter(bufio.NewReaderSize(rc, 4096), bufio.NewWriterSize(rc, 4096))
	return newConn(rc, brw, &handshake{dialect: d}, httptest.NewRequest("GET", "/", nil), false, h)
}

var benchSizes = []int{32, 1 << 10, 16 << 10}

func BenchmarkReadMessage(b *testing.B) {
	for _, d := range []Dialect{RFC6455, Hixie76} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", d, n), func(b *testing.B) {
				msg := bytes.Repeat([]byte("x"), n)
				wire := clientFrame(true, 1, msg)
				if !d.hybi() {
					wire = append(append([]byte{0}, msg...), 0xFF)
				}
				c := benchConn(d, wire, &Handler{})
				buf := make([]byte, 0, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if _, buf, err = c.AppendMessage(buf[:0]); err != nil || len(buf) != n {
						b.Fatal(err, len(buf))
					}
				}
			})
		}
	}
}

// BenchmarkReadLargeMessage reads 8 MiB messages, each one frame, with
// ReadMessage: past its first MiB, a message is gathered in chunks.
func BenchmarkReadLargeMessage(b *testing.B) {
	const n = 8 << 20
	c := benchConn(RFC6455, clientFrame(true, 2, make([]byte, n)), &Handler{ReadLimit: -1})
	b.SetBytes(n)
	b.ReportAllocs()
	for b.Loop() {
		if _, msg, err := c.ReadMessage(); err != nil || len(msg) != n {
			b.Fatal(err, len(msg))
		}
	}
}

func BenchmarkWriteMessage(b *testing.B) {
	for _, d := range []Dialect{RFC6455, Hixie76} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", d, n), func(b *testing.B) {
				c := benchConn(d, []byte{0}, &Handler{})
				msg := bytes.Repeat([]byte("x"), n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					if err := c.WriteMessage(TextMessage, msg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkFrameHeader(b *testing.B) {
	hdr := clientFrame(true, 2, make([]byte, 1000))[:8]
	r := bytes.NewReader(nil)
	br := bufio.NewReader(r)
	var out [maxHeaderSize]byte
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(hdr)
		br.Reset(r)
		if h, err := readFrameHeader(br); err != nil || h.length != 1000 {
			b.Fatal(err)
		}
		appendFrameHeader(out[:0], true, opBinary, false, 1000)
	}
}

// BenchmarkHandshake measures whole RFC 6455 handshakes over loopback TCP,
// from dial to the server's close.
func BenchmarkHandshake(b *testing.B) {
	benchHandshake(b, "http.Server", &Handler{Serve: func(c *Conn) {}})
}

// BenchmarkEngineHandshake is a client's handshake and hang-up, served by
// an echo on a goroutine (Handler.Serve) and on the event engine
// (Events), under net/http's server and under Serve.
func BenchmarkEngineHandshake(b *testing.B) {
	for _, serve := range []string{"http.Server", "Serve"} {
		b.Run(serve+"/goroutine", func(b *testing.B) { benchHandshake(b, serve, &Handler{Serve: reusingEcho}) })
		b.Run(serve+"/engine", func(b *testing.B) { benchHandshake(b, serve, &Handler{Events: &echoEvents}) })
	}
}

// benchHandshake measures handshakes answered by h under net/http's
// server or under Serve.
func benchHandshake(b *testing.B, serve string, h *Handler) {
	var addr string
	if serve == "Serve" {
		srv, _ := listenServe(b, h, nil)
		addr = srv.Listener.Addr().String()
	} else {
		srv := httptest.NewServer(h)
		defer srv.Close()
		addr = srv.Listener.Addr().String()
	}
	req := []byte(handshakeRequest(RFC6455, "localhost", "/"))
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conn.Write(req)
		if n, err := conn.Read(buf); err != nil || !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101")) {
			b.Fatal(err, string(buf[:n]))
		}
		conn.Close()
	}
}

// BenchmarkEcho measures round trips of a text message over loopback TCP,
// one at a time, to a server that reads into a reused buffer and writes
// the message back: the whole path, system calls included, in each dialect.
func BenchmarkEcho(b *testing.B) {
	for _, d := range []Dialect{RFC6455, Hixie76} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", d, n), func(b *testing.B) { benchEcho(b, &Handler{Serve: reusingEcho}, d, n) })
		}
	}
}

// BenchmarkEngineEcho is BenchmarkEcho side by side on the event engine
// (Handler.Events) and on a goroutine per connection (Handler.Serve): one
// client, one message at a time over loopback TCP, the client's work and
// the server's together.
func BenchmarkEngineEcho(b *testing.B) {
	for _, d := range []Dialect{RFC6455, Hixie76} {
		for _, n := range []int{32, 1 << 10} {
			b.Run(fmt.Sprintf("%s/%d/goroutine", d, n), func(b *testing.B) { benchEcho(b, &Handler{Serve: reusingEcho}, d, n) })
			b.Run(fmt.Sprintf("%s/%d/engine", d, n), func(b *testing.B) { benchEcho(b, &Handler{Events: &echoEvents}, d, n) })
		}
	}
}

// benchEcho has a message of n bytes echoed by h, over dialect d.
func benchEcho(b *testing.B, h *Handler, d Dialect, n int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	c := dialDialect(b, srv, d, "/")
	msg := bytes.Repeat([]byte("x"), n)
	frame := clientFrame(true, 1, msg)
	reply := append(appendFrameHeader(nil, true, opText, false, n), msg...)
	if !d.hybi() {
		frame = append(append([]byte{0}, msg...), 0xFF)
		reply = frame
	}
	got := make([]byte, len(reply))
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		c.write(frame)
		if _, err := io.ReadFull(c.br, got); err != nil || !bytes.Equal(got, reply) {
			b.Fatal(err, len(got))
		}
	}
}

// BenchmarkGroupBroadcast broadcasts to members over loopback TCP, each
// read by a client goroutine: an op is a burst of 100 messages, delivered
// to every member; ns/delivery is per message and member, the server's and
// the clients' work together on the same cores.
func BenchmarkGroupBroadcast(b *testing.B) {
	for _, members := range []int{100, 1000} {
		for _, size := range []int{32, 1 << 10} {
			b.Run(fmt.Sprintf("members=%d/size=%d", members, size), func(b *testing.B) {
				benchmarkBroadcast(b, members, size)
			})
		}
	}
}

func benchmarkBroadcast(b *testing.B, members, size int) {
	const burst = 100
	g := &Group{}
	srv := httptest.NewServer(&Handler{Serve: func(c *Conn) {
		c.ReleaseRequest()
		g.Add(c)
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}})
	defer srv.Close()
	frameLen := len(appendFrameHeader(nil, true, opBinary, false, size)) + size
	received := make(chan int, members)
	var conns []net.Conn
	for range members {
		c := dialDialect(b, srv, RFC6455, "/")
		c.conn.SetDeadline(time.Time{})
		conns = append(conns, c.conn)
		go func() {
			buf := make([]byte, 64<<10)
			got := 0
			for {
				n, err := c.br.Read(buf)
				if err != nil {
					return
				}
				if got += n; got >= burst*frameLen {
					got -= burst * frameLen
					received <- 1
				}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for g.Len() < members {
		time.Sleep(time.Millisecond)
	}
	msg := bytes.Repeat([]byte("x"), size)
	b.ResetTimer()
	for b.Loop() {
		for range burst {
			g.Broadcast(BinaryMessage, msg)
		}
		for range members {
			<-received
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members*burst), "ns/delivery")
}

// BenchmarkClientEcho: our client writes a message to our Handler over
// loopback and reads the echo into a reused buffer, one round trip per
// op; allocs/op count both ends.
func BenchmarkClientEcho(b *testing.B) {
	for _, n := range []int{32, 16 << 10} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			url, opts := testServer(b, echoHandler(nil), false)
			c := dialTest(b, url, opts)
			msg := bytes.Repeat([]byte("x"), n)
			buf := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.WriteMessage(BinaryMessage, msg); err != nil {
					b.Fatal(err)
				}
				var err error
				if _, buf, err = c.AppendMessage(buf[:0]); err != nil || len(buf) != n {
					b.Fatal(err, len(buf))
				}
			}
		})
	}
}

// BenchmarkMaskCopy masks 16 KiB into another buffer, as a client sends.
func BenchmarkMaskCopy(b *testing.B) {
	src, dst := make([]byte, 16<<10), make([]byte, 16<<10)
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		maskCopy([4]byte{1, 2, 3, 4}, 1, dst, src)
	}
}
