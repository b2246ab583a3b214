package loadgen

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/klauspost/compress/flate"
)

// Offers of permessage-deflate, by compression mode.
const (
	OfferNoTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	OfferTakeover   = "permessage-deflate; client_max_window_bits" // what browsers send
)

// Conn is one client connection of the generator.
type Conn struct {
	nc net.Conn
	br *bufio.Reader

	// Extensions is the server's Sec-WebSocket-Extensions answer.
	Extensions string
	// Deflate is whether permessage-deflate was agreed, with its parameters.
	Deflate          bool
	ServerNoTakeover bool
	ClientWindowBits int // 15 unless the server asked for less

	buf  []byte        // the last message read
	out  []byte        // the last message inflated
	hist []byte        // the server's LZ77 history, with context takeover
	src  twoSlices     // what the inflater reads
	infl io.ReadCloser // nil until the first compressed message
}

// AcceptKey is the Sec-WebSocket-Accept that answers key (RFC 6455
// section 4.2.2).
func AcceptKey(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// Dial connects to addr and performs the opening handshake, offering
// extensions (if not empty) as its Sec-WebSocket-Extensions; the whole
// handshake must complete within timeout.
func Dial(addr, extensions string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	c, err := handshake(nc, addr, extensions, timeout)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func handshake(nc net.Conn, addr, extensions string, timeout time.Duration) (*Conn, error) {
	_ = nc.SetDeadline(time.Now().Add(timeout))
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req := make([]byte, 0, 256)
	req = append(req, "GET / HTTP/1.1\r\nHost: "...)
	req = append(req, addr...)
	req = append(req, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	req = append(req, key...)
	req = append(req, "\r\nSec-WebSocket-Version: 13\r\n"...)
	if extensions != "" {
		req = append(req, "Sec-WebSocket-Extensions: "...)
		req = append(req, extensions...)
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	if _, err := nc.Write(req); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	tp := textproto.NewReader(br)
	status, err := tp.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101 ") && status != "HTTP/1.1 101" {
		return nil, fmt.Errorf("handshake: %q", status)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	if got, want := h.Get("Sec-WebSocket-Accept"), AcceptKey(key); got != want {
		return nil, fmt.Errorf("handshake: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	if !strings.EqualFold(h.Get("Upgrade"), "websocket") || !headerHasToken(h.Values("Connection"), "upgrade") {
		return nil, fmt.Errorf("handshake: Upgrade %q, Connection %q", h.Get("Upgrade"), h.Values("Connection"))
	}
	_ = nc.SetDeadline(time.Time{})
	c := &Conn{nc: nc, br: br, ClientWindowBits: 15}
	c.Extensions = strings.Join(h.Values("Sec-WebSocket-Extensions"), ", ")
	if c.Extensions != "" {
		if err := c.parseExtensions(extensions); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func headerHasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (c *Conn) parseExtensions(offer string) error {
	if offer == "" {
		return fmt.Errorf("handshake: extensions %q not offered", c.Extensions)
	}
	if strings.Contains(c.Extensions, ",") {
		return fmt.Errorf("handshake: more than one extension agreed: %q", c.Extensions)
	}
	params := strings.Split(c.Extensions, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return fmt.Errorf("handshake: unknown extension %q", c.Extensions)
	}
	c.Deflate = true
	for _, p := range params[1:] {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		switch strings.TrimSpace(name) {
		case "server_no_context_takeover":
			c.ServerNoTakeover = true
		case "client_no_context_takeover":
			// The generator never keeps context on its side anyway.
		case "server_max_window_bits":
			// The inflater keeps a 32 KiB window, enough for any.
		case "client_max_window_bits":
			bits, err := strconv.Atoi(value)
			if err != nil || bits < 8 || bits > 15 {
				return fmt.Errorf("handshake: bad client_max_window_bits in %q", c.Extensions)
			}
			c.ClientWindowBits = bits
		default:
			return fmt.Errorf("handshake: unknown permessage-deflate parameter in %q", c.Extensions)
		}
	}
	return nil
}

// Close closes the TCP connection.
func (c *Conn) Close() error { return c.nc.Close() }

// SetDeadline sets the deadline of the TCP connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Release drops the read buffers of an idle connection.
func (c *Conn) Release() {
	c.br, c.buf, c.out, c.hist, c.infl = nil, nil, nil, nil, nil
}

// Echo is the result of one round trip.
type Echo struct {
	WireBytes  int  // payload bytes of the server's reply, as sent
	Compressed bool // whether the reply was compressed
}

// ErrMismatch is returned when an echo differs from the message sent.
var ErrMismatch = errors.New("echo differs from the message sent")

// RoundTrip writes frame, reads the next message and checks that it is
// want, of type op (inflating it if it is compressed).
func (c *Conn) RoundTrip(frame []byte, op byte, want []byte) (Echo, error) {
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, 4096)
	}
	if _, err := c.nc.Write(frame); err != nil {
		return Echo{}, err
	}
	gotOp, compressed, msg, err := readMessage(c.br, c.buf)
	c.buf = msg
	if err != nil {
		return Echo{}, err
	}
	e := Echo{WireBytes: len(msg), Compressed: compressed}
	if gotOp != op {
		return e, fmt.Errorf("echo of opcode %d has opcode %d", op, gotOp)
	}
	if compressed {
		if !c.Deflate {
			return e, errors.New("compressed message without permessage-deflate")
		}
		if msg, err = c.inflate(msg); err != nil {
			return e, err
		}
	}
	if !bytes.Equal(msg, want) {
		return e, ErrMismatch
	}
	return e, nil
}

// tail ends a message's deflate stream: the 00 00 ff ff that the sender
// removed, then an empty final stored block so that the inflater reports
// io.EOF instead of asking for more.
var tail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

const window = 32 << 10

func (c *Conn) inflate(p []byte) ([]byte, error) {
	c.src = twoSlices{p, tail}
	var dict []byte
	if !c.ServerNoTakeover {
		dict = c.hist
	}
	if c.infl == nil {
		c.infl = flate.NewReaderDict(&c.src, dict)
	} else if err := c.infl.(flate.Resetter).Reset(&c.src, dict); err != nil {
		return nil, err
	}
	out := c.out[:0]
	for {
		if len(out) == cap(out) {
			out = append(out, 0)[:len(out)]
		}
		n, err := c.infl.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("inflate: %w", err)
		}
		if len(out) > maxMessage {
			return nil, errors.New("inflate: message too large")
		}
	}
	c.out = out
	if !c.ServerNoTakeover {
		c.hist = append(c.hist, out...)
		if len(c.hist) > window {
			c.hist = append(c.hist[:0], c.hist[len(c.hist)-window:]...)
		}
	}
	return out, nil
}

// twoSlices reads a then b, without copying them together.
type twoSlices struct{ a, b []byte }

func (s *twoSlices) Read(p []byte) (int, error) {
	if len(s.a) == 0 {
		s.a, s.b = s.b, nil
		if len(s.a) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, s.a)
	s.a = s.a[n:]
	return n, nil
}

func (s *twoSlices) ReadByte() (byte, error) {
	if len(s.a) == 0 {
		s.a, s.b = s.b, nil
		if len(s.a) == 0 {
			return 0, io.EOF
		}
	}
	b := s.a[0]
	s.a = s.a[1:]
	return b, nil
}

// CloseHandshake sends a close frame, reads until the server's close, and
// waits for the server to close the TCP connection, as RFC 6455 (7.1.1)
// asks of a client. A client that closes first races the server's own
// close: nbio's non-blocking mode then now and then drops a new
// connection that got the closed one's file descriptor (a stale epoll
// event of the old one closes it).
func (c *Conn) CloseHandshake(timeout time.Duration) error {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	if _, err := c.nc.Write(CloseFrame); err != nil {
		return err
	}
	if c.br == nil {
		c.br = bufio.NewReaderSize(c.nc, 512)
	}
	for {
		_, _, msg, err := readMessage(c.br, c.buf)
		c.buf = msg
		var ce *ErrClosed
		if errors.As(err, &ce) {
			break
		}
		if err != nil {
			return err
		}
	}
	var b [1]byte
	switch n, err := c.br.Read(b[:]); {
	case n > 0:
		return errors.New("data after the server's close frame")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return nil
	default:
		return fmt.Errorf("waiting for the server to close the connection: %w", err)
	}
}
