package websocket

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// The conformance suite: the families of a strict RFC 6455 conformance
// test (framing, ping/pong, reserved bits, opcodes, fragmentation, UTF-8,
// close, large messages in chunks), each case over raw TCP against the echo
// handler, asserting the exact frames or the close code that come back.

// conformanceCase sends wire and expects the frames want, byte for byte.
// Then: with failCode set, a close with that code and the TCP close; with
// ends set, the TCP close; otherwise the client closes (1000) and expects
// its close echoed exactly and the TCP close.
type conformanceCase struct {
	name     string
	wire     []byte
	chunk    int // TCP write size; 0 writes wire at once
	want     [][]byte
	failCode StatusCode
	ends     bool
}

// echoFrame is the frame the server sends for a message: one unfragmented,
// unmasked frame, encoded here independently of the server's encoder.
func echoFrame(op byte, payload []byte) []byte {
	f := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = append(f, 126, byte(n>>8), byte(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 127), uint64(n))
	}
	return append(f, payload...)
}

func frames(fs ...[]byte) []byte { return bytes.Join(fs, nil) }

// fragments splits payload into client frames of size n, the first with op.
func fragments(op byte, payload []byte, n int) []byte {
	var wire []byte
	for off := 0; ; off += n {
		end := min(off+n, len(payload))
		if off > 0 {
			op = 0
		}
		wire = append(wire, clientFrame(end == len(payload), op, payload[off:end])...)
		if end == len(payload) {
			return wire
		}
	}
}

func withRSV(frame []byte, rsv byte) []byte {
	f := bytes.Clone(frame)
	f[0] |= rsv << 4
	return f
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}

func binaryPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 131 >> 3)
	}
	return b
}

func conformanceCases() []conformanceCase {
	var cs []conformanceCase
	add := func(c conformanceCase) { cs = append(cs, c) }
	hello := clientFrame(true, 1, []byte("Hello"))
	helloEcho := echoFrame(1, []byte("Hello"))

	// Framing: text and binary, every length encoding, 0 to 16 MiB.
	for _, n := range []int{0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 20, 16 << 20} {
		text, bin := pattern(n), binaryPattern(n)
		add(conformanceCase{name: fmt.Sprintf("framing/text %d", n), wire: clientFrame(true, 1, text), want: [][]byte{echoFrame(1, text)}})
		add(conformanceCase{name: fmt.Sprintf("framing/binary %d", n), wire: clientFrame(true, 2, bin), want: [][]byte{echoFrame(2, bin)}})
	}
	// Large messages fed in chunks of various sizes.
	for _, chunk := range []int{1, 7, 64, 997, 4096, 65536, 1 << 20} {
		n := 64 << 10
		if chunk >= 4096 {
			n = 4 << 20
		}
		msg := binaryPattern(n)
		add(conformanceCase{name: fmt.Sprintf("chunked/%d bytes in %d-byte writes", n, chunk), wire: clientFrame(true, 2, msg), chunk: chunk, want: [][]byte{echoFrame(2, msg)}})
	}

	// Ping and pong.
	add(conformanceCase{name: "ping/empty", wire: clientFrame(true, 9, nil), want: [][]byte{echoFrame(10, nil)}})
	add(conformanceCase{name: "ping/125 bytes binary", wire: clientFrame(true, 9, binaryPattern(125)), want: [][]byte{echoFrame(10, binaryPattern(125))}})
	add(conformanceCase{name: "ping/126 bytes", wire: clientFrame(true, 9, make([]byte, 126)), failCode: StatusProtocolError})
	add(conformanceCase{name: "ping/fragmented", wire: frames(clientFrame(false, 9, []byte("a")), clientFrame(true, 0, []byte("b"))), failCode: StatusProtocolError})
	add(conformanceCase{name: "ping/in 1-byte writes", wire: clientFrame(true, 9, []byte("chunked ping")), chunk: 1, want: [][]byte{echoFrame(10, []byte("chunked ping"))}})
	var tenPings, tenPongs [][]byte
	for i := range 10 {
		p := fmt.Appendf(nil, "ping %d", i)
		tenPings = append(tenPings, clientFrame(true, 9, p))
		tenPongs = append(tenPongs, echoFrame(10, p))
	}
	add(conformanceCase{name: "ping/ten in a row", wire: frames(tenPings...), want: tenPongs})
	add(conformanceCase{name: "pong/unsolicited ignored", wire: frames(clientFrame(true, 10, []byte("unsolicited")), hello), want: [][]byte{helloEcho}})
	add(conformanceCase{name: "pong/empty unsolicited ignored", wire: frames(clientFrame(true, 10, nil), hello), want: [][]byte{helloEcho}})

	// Reserved bits, without a negotiated extension.
	for rsv := byte(1); rsv <= 7; rsv++ {
		add(conformanceCase{name: fmt.Sprintf("rsv/%d on text", rsv), wire: withRSV(hello, rsv), failCode: StatusProtocolError})
		add(conformanceCase{name: fmt.Sprintf("rsv/%d on text after a valid message", rsv), wire: frames(hello, withRSV(hello, rsv), hello), want: [][]byte{helloEcho}, failCode: StatusProtocolError})
	}
	add(conformanceCase{name: "rsv/on binary", wire: withRSV(clientFrame(true, 2, []byte{1, 2}), 2), failCode: StatusProtocolError})
	add(conformanceCase{name: "rsv/on ping", wire: withRSV(clientFrame(true, 9, []byte("x")), 4), failCode: StatusProtocolError})
	add(conformanceCase{name: "rsv/on close", wire: withRSV(clientFrame(true, 8, closePayload(1000, "")), 1), failCode: StatusProtocolError})

	// Opcodes.
	for _, op := range []byte{3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF} {
		add(conformanceCase{name: fmt.Sprintf("opcode/%#x", op), wire: clientFrame(true, op, nil), failCode: StatusProtocolError})
		add(conformanceCase{name: fmt.Sprintf("opcode/%#x with payload after a valid message", op), wire: frames(hello, clientFrame(true, op, []byte("reserved")), hello), want: [][]byte{helloEcho}, failCode: StatusProtocolError})
	}

	// Fragmentation, with control frames between fragments.
	fragmented := []byte("fragmented message ✓")
	add(conformanceCase{name: "fragmentation/two fragments", wire: frames(clientFrame(false, 1, fragmented[:4]), clientFrame(true, 0, fragmented[4:])), want: [][]byte{echoFrame(1, fragmented)}})
	add(conformanceCase{name: "fragmentation/1-byte fragments", wire: fragments(1, fragmented, 1), want: [][]byte{echoFrame(1, fragmented)}})
	add(conformanceCase{name: "fragmentation/empty fragments", wire: frames(clientFrame(false, 2, nil), clientFrame(false, 0, nil), clientFrame(true, 0, nil)), want: [][]byte{echoFrame(2, nil)}})
	add(conformanceCase{name: "fragmentation/ping between fragments", wire: frames(clientFrame(false, 1, fragmented[:4]), clientFrame(true, 9, []byte("mid")), clientFrame(true, 0, fragmented[4:])), want: [][]byte{echoFrame(10, []byte("mid")), echoFrame(1, fragmented)}})
	add(conformanceCase{name: "fragmentation/pong between fragments", wire: frames(clientFrame(false, 1, fragmented[:4]), clientFrame(true, 10, []byte("mid")), clientFrame(true, 0, fragmented[4:])), want: [][]byte{echoFrame(1, fragmented)}})
	add(conformanceCase{name: "fragmentation/ping between fragments in 1-byte writes", wire: frames(clientFrame(false, 1, fragmented[:4]), clientFrame(true, 9, []byte("mid")), clientFrame(true, 0, fragmented[4:])), chunk: 1, want: [][]byte{echoFrame(10, []byte("mid")), echoFrame(1, fragmented)}})
	var stream []byte
	var streamPongs [][]byte
	big := binaryPattern(100 << 10)
	for i := 0; i < len(big); i += 1000 {
		op := byte(0)
		if i == 0 {
			op = 2
		}
		last := i+1000 >= len(big)
		stream = append(stream, clientFrame(last, op, big[i:min(i+1000, len(big))])...)
		if !last {
			stream = append(stream, clientFrame(true, 9, fmt.Appendf(nil, "%d", i))...)
			streamPongs = append(streamPongs, echoFrame(10, fmt.Appendf(nil, "%d", i)))
		}
	}
	add(conformanceCase{name: "fragmentation/ping after every fragment", wire: stream, want: append(streamPongs, echoFrame(2, big))})
	add(conformanceCase{name: "fragmentation/continuation without a message", wire: clientFrame(true, 0, []byte("x")), failCode: StatusProtocolError})
	add(conformanceCase{name: "fragmentation/continuation after the final frame", wire: frames(hello, clientFrame(true, 0, []byte("x"))), want: [][]byte{helloEcho}, failCode: StatusProtocolError})
	add(conformanceCase{name: "fragmentation/text inside a fragmented message", wire: frames(clientFrame(false, 1, []byte("a")), clientFrame(true, 1, []byte("b"))), failCode: StatusProtocolError})
	add(conformanceCase{name: "fragmentation/binary inside a fragmented message", wire: frames(clientFrame(false, 2, []byte("a")), clientFrame(false, 2, []byte("b"))), failCode: StatusProtocolError})
	add(conformanceCase{name: "fragmentation/fragmented close", wire: frames(clientFrame(false, 8, closePayload(1000, "")), clientFrame(true, 0, nil)), failCode: StatusProtocolError})
	add(conformanceCase{name: "fragmentation/unmasked frame", wire: []byte{0x81, 0x02, 'h', 'i'}, failCode: StatusProtocolError})

	// UTF-8: valid text is echoed, also split into 1-byte fragments;
	// invalid text fails with 1007, whole or split.
	for _, s := range []string{"κόσμε", "\x00", "\x7f", "\u0080", "\u07ff", "\u0800", "\uffff", "\U00010000", "\U0010ffff", "\ufffd", "\ud7ff", "\ue000", "Hello-µ@ßöäüàá-UTF-8!!"} {
		add(conformanceCase{name: fmt.Sprintf("utf8/valid %+q", s), wire: clientFrame(true, 1, []byte(s)), want: [][]byte{echoFrame(1, []byte(s))}})
		add(conformanceCase{name: fmt.Sprintf("utf8/valid %+q in 1-byte fragments", s), wire: fragments(1, []byte(s), 1), want: [][]byte{echoFrame(1, []byte(s))}})
	}
	for _, s := range []string{"\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x88\x80\x80\xaf", "\xed\xa0\x80", "\xed\xbf\xbf", "\xed\xa0\x80\xed\xb0\x80", "\xf4\x90\x80\x80", "\xfe", "\xff", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", "\xc3", "κόσμε\xe2\x82"} {
		add(conformanceCase{name: fmt.Sprintf("utf8/invalid %+q", s), wire: clientFrame(true, 1, []byte(s)), failCode: StatusInvalidPayload})
		add(conformanceCase{name: fmt.Sprintf("utf8/invalid %+q in 1-byte fragments", s), wire: fragments(1, []byte(s), 1), failCode: StatusInvalidPayload})
	}
	// Fail fast: the message is never finished, yet the close must come.
	bad := []byte("κόσμε\xed\xa0\x80 and the rest")
	add(conformanceCase{name: "utf8/fail fast on a non-final fragment", wire: clientFrame(false, 1, bad), failCode: StatusInvalidPayload})
	partial := clientFrame(true, 1, append(bad, make([]byte, 1000)...))
	add(conformanceCase{name: "utf8/fail fast inside a partial frame", wire: partial[:8+len(bad)], failCode: StatusInvalidPayload})
	add(conformanceCase{name: "utf8/fail fast in a later fragment", wire: frames(clientFrame(false, 1, []byte("valid ")), clientFrame(false, 0, []byte("\xf4\x90"))), failCode: StatusInvalidPayload})

	// Close codes and reasons.
	for _, code := range []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		p := closePayload(code, "")
		add(conformanceCase{name: fmt.Sprintf("close/code %d echoed", code), wire: clientFrame(true, 8, p), want: [][]byte{echoFrame(8, p)}, ends: true})
	}
	for _, code := range []StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(conformanceCase{name: fmt.Sprintf("close/code %d refused", code), wire: clientFrame(true, 8, closePayload(code, "")), failCode: StatusProtocolError})
	}
	reason := strings.Repeat("ü", 61) + "x" // 123 bytes
	add(conformanceCase{name: "close/empty", wire: clientFrame(true, 8, nil), want: [][]byte{echoFrame(8, nil)}, ends: true})
	add(conformanceCase{name: "close/123-byte UTF-8 reason", wire: clientFrame(true, 8, closePayload(1000, reason)), want: [][]byte{echoFrame(8, closePayload(1000, reason))}, ends: true})
	add(conformanceCase{name: "close/124-byte reason", wire: clientFrame(true, 8, closePayload(1000, reason+"x")), failCode: StatusProtocolError})
	add(conformanceCase{name: "close/invalid UTF-8 reason", wire: clientFrame(true, 8, closePayload(1000, "\xce\xba\xed\xa0\x80")), failCode: StatusInvalidPayload})
	add(conformanceCase{name: "close/1-byte payload", wire: clientFrame(true, 8, []byte{0x03}), failCode: StatusProtocolError})
	add(conformanceCase{name: "close/data after close ignored", wire: frames(clientFrame(true, 8, closePayload(1000, "")), hello, clientFrame(true, 9, nil)), want: [][]byte{echoFrame(8, closePayload(1000, ""))}, ends: true})
	add(conformanceCase{name: "close/in the middle of a fragmented message", wire: frames(clientFrame(false, 1, []byte("part")), clientFrame(true, 8, closePayload(1000, ""))), want: [][]byte{echoFrame(8, closePayload(1000, ""))}, ends: true})
	add(conformanceCase{name: "close/in 1-byte writes", wire: clientFrame(true, 8, closePayload(4000, "chunked")), chunk: 1, want: [][]byte{echoFrame(8, closePayload(4000, "chunked"))}, ends: true})

	// The read limit, decided from the header, before the payload is sent.
	over := clientFrame(true, 2, nil)
	over[1] = 0x80 | 127
	over = append(over[:2], append(binary.BigEndian.AppendUint64(nil, 64<<20+1), over[2:]...)...)
	add(conformanceCase{name: "limits/frame header over the read limit", wire: over, failCode: StatusMessageTooBig})
	msb := bytes.Clone(over)
	msb[2] = 0x80
	add(conformanceCase{name: "limits/length with the most significant bit set", wire: msb, failCode: StatusProtocolError})
	return cs
}

func TestConformance(t *testing.T) {
	srv, _ := echoServer(t, func(h *Handler) { h.ReadLimit = 64 << 20 })
	cases := conformanceCases()
	for _, d := range []Dialect{RFC6455, Hybi08, Hybi07} {
		t.Run(d.String(), func(t *testing.T) {
			for _, tc := range cases {
				if d != RFC6455 && len(tc.wire) > 1<<20 {
					continue // the framing is shared; the largest cases once suffice
				}
				t.Run(tc.name, func(t *testing.T) { runConformance(t, dialDialect(t, srv, d, "/"), tc) })
			}
		})
	}
	// After every violation above, the server still serves.
	c := dialDialect(t, srv, RFC6455, "/")
	c.writeText(RFC6455, "still serving")
	if _, msg := c.readMessage(RFC6455); string(msg) != "still serving" {
		t.Fatalf("after the suite: %q", msg)
	}
}

// runConformance runs tc over c, a connection just opened to an echo server.
func runConformance(t *testing.T, c *rawClient, tc conformanceCase) {
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() {
		if tc.chunk == 0 {
			c.conn.Write(tc.wire)
			return
		}
		for off := 0; off < len(tc.wire); off += tc.chunk {
			if _, err := c.conn.Write(tc.wire[off:min(off+tc.chunk, len(tc.wire))]); err != nil {
				return // the server failed the connection: expected in some cases
			}
		}
	}()
	for i, want := range tc.want {
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c.br, got); err != nil {
			t.Fatalf("frame %d: %v (read %q)", i, err, head(got))
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %q, want %q", i, head(got), head(want))
		}
	}
	switch {
	case tc.failCode != 0:
		f, err := c.tryReadFrame()
		if err != nil || f.op != 8 || len(f.payload) < 2 {
			t.Fatalf("expected a close frame, got %+v, %v", f, err)
		}
		if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != tc.failCode {
			t.Fatalf("close code %v (%q), want %v", code, f.payload[2:], tc.failCode)
		}
	case !tc.ends:
		c.write(clientFrame(true, 8, closePayload(1000, "done")))
		if f := c.readFrame(); f.op != 8 || !bytes.Equal(f.payload, closePayload(1000, "done")) {
			t.Fatalf("close answered with %+v", f)
		}
	}
	c.expectEOF()
}

func head(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}
