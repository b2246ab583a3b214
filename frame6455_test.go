package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"testing"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, math.MaxInt} {
		for _, fin := range []bool{true, false} {
			hdr := appendFrameHeader(nil, fin, opBinary, false, n)
			// A client header is the same with the mask bit and key.
			hdr[1] |= 0x80
			hdr = append(hdr, 1, 2, 3, 4)
			h, err := readFrameHeader(bufio.NewReader(bytes.NewReader(hdr)))
			if err != nil {
				t.Fatal(err)
			}
			if h.fin != fin || h.op != opBinary || h.length != int64(n) || !h.masked || h.mask != [4]byte{1, 2, 3, 4} || h.rsv != 0 {
				t.Fatalf("length %d fin %v: decoded %+v", n, fin, h)
			}
		}
	}
	// The shortest encoding is used: 125 in one byte, 126 in two, 65536 in eight.
	for n, size := range map[int]int{125: 2, 126: 4, 65535: 4, 65536: 10} {
		if got := len(appendFrameHeader(nil, true, opText, false, n)); got != size {
			t.Errorf("header of length %d is %d bytes, want %d", n, got, size)
		}
	}
}

func TestFrameHeaderErrors(t *testing.T) {
	if _, err := readFrameHeader(bufio.NewReader(bytes.NewReader([]byte{0x82, 0xFE, 0x01}))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated header: %v", err)
	}
	msb := []byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}
	var pe *ProtocolError
	if _, err := readFrameHeader(bufio.NewReader(bytes.NewReader(msb))); !errors.As(err, &pe) || pe.Code != StatusProtocolError {
		t.Fatalf("length with MSB set: %v", err)
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	for _, n := range []int{0, 1, 3, 7, 8, 15, 16, 17, 31, 100, 4099} {
		for start := range 4 {
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(i * 31)
			}
			want := bytes.Clone(data)
			for i := range want {
				want[i] ^= key[(start+i)%4]
			}
			// Masked in two uneven pieces, continuing the key position.
			cut := n / 3
			pos := maskBytes(key, start, data[:cut])
			pos = maskBytes(key, pos, data[cut:])
			if !bytes.Equal(data, want) || pos != (start+n)%4 {
				t.Fatalf("n=%d start=%d: mask mismatch (pos %d)", n, start, pos)
			}
		}
	}
}

func BenchmarkMaskBytes(b *testing.B) {
	data := make([]byte, 16<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		maskBytes([4]byte{1, 2, 3, 4}, 0, data)
	}
}
