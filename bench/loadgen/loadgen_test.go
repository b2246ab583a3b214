package loadgen

import (
	"bufio"
	"bytes"
	"io"
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
