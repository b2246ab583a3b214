package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A raw client, written from the specs and independent of the server's
// code, for tests that must control every byte on the wire.

// rawClient is a TCP connection to a test server.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func dialRaw(t testing.TB, srv *httptest.Server) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t: t, conn: conn, br: bufio.NewReader(conn)}
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// readResponse reads an HTTP response head (status line and fields).
func (c *rawClient) readResponse() (status string, header http.Header, raw string) {
	c.t.Helper()
	var sb strings.Builder
	header = http.Header{}
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading response: %v (so far %q)", err, sb.String())
		}
		sb.WriteString(line)
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if status == "" {
			status = line
			continue
		}
		name, value, _ := strings.Cut(line, ": ")
		header.Add(name, value)
	}
	return status, header, sb.String()
}

// handshakeRequest builds a request of the given dialect for path, from a
// page of the same origin; extra lines ("Name: value") follow.
func handshakeRequest(d Dialect, host, path string, extra ...string) string {
	return htRequest(d, host, path, "http://"+host, extra...)
}

// dialDialect connects and completes a handshake of dialect d on path.
func dialDialect(t testing.TB, srv *httptest.Server, d Dialect, path string) *rawClient {
	t.Helper()
	c := dialRaw(t, srv)
	c.write([]byte(handshakeRequest(d, srv.Listener.Addr().String(), path)))
	status, _, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("%s handshake: %q", d, raw)
	}
	if d == Hixie76 {
		var answer [16]byte
		if _, err := io.ReadFull(c.br, answer[:]); err != nil {
			t.Fatal(err)
		}
		if string(answer[:]) != "8jKS'y:G*Co,Wxa-" {
			t.Fatalf("hixie-76 answer %q", answer)
		}
	}
	return c
}

// clientFrame builds a masked client frame (RFC 6455 section 5.2).
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	return maskedFrame(b0, payload, [4]byte{0x37, 0xfa, 0x21, 0x3d})
}

// maskedFrame builds a client frame whose first byte is b0, masked with key.
func maskedFrame(b0 byte, payload []byte, key [4]byte) []byte {
	var f []byte
	switch n := len(payload); {
	case n < 126:
		f = []byte{b0, 0x80 | byte(n)}
	case n < 1<<16:
		f = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		f = append([]byte{b0, 0x80 | 127}, binary.BigEndian.AppendUint64(nil, uint64(n))...)
	}
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

// serverFrame is a frame read from the server.
type serverFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

func (c *rawClient) readFrame() serverFrame {
	c.t.Helper()
	f, err := c.tryReadFrame()
	if err != nil {
		c.t.Fatalf("reading frame: %v", err)
	}
	return f
}

func (c *rawClient) tryReadFrame() (serverFrame, error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return serverFrame{}, err
	}
	f := serverFrame{fin: h[0]&0x80 != 0, rsv: h[0] >> 4 & 7, op: h[0] & 0xF}
	if h[1]&0x80 != 0 {
		return f, fmt.Errorf("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(c.br, f.payload)
	return f, err
}

// readMessage reads a whole server message of any dialect.
func (c *rawClient) readMessage(d Dialect) (byte, []byte) {
	c.t.Helper()
	if !d.hybi() {
		b, err := c.br.ReadByte()
		if err != nil || b != 0x00 {
			c.t.Fatalf("hixie frame type %#x, %v", b, err)
		}
		msg, err := c.br.ReadBytes(0xFF)
		if err != nil {
			c.t.Fatal(err)
		}
		return 1, msg[:len(msg)-1]
	}
	f := c.readFrame()
	op, msg := f.op, f.payload
	for !f.fin {
		f = c.readFrame()
		if f.op != 0 {
			c.t.Fatalf("server sent opcode %d inside a fragmented message", f.op)
		}
		msg = append(msg, f.payload...)
	}
	return op, msg
}

// writeText sends a text message in the dialect's framing.
func (c *rawClient) writeText(d Dialect, s string) {
	c.t.Helper()
	if d.hybi() {
		c.write(clientFrame(true, 1, []byte(s)))
	} else {
		c.write(append(append([]byte{0x00}, s...), 0xFF))
	}
}

// expectClose reads until the server's close frame and returns its code
// (1005 for an empty one), then checks that the server closes TCP.
func (c *rawClient) expectClose() StatusCode {
	c.t.Helper()
	for {
		f, err := c.tryReadFrame()
		if err != nil {
			c.t.Fatalf("waiting for close frame: %v", err)
		}
		if f.op != 8 {
			continue
		}
		code := StatusNoStatusRcvd
		if len(f.payload) >= 2 {
			code = StatusCode(binary.BigEndian.Uint16(f.payload))
		}
		c.expectEOF()
		return code
	}
}

// expectEOF checks that the server closes the TCP connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	rest, err := io.ReadAll(c.br)
	if err != nil {
		c.t.Fatalf("waiting for the server to close TCP: %v", err)
	}
	if len(rest) > 0 {
		c.t.Fatalf("unexpected bytes before TCP close: %q", rest)
	}
}

func closePayload(code StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// echoServer serves an echo Handler configured by cfg.
func echoServer(t testing.TB, cfg func(*Handler)) (*httptest.Server, *Handler) {
	h := &Handler{Serve: echoMessages}
	if cfg != nil {
		cfg(h)
	}
	inMode(t, h, &echoEvents)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

// echoMessages is a Serve callback echoing every message.
func echoMessages(c *Conn) {
	for {
		typ, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(typ, msg); err != nil {
			return
		}
	}
}

// checkEcho checks that msg is echoed, skipping any ping or pong.
func checkEcho(t *testing.T, c *rawClient, d Dialect, msg string) {
	t.Helper()
	c.writeText(d, msg)
	if !d.hybi() {
		if _, got := c.readMessage(d); string(got) != msg {
			t.Fatalf("%s: echo of %q came back as %q", d, msg, got)
		}
		return
	}
	for {
		f := c.readFrame()
		if f.op == 9 || f.op == 10 {
			continue
		}
		if f.op != 1 || !f.fin || string(f.payload) != msg {
			t.Fatalf("%s: echo of %q came back as %+v", d, msg, f)
		}
		return
	}
}

// reusingEcho echoes every message, reading into a reused buffer: the
// loop the documentation recommends for busy servers.
func reusingEcho(c *Conn) {
	var buf []byte
	for {
		typ, msg, err := c.AppendMessage(buf[:0])
		if err != nil {
			return
		}
		if c.WriteMessage(typ, msg) != nil {
			return
		}
		buf = msg
	}
}

var allDialects = []Dialect{Hixie75, Hixie76, Hybi07, Hybi08, RFC6455}

func TestSmokeEcho(t *testing.T) {
	srv, _ := echoServer(t, nil)
	for _, d := range allDialects {
		c := dialDialect(t, srv, d, "/echo")
		c.writeText(d, "hello "+d.String())
		if _, msg := c.readMessage(d); !bytes.Equal(msg, []byte("hello "+d.String())) {
			t.Fatalf("%s echo %q", d, msg)
		}
	}
}
