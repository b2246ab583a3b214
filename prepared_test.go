package websocket

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// connServer serves a Handler configured by cfg that sends each of its
// connections on the returned channel, then reads it until it fails.
func connServer(t *testing.T, cfg func(*Handler)) (*httptest.Server, <-chan *Conn) {
	t.Helper()
	conns := make(chan *Conn, 64)
	h := &Handler{Serve: func(c *Conn) {
		conns <- c
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}}
	if cfg != nil {
		cfg(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, conns
}

// nextConn returns the next connection the server accepted.
func nextConn(t *testing.T, conns <-chan *Conn) *Conn {
	t.Helper()
	select {
	case c := <-conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not get the connection")
		return nil
	}
}

// dialDeflate completes an RFC 6455 handshake (or hybi-07/08: d) that offers
// the permessage-deflate element offer, and checks it was accepted.
func dialDeflate(t *testing.T, srv *httptest.Server, d Dialect, offer string) *rawClient {
	t.Helper()
	c := dialRaw(t, srv)
	c.write([]byte(handshakeRequest(d, srv.Listener.Addr().String(), "/", "Sec-WebSocket-Extensions: "+offer)))
	status, header, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("%s handshake offering %q: %q", d, offer, raw)
	}
	if ext := header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		t.Fatalf("%s: permessage-deflate not accepted: %q", d, raw)
	}
	return c
}

// clientInflater decodes permessage-deflate messages as a client does,
// with the standard library's inflater: the server's payload, plus the
// 0x00 0x00 0xff 0xff it omits (RFC 7692 section 7.2.2), plus an empty final
// stored block so that the stream ends with io.EOF. It keeps the last 32 KiB
// of output as the next message's dictionary, which is what context takeover
// means for the client; without context takeover the server never refers to
// it, so keeping it is harmless.
type clientInflater struct {
	window []byte
}

func (f *clientInflater) inflate(payload []byte) ([]byte, error) {
	src := append(append([]byte(nil), payload...), 0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff)
	out, err := io.ReadAll(flate.NewReaderDict(bytes.NewReader(src), f.window))
	if err != nil {
		return nil, err
	}
	f.window = append(f.window, out...)
	if n := len(f.window); n > 32<<10 {
		f.window = append([]byte(nil), f.window[n-32<<10:]...)
	}
	return out, nil
}

// peer is a test client and how it connected.
type peer struct {
	*rawClient
	d       Dialect
	deflate bool
	inf     clientInflater
}

func (p *peer) String() string {
	if p.deflate {
		return p.d.String() + "+deflate"
	}
	return p.d.String()
}

// dialPeer connects a client of dialect d, offering permessage-deflate if
// deflate is set.
func dialPeer(t *testing.T, srv *httptest.Server, d Dialect, deflate bool, path string) *peer {
	t.Helper()
	if deflate {
		return &peer{rawClient: dialDeflate(t, srv, d, "permessage-deflate"), d: d, deflate: true}
	}
	return &peer{rawClient: dialDialect(t, srv, d, path), d: d}
}

// next reads one whole message, inflating it if it is compressed. Group and
// prepared messages are single frames.
func (p *peer) next() (op byte, msg []byte) {
	p.t.Helper()
	op, msg, err := p.tryNext()
	if err != nil {
		p.t.Fatal(err)
	}
	return op, msg
}

// tryNext reads one whole message, inflating it if it is compressed (group
// and prepared messages are single frames), and returns what goes wrong:
// reader goroutines cannot fail the test.
func (p *peer) tryNext() (byte, []byte, error) {
	if !p.d.hybi() {
		b, err := p.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if b != 0x00 {
			return 0, nil, fmt.Errorf("%s: hixie frame type %#x", p, b)
		}
		msg, err := p.br.ReadBytes(0xFF)
		if err != nil {
			return 0, nil, err
		}
		return 1, msg[:len(msg)-1], nil
	}
	f, err := p.tryReadFrame()
	switch {
	case err != nil:
		return 0, nil, err
	case !f.fin:
		return 0, nil, fmt.Errorf("%s: fragmented message", p)
	case f.rsv == 4 && p.deflate:
		out, err := p.inf.inflate(f.payload)
		if err != nil {
			err = fmt.Errorf("%s: inflating a message of %d bytes: %w", p, len(f.payload), err)
		}
		return f.op, out, err
	case f.rsv != 0:
		return 0, nil, fmt.Errorf("%s: frame with RSV bits %03b", p, f.rsv)
	}
	return f.op, f.payload, nil
}

// nextText reads a message that must be text.
func (p *peer) nextText() string {
	p.t.Helper()
	op, msg := p.next()
	if op != 1 {
		p.t.Fatalf("%s: opcode %d (%d bytes), want text", p, op, len(msg))
	}
	return string(msg)
}

// readN reads exactly n raw bytes.
func (c *rawClient) readN(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("reading %d bytes: %v", n, err)
	}
	return b
}

// TestPreparedMessageWireForms checks the exact bytes each dialect receives
// for one prepared message, and that each wire form is encoded once.
func TestPreparedMessageWireForms(t *testing.T) {
	srv, conns := connServer(t, func(h *Handler) { h.Compression = &CompressionOptions{} })
	text := strings.Repeat("One message, prepared once for every dialect ✓. ", 6) // 300 bytes: compressed
	data := []byte(text)
	pm, err := NewPreparedMessage(TextMessage, data)
	if err != nil {
		t.Fatal(err)
	}
	hixieFrame := append(append([]byte{0x00}, text...), 0xFF)
	plainFrame := append([]byte{0x81, 126, byte(len(text) >> 8), byte(len(text))}, text...)

	seen := map[string][]byte{} // the frame first returned for each form
	for _, tc := range []struct {
		d       Dialect
		deflate bool
	}{
		{Hixie75, false}, {Hixie76, false},
		{Hybi07, false}, {Hybi08, false}, {RFC6455, false},
		{RFC6455, true}, {Hybi08, true},
	} {
		p := dialPeer(t, srv, tc.d, tc.deflate, "/")
		c := nextConn(t, conns)
		if err := c.WritePreparedMessage(pm); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		f, compressed, err := pm.frame(c)
		if err != nil {
			t.Fatalf("%s: frame: %v", p, err)
		}
		var name string
		switch {
		case !tc.d.hybi():
			name = "hixie"
			if got := p.readN(len(hixieFrame)); !bytes.Equal(got, hixieFrame) {
				t.Errorf("%s received % x, want % x", p, got, hixieFrame)
			}
		case !tc.deflate:
			// The same frame for hybi-07, hybi-08 and RFC 6455.
			name = "plain"
			if got := p.readN(len(plainFrame)); !bytes.Equal(got, plainFrame) {
				t.Errorf("%s received % x, want % x", p, got, plainFrame)
			}
		default:
			name = "deflate"
			got := p.readFrame()
			if !got.fin || got.rsv != 4 || got.op != 1 {
				t.Errorf("%s: frame fin %v, rsv %03b, opcode %d; want a final text frame with RSV1", p, got.fin, got.rsv, got.op)
			}
			if len(got.payload) >= len(text) {
				t.Errorf("%s: %d compressed bytes for %d of repetitive text", p, len(got.payload), len(text))
			}
			if out, err := p.inf.inflate(got.payload); err != nil || string(out) != text {
				t.Errorf("%s: inflated to %q, %v", p, out, err)
			}
			if !compressed || !bytes.HasSuffix(f, got.payload) {
				t.Errorf("%s: the bytes sent are not the cached deflated form", p)
			}
		}
		if first, ok := seen[name]; !ok {
			seen[name] = f
		} else if unsafe.SliceData(first) != unsafe.SliceData(f) {
			t.Errorf("%s: the %s form was encoded again", p, name)
		}
	}
	// Encoded once per wire form: what the connections used is what pm keeps.
	if unsafe.SliceData(seen["hixie"]) != unsafe.SliceData(pm.hixie) || unsafe.SliceData(seen["plain"]) != unsafe.SliceData(*pm.plain.Load()) {
		t.Error("pm does not keep the forms it sent")
	}
	if len(pm.deflated) != 1 {
		t.Errorf("%d deflated forms for one compression setting", len(pm.deflated))
	}
	if !bytes.Equal(pm.data, data) || &pm.data[0] != &data[0] {
		t.Error("pm's data was copied or changed")
	}

	// Another compression level is another wire form.
	srv9, conns9 := connServer(t, func(h *Handler) { h.Compression = &CompressionOptions{Level: 9} })
	p := dialPeer(t, srv9, RFC6455, true, "/")
	if err := nextConn(t, conns9).WritePreparedMessage(pm); err != nil {
		t.Fatal(err)
	}
	if got := p.nextText(); got != text {
		t.Errorf("level 9: inflated to %q", got)
	}
	if len(pm.deflated) != 2 {
		t.Errorf("%d deflated forms for two compression settings", len(pm.deflated))
	}
}

// TestPreparedMessageUnsupported checks what a hixie connection refuses,
// and that the refusal leaves it usable.
func TestPreparedMessageUnsupported(t *testing.T) {
	if _, err := NewPreparedMessage(MessageType(9), nil); err == nil {
		t.Error("NewPreparedMessage accepted a control message type")
	}
	bin, err := NewPreparedMessage(BinaryMessage, []byte{0, 1, 2, 0xFF})
	if err != nil {
		t.Fatal(err)
	}
	withFF, _ := NewPreparedMessage(TextMessage, []byte("a\xffb"))
	ok, _ := NewPreparedMessage(TextMessage, []byte("still fine"))
	srv, conns := connServer(t, nil)
	for _, d := range []Dialect{Hixie75, Hixie76, RFC6455} {
		p := dialPeer(t, srv, d, false, "/")
		c := nextConn(t, conns)
		err := c.WritePreparedMessage(bin)
		switch {
		case d.hybi() && err != nil:
			t.Errorf("%s: binary: %v", d, err)
		case d.hybi():
			if op, msg := p.next(); op != 2 || !bytes.Equal(msg, []byte{0, 1, 2, 0xFF}) {
				t.Errorf("%s: binary arrived as opcode %d, % x", d, op, msg)
			}
		case !errors.Is(err, errors.ErrUnsupported):
			t.Errorf("%s: binary prepared message: %v, want an error wrapping errors.ErrUnsupported", d, err)
		}
		if !d.hybi() {
			if err := c.WritePreparedMessage(withFF); err == nil {
				t.Errorf("%s: text with a 0xFF byte was written", d)
			}
		}
		if err := c.WritePreparedMessage(ok); err != nil {
			t.Errorf("%s: after the refusals: %v", d, err)
		}
		if got := p.nextText(); got != "still fine" {
			t.Errorf("%s: after the refusals: %q", d, got)
		}
	}
}

// TestPreparedMessageContextTakeover interleaves a prepared message with
// the connection's own compressed messages under context takeover: the
// prepared frame refers to nothing before it, yet joins the history both
// sides keep, so the next message may refer to it.
func TestPreparedMessageContextTakeover(t *testing.T) {
	srv, conns := connServer(t, func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: true} })
	p := dialPeer(t, srv, RFC6455, true, "/")
	c := nextConn(t, conns)
	if ext := c.Extensions(); strings.Contains(ext, "server_no_context_takeover") {
		t.Fatalf("no context takeover: %q", ext)
	}

	// 2000 bytes of random JSON: compressed on their own to a fraction,
	// to a few bytes as a reference to a copy in the window.
	letters := dflText(2000, 3)
	pm, err := NewPreparedMessage(TextMessage, letters)
	if err != nil {
		t.Fatal(err)
	}
	first := "before: " + strings.Repeat("context ", 40)
	msgs := []string{first, string(letters), string(letters), first + string(letters)}
	for i, m := range msgs {
		if i == 1 {
			err = c.WritePreparedMessage(pm)
		} else {
			err = c.WriteText(m)
		}
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	for i, want := range msgs {
		f := p.readFrame()
		if f.rsv != 4 {
			t.Fatalf("message %d not compressed", i)
		}
		got, err := p.inf.inflate(f.payload)
		if err != nil || string(got) != want {
			t.Fatalf("message %d (%d compressed bytes): inflated to %d bytes, %v; want %d", i, len(f.payload), len(got), err, len(want))
		}
		if i == 1 && len(f.payload) < 400 {
			t.Errorf("the prepared message is %d bytes: does it refer to the connection's history?", len(f.payload))
		}
		if i >= 2 && len(f.payload) > 100 {
			t.Errorf("message %d: %d compressed bytes: the history lacks the prepared message", i, len(f.payload))
		}
		t.Logf("message %d: %d bytes, %d compressed", i, len(want), len(f.payload))
	}
}

// TestPreparedMessageConcurrent writes one prepared message from many
// goroutines to connections of every form at once, under -race.
func TestPreparedMessageConcurrent(t *testing.T) {
	srv, conns := connServer(t, func(h *Handler) { h.Compression = &CompressionOptions{} })
	pm, _ := NewPreparedMessage(TextMessage, []byte(strings.Repeat("concurrent ", 30)))
	var peers []*peer
	var cs []*Conn
	for _, d := range allDialects {
		for _, deflate := range []bool{false, true} {
			if deflate && !d.hybi() {
				continue
			}
			peers = append(peers, dialPeer(t, srv, d, deflate, "/"))
			cs = append(cs, nextConn(t, conns))
		}
	}
	const writes = 20
	errs := make(chan error, len(cs)*writes)
	for _, c := range cs {
		for range writes {
			go func() { errs <- c.WritePreparedMessage(pm) }()
		}
	}
	for range len(cs) * writes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range peers {
		for i := range writes {
			if got := p.nextText(); got != string(pm.data) {
				t.Fatalf("%s: message %d: %q", p, i, got)
			}
		}
	}
}
