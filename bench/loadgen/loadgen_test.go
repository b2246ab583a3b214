package loadgen

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// unmask turns a client frame into the server frame echoing it.
func unmask(t *testing.T, f []byte) []byte {
	t.Helper()
	n := int(f[1] & 0x7f)
	hdr := 2
	switch n {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	key := f[hdr : hdr+4]
	out := append([]byte{f[0], f[1] &^ 0x80}, f[2:hdr]...)
	for i, b := range f[hdr+4:] {
		out = append(out, b^key[i&3])
	}
	return out
}

func TestFrames(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := bytes.Repeat([]byte("ab"), n)[:n]
		f := MaskedFrame(OpBinary, p, false)
		op, compressed, got, err := readMessage(bufio.NewReader(bytes.NewReader(unmask(t, f))), nil)
		if err != nil || op != OpBinary || compressed || !bytes.Equal(got, p) {
			t.Errorf("%d bytes: op %d, compressed %v, equal %v, err %v", n, op, compressed, bytes.Equal(got, p), err)
		}
	}
	// A fragmented message with a ping between its fragments.
	wire := []byte{0x01, 2, 'h', 'e', 0x89, 0, 0x80, 3, 'l', 'l', 'o'}
	op, _, got, err := readMessage(bufio.NewReader(bytes.NewReader(wire)), nil)
	if err != nil || op != OpText || string(got) != "hello" {
		t.Errorf("fragmented: %d %q %v", op, got, err)
	}
	_, _, _, err = readMessage(bufio.NewReader(bytes.NewReader([]byte{0x88, 2, 0x03, 0xe9})), nil)
	if ce, ok := err.(*ErrClosed); !ok || ce.Code != 1001 {
		t.Errorf("close: %v", err)
	}
}

func TestInflateTakeover(t *testing.T) {
	// A server compressing with context takeover: the second message
	// refers to the first.
	var wire bytes.Buffer
	w, _ := flate.NewWriter(&wire, 5)
	msg := []byte(`{"event":"message","text":"hello hello hello"}`)
	c := &Conn{Deflate: true}
	for i := range 3 {
		wire.Reset()
		_, _ = w.Write(msg)
		_ = w.Flush()
		p := bytes.TrimSuffix(wire.Bytes(), []byte{0, 0, 0xff, 0xff})
		got, err := c.inflate(p)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d (%d bytes): %q, %v", i, len(p), got, err)
		}
	}
	// And a client message built by Deflate inflates alone.
	r := flate.NewReader(io.MultiReader(bytes.NewReader(Deflate(msg, 9)), bytes.NewReader(tail)))
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("Deflate: %q, %v", got, err)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d < -0.02 || d > 0.02 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestCloseHandshake runs CloseHandshake against servers that answer the
// close frame and then close the TCP connection, keep it open, or send
// more: only the first completes it.
func TestCloseHandshake(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(c net.Conn) // after the server's close frame
		want  string           // in the error; "" for none
	}{
		{"server closes", func(c net.Conn) { c.Close() }, ""},
		{"server keeps the connection", func(c net.Conn) { _, _ = io.Copy(io.Discard, c); c.Close() }, "waiting for the server to close"},
		{"server sends more", func(c net.Conn) { _, _ = c.Write([]byte{0x81, 0x01, 'x'}); c.Close() }, "data after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, rw, err := acceptRaw(w, r)
				if err != nil {
					return
				}
				if _, err := io.ReadFull(rw, make([]byte, len(CloseFrame))); err != nil {
					c.Close()
					return
				}
				_, _ = c.Write([]byte{0x88, 0x02, 0x03, 0xe8})
				tc.after(c)
			}))
			defer srv.Close()
			c, err := Dial(strings.TrimPrefix(srv.URL, "http://"), "", 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.CloseHandshake(300 * time.Millisecond)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("CloseHandshake: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// acceptRaw answers r's RFC 6455 handshake with 101 and hands over the
// connection, for test servers that write their frames by hand.
func acceptRaw(w http.ResponseWriter, r *http.Request) (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + AcceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	_ = rw.Flush()
	return c, rw, nil
}
