package websocket

import (
	"bytes"
	stdflate "compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
	"time"

	kflate "github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692), tested over real sockets with the raw
// client of client_test.go. The client side compresses with compress/flate
// (or klauspost's flate where a window below 32 KiB is needed) and checks
// what the server sends with compress/flate and with an independent DEFLATE
// decoder written here from RFC 1951, which also reports the farthest
// back-reference, so that window sizes can be verified.

// ---------------------------------------------------------------------------
// An independent DEFLATE decoder (RFC 1951), after the structure of zlib's
// puff: canonical Huffman codes decoded a bit at a time.

var errDflShort = errors.New("deflate: input ends inside a block")

type dflBits struct {
	in  []byte
	pos int
	buf uint32
	cnt uint
}

func (b *dflBits) bits(n uint) (int, error) {
	for b.cnt < n {
		if b.pos >= len(b.in) {
			return 0, errDflShort
		}
		b.buf |= uint32(b.in[b.pos]) << b.cnt
		b.pos++
		b.cnt += 8
	}
	v := b.buf & (1<<n - 1)
	b.buf >>= n
	b.cnt -= n
	return int(v), nil
}

// dflHuff is a canonical Huffman code: the count of codes of each length
// and the symbols ordered by code.
type dflHuff struct {
	count  [16]int
	symbol []int
}

// dflBuild builds the code of the given code lengths; left is 0 for a
// complete code, > 0 for an incomplete one, < 0 for an over-subscribed one.
func dflBuild(lengths []int) (h *dflHuff, left int) {
	h = &dflHuff{symbol: make([]int, len(lengths))}
	for _, l := range lengths {
		h.count[l]++
	}
	if h.count[0] == len(lengths) {
		return h, 0 // no codes
	}
	left = 1
	for l := 1; l <= 15; l++ {
		left <<= 1
		left -= h.count[l]
		if left < 0 {
			return h, left
		}
	}
	var offs [16]int
	for l := 1; l < 15; l++ {
		offs[l+1] = offs[l] + h.count[l]
	}
	for sym, l := range lengths {
		if l != 0 {
			h.symbol[offs[l]] = sym
			offs[l]++
		}
	}
	return h, left
}

func (b *dflBits) decode(h *dflHuff) (int, error) {
	code, first, index := 0, 0, 0
	for l := 1; l <= 15; l++ {
		bit, err := b.bits(1)
		if err != nil {
			return 0, err
		}
		code |= bit
		count := h.count[l]
		if code-count < first {
			return h.symbol[index+code-first], nil
		}
		index += count
		first += count
		first <<= 1
		code <<= 1
	}
	return 0, errors.New("deflate: invalid Huffman code")
}

var (
	dflLenBase  = [29]int{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	dflLenExtra = [29]uint{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	dflDistBase = [30]int{1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577}
	dflDistExtr = [30]uint{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13}

	dflFixedOnce           sync.Once
	dflFixedLen, dflFixedD *dflHuff
)

func dflFixed() (*dflHuff, *dflHuff) {
	dflFixedOnce.Do(func() {
		var l [288]int
		for i := range l {
			switch {
			case i < 144:
				l[i] = 8
			case i < 256:
				l[i] = 9
			case i < 280:
				l[i] = 7
			default:
				l[i] = 8
			}
		}
		dflFixedLen, _ = dflBuild(l[:])
		var d [30]int
		for i := range d {
			d[i] = 5
		}
		dflFixedD, _ = dflBuild(d[:])
	})
	return dflFixedLen, dflFixedD
}

// dflDecoded is what dflDecode found.
type dflDecoded struct {
	out      []byte
	maxDist  int  // the farthest back-reference
	intoDict bool // some back-reference reached into the dictionary
	final    bool // the stream ended with a block with BFINAL set
}

// dflDecode decodes in, which follows dict (the LZ77 window of earlier
// messages), up to a block with BFINAL set or up to the end of the input at
// a block boundary (a message with its tail appended ends so).
func dflDecode(in, dict []byte) (dflDecoded, error) {
	var res dflDecoded
	b := &dflBits{in: in}
	hist := append(make([]byte, 0, len(dict)+4*len(in)), dict...)
	start := len(dict)
	for {
		if b.pos == len(b.in) && b.cnt == 0 {
			res.out = hist[start:]
			return res, nil
		}
		final, err := b.bits(1)
		if err != nil {
			return res, err
		}
		typ, err := b.bits(2)
		if err != nil {
			return res, err
		}
		switch typ {
		case 0:
			b.buf, b.cnt = 0, 0
			if len(b.in)-b.pos < 4 {
				return res, errDflShort
			}
			n := int(binary.LittleEndian.Uint16(b.in[b.pos:]))
			if ^uint16(n) != binary.LittleEndian.Uint16(b.in[b.pos+2:]) {
				return res, errors.New("deflate: stored block length does not match its complement")
			}
			b.pos += 4
			if len(b.in)-b.pos < n {
				return res, errDflShort
			}
			hist = append(hist, b.in[b.pos:b.pos+n]...)
			b.pos += n
		case 1:
			lc, dc := dflFixed()
			hist, err = b.codes(hist, start, lc, dc, &res)
		case 2:
			var lc, dc *dflHuff
			if lc, dc, err = b.dynamic(); err == nil {
				hist, err = b.codes(hist, start, lc, dc, &res)
			}
		default:
			return res, errors.New("deflate: invalid block type 3")
		}
		if err != nil {
			return res, err
		}
		if final == 1 {
			res.final = true
			res.out = hist[start:]
			return res, nil
		}
	}
}

func (b *dflBits) dynamic() (lc, dc *dflHuff, err error) {
	var v [3]int
	for i, n := range []uint{5, 5, 4} {
		if v[i], err = b.bits(n); err != nil {
			return nil, nil, err
		}
	}
	nlen, ndist, ncode := v[0]+257, v[1]+1, v[2]+4
	if nlen > 286 || ndist > 30 {
		return nil, nil, errors.New("deflate: too many length or distance codes")
	}
	order := [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
	var cl [19]int
	for i := range ncode {
		if cl[order[i]], err = b.bits(3); err != nil {
			return nil, nil, err
		}
	}
	clc, left := dflBuild(cl[:])
	if left != 0 {
		return nil, nil, errors.New("deflate: incomplete code length code")
	}
	lengths := make([]int, nlen+ndist)
	for i := 0; i < len(lengths); {
		sym, err := b.decode(clc)
		if err != nil {
			return nil, nil, err
		}
		if sym < 16 {
			lengths[i] = sym
			i++
			continue
		}
		l, rep := 0, 0
		switch sym {
		case 16:
			if i == 0 {
				return nil, nil, errors.New("deflate: repeat with no previous length")
			}
			l = lengths[i-1]
			rep, err = b.bits(2)
			rep += 3
		case 17:
			rep, err = b.bits(3)
			rep += 3
		default:
			rep, err = b.bits(7)
			rep += 11
		}
		if err != nil {
			return nil, nil, err
		}
		if i+rep > len(lengths) {
			return nil, nil, errors.New("deflate: code lengths overflow")
		}
		for range rep {
			lengths[i] = l
			i++
		}
	}
	if lengths[256] == 0 {
		return nil, nil, errors.New("deflate: no end-of-block code")
	}
	lc, left = dflBuild(lengths[:nlen])
	if left < 0 || left > 0 && nlen != lc.count[0]+lc.count[1] {
		return nil, nil, errors.New("deflate: bad literal/length code")
	}
	dc, left = dflBuild(lengths[nlen:])
	if left < 0 || left > 0 && ndist != dc.count[0]+dc.count[1] {
		return nil, nil, errors.New("deflate: bad distance code")
	}
	return lc, dc, nil
}

func (b *dflBits) codes(hist []byte, start int, lc, dc *dflHuff, res *dflDecoded) ([]byte, error) {
	for {
		sym, err := b.decode(lc)
		if err != nil {
			return hist, err
		}
		switch {
		case sym < 256:
			hist = append(hist, byte(sym))
			continue
		case sym == 256:
			return hist, nil
		case sym > 285:
			return hist, errors.New("deflate: invalid length symbol")
		}
		sym -= 257
		extra, err := b.bits(dflLenExtra[sym])
		if err != nil {
			return hist, err
		}
		length := dflLenBase[sym] + extra
		dsym, err := b.decode(dc)
		if err != nil {
			return hist, err
		}
		if dsym >= 30 {
			return hist, errors.New("deflate: invalid distance symbol")
		}
		if extra, err = b.bits(dflDistExtr[dsym]); err != nil {
			return hist, err
		}
		dist := dflDistBase[dsym] + extra
		if dist > len(hist) {
			return hist, fmt.Errorf("deflate: distance %d too far back (%d bytes of history)", dist, len(hist))
		}
		res.maxDist = max(res.maxDist, dist)
		if dist > len(hist)-start {
			res.intoDict = true
		}
		for range length {
			hist = append(hist, hist[len(hist)-dist])
		}
	}
}

// ---------------------------------------------------------------------------
// A tiny DEFLATE encoder for hand-made streams: one fixed Huffman block of
// literals and matches, then a sync flush whose 4-byte tail is cut off, as
// RFC 7692 sends it.

type dflBitWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *dflBitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

// code writes a Huffman code, most significant bit first.
func (w *dflBitWriter) code(c uint64, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits(c>>uint(i)&1, 1)
	}
}

// zeros writes n zero bits quickly.
func (w *dflBitWriter) zeros(n int) {
	for n > 0 && w.nacc != 0 {
		w.bits(0, 1)
		n--
	}
	w.out = append(w.out, make([]byte, n/8)...)
	for range n % 8 {
		w.bits(0, 1)
	}
}

// syncFlush writes an empty stored block and returns the stream without
// its last 4 bytes (0x00 0x00 0xff 0xff).
func (w *dflBitWriter) syncFlush() []byte {
	w.bits(0, 3)
	if w.nacc > 0 {
		w.bits(0, 8-w.nacc)
	}
	return w.out // the LEN and NLEN bytes, 00 00 ff ff, are the tail
}

func (w *dflBitWriter) fixedSym(sym int) {
	switch {
	case sym < 144:
		w.code(uint64(0x30+sym), 8)
	case sym < 256:
		w.code(uint64(0x190+sym-144), 9)
	case sym < 280:
		w.code(uint64(sym-256), 7)
	default:
		w.code(uint64(0xc0+sym-280), 8)
	}
}

// dflToken is a literal (length 0) or a match.
type dflToken struct {
	lit          byte
	length, dist int
}

// dflFixedMessage encodes tokens as one fixed Huffman block (BFINAL clear)
// and returns the message payload (without the tail).
func dflFixedMessage(tokens ...dflToken) []byte {
	w := &dflBitWriter{}
	w.bits(0, 1)
	w.bits(1, 2)
	for _, tk := range tokens {
		if tk.length == 0 {
			w.fixedSym(int(tk.lit))
			continue
		}
		i := 28
		for dflLenBase[i] > tk.length {
			i--
		}
		w.fixedSym(257 + i)
		w.bits(uint64(tk.length-dflLenBase[i]), dflLenExtra[i])
		j := 29
		for dflDistBase[j] > tk.dist {
			j--
		}
		w.code(uint64(j), 5)
		w.bits(uint64(tk.dist-dflDistBase[j]), dflDistExtr[j])
	}
	w.fixedSym(256)
	return w.syncFlush()
}

func dflLiterals(s string) []dflToken {
	var ts []dflToken
	for i := 0; i < len(s); i++ {
		ts = append(ts, dflToken{lit: s[i]})
	}
	return ts
}

// dflZeroBomb returns a compressed message payload (without the tail) of one
// dynamic Huffman block that inflates to 1+258*matches zero bytes: a literal
// 0, then matches of length 258 at distance 1 coded in 2 bits each, the
// densest DEFLATE allows (1032:1).
func dflZeroBomb(matches int) []byte {
	w := &dflBitWriter{}
	w.bits(0, 1)  // BFINAL
	w.bits(2, 2)  // dynamic Huffman
	w.bits(29, 5) // HLIT: 286 literal/length codes
	w.bits(0, 5)  // HDIST: 1 distance code
	w.bits(14, 4) // HCLEN: 18 code length codes
	// Code length code: 18 in 1 bit ("0"), 1 and 2 in 2 bits ("10", "11").
	cl := map[int]uint64{18: 1, 2: 2, 1: 2}
	for _, sym := range []int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1} {
		w.bits(cl[sym], 3)
	}
	zeros := func(n int) { // runs of zero lengths with symbol 18
		for n > 0 {
			r := min(n, 138)
			w.code(0, 1)
			w.bits(uint64(r-11), 7)
			n -= r
		}
	}
	// Literal/length lengths: 0 → 2, 1-255 → 0, 256 → 2, 257-284 → 0,
	// 285 → 1; then the distance code 0 → 1.
	w.code(3, 2)
	zeros(255)
	w.code(3, 2)
	zeros(28)
	w.code(2, 2)
	w.code(2, 2)
	// Codes: 285 "0", literal 0 "10", end of block "11"; distance 0 "0".
	w.code(2, 2)
	w.zeros(2 * matches)
	w.code(3, 2)
	return w.syncFlush()
}

// ---------------------------------------------------------------------------
// The client's side of permessage-deflate.

// dflTail is what RFC 7692 strips from a compressed message and the
// receiver appends; dflEnd adds a final empty stored block, so that
// compress/flate ends with io.EOF.
var (
	dflTail = []byte{0x00, 0x00, 0xff, 0xff}
	dflEnd  = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}
)

// dflClient is the client's compression state on one connection.
type dflClient struct {
	takeover       bool // the client keeps its LZ77 window between messages
	bits           int  // the client's window bits
	sw             *stdflate.Writer
	kw             *kflate.Writer
	out            bytes.Buffer
	serverTakeover bool   // the server keeps its window
	serverHist     []byte // the last 32 KiB of the server's compressed messages
	serverBits     int    // the window the server agreed to
}

func newDflClient(takeover, serverTakeover bool, clientBits, serverBits int) *dflClient {
	c := &dflClient{takeover: takeover, serverTakeover: serverTakeover, bits: clientBits, serverBits: serverBits}
	if clientBits == 15 {
		c.sw, _ = stdflate.NewWriter(&c.out, stdflate.BestSpeed)
	} else {
		c.kw, _ = kflate.NewWriterWindow(&c.out, 1<<clientBits)
	}
	return c
}

// compress returns the payload of a compressed message: DEFLATE with a sync
// flush, without its 4-byte tail.
func (c *dflClient) compress(t testing.TB, p []byte) []byte {
	t.Helper()
	c.out.Reset()
	var err error
	if c.sw != nil {
		if !c.takeover {
			c.sw.Reset(&c.out)
		}
		if _, err = c.sw.Write(p); err == nil {
			err = c.sw.Flush()
		}
	} else {
		if !c.takeover {
			c.kw.Reset(&c.out)
		}
		if _, err = c.kw.Write(p); err == nil {
			err = c.kw.Flush()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := c.out.Bytes()
	if !bytes.HasSuffix(out, dflTail) {
		t.Fatalf("client deflate output does not end with a sync flush: % x", out[max(0, len(out)-8):])
	}
	return bytes.Clone(out[:len(out)-4])
}

// inflate decompresses a compressed message of the server with
// compress/flate, with the window of the earlier ones if the server keeps it.
func (c *dflClient) inflate(payload []byte) ([]byte, error) {
	var dict []byte
	if c.serverTakeover {
		dict = c.serverHist
	}
	r := stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(dflEnd)), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		return out, err
	}
	c.remember(out)
	return out, nil
}

// decode decompresses a compressed message of the server with the decoder
// above, and checks its back-references stay within the server's window.
func (c *dflClient) decode(t testing.TB, payload []byte) dflDecoded {
	t.Helper()
	var dict []byte
	if c.serverTakeover {
		dict = c.serverHist[max(0, len(c.serverHist)-1<<c.serverBits):]
	}
	d, err := dflDecode(append(bytes.Clone(payload), dflTail...), dict)
	if err != nil {
		t.Fatalf("decoding the server's message (window %d bits, context %v): %v", c.serverBits, c.serverTakeover, err)
	}
	if d.final {
		t.Errorf("the server's message has a block with BFINAL set")
	}
	if d.maxDist > 1<<c.serverBits {
		t.Errorf("the server's message refers %d bytes back, beyond its window of %d", d.maxDist, 1<<c.serverBits)
	}
	if !c.serverTakeover && d.intoDict {
		t.Errorf("the server's message refers to an earlier message without context takeover")
	}
	c.remember(d.out)
	return d
}

func (c *dflClient) remember(out []byte) {
	c.serverHist = append(c.serverHist, out...)
	if len(c.serverHist) > 64<<10 {
		c.serverHist = append([]byte(nil), c.serverHist[len(c.serverHist)-32<<10:]...)
	}
}

// dflWire frames a client message: payload cut into fragments of the sizes
// in frags (cycled; nil: one frame), RSV1 on the first frame if compressed.
func dflWire(op byte, payload []byte, compressed bool, frags []int) []byte {
	var wire []byte
	for off, i := 0, 0; ; i++ {
		n := len(payload) - off
		if len(frags) > 0 {
			n = min(n, frags[i%len(frags)])
		}
		end := off + n
		o := op
		if off > 0 {
			o = 0
		}
		f := clientFrame(end == len(payload), o, payload[off:end])
		if compressed && off == 0 {
			f[0] |= 0x40
		}
		wire = append(wire, f...)
		if off = end; off == len(payload) {
			return wire
		}
	}
}

// writeChunks writes b in TCP writes of chunk bytes (0: at once).
func (c *rawClient) writeChunks(b []byte, chunk int) {
	c.t.Helper()
	if chunk <= 0 {
		c.write(b)
		return
	}
	for off := 0; off < len(b); off += chunk {
		c.write(b[off:min(off+chunk, len(b))])
	}
}

// dflMessage is a data message as the server sent it.
type dflMessage struct {
	op         byte
	compressed bool // RSV1 on its first frame
	frames     int
	payload    []byte
	pongs      [][]byte
}

// readDflMessage reads the server's next data message, checking that only
// its first frame may carry RSV1 and that control frames never do.
func (c *rawClient) readDflMessage() dflMessage {
	c.t.Helper()
	var m dflMessage
	for {
		f := c.readFrame()
		if f.op >= 8 {
			if f.rsv != 0 {
				c.t.Fatalf("control frame %#x with RSV bits %03b", f.op, f.rsv)
			}
			switch f.op {
			case 8:
				code := StatusNoStatusRcvd
				if len(f.payload) >= 2 {
					code = StatusCode(binary.BigEndian.Uint16(f.payload))
				}
				c.t.Fatalf("the server closed with %d %q while a message was expected", code, f.payload[min(2, len(f.payload)):])
			case 10:
				m.pongs = append(m.pongs, f.payload)
			}
			continue
		}
		if m.frames == 0 {
			if f.op != 1 && f.op != 2 {
				c.t.Fatalf("message starts with opcode %#x", f.op)
			}
			if f.rsv&^4 != 0 {
				c.t.Fatalf("first frame with RSV bits %03b", f.rsv)
			}
			m.op, m.compressed = f.op, f.rsv == 4
		} else if f.op != 0 || f.rsv != 0 {
			c.t.Fatalf("frame %d of a message: opcode %#x, RSV bits %03b; want a continuation without RSV bits", m.frames, f.op, f.rsv)
		}
		m.frames++
		m.payload = append(m.payload, f.payload...)
		if f.fin {
			return m
		}
	}
}

// expectEcho reads the server's message and checks it is want, compressed
// if and only if want is at least threshold bytes long.
func (dc *dflClient) expectEcho(t testing.TB, c *rawClient, op byte, want []byte, threshold int) dflMessage {
	t.Helper()
	m := c.readDflMessage()
	if m.op != op {
		t.Fatalf("echo opcode %d, want %d", m.op, op)
	}
	// Above the threshold, a message that deflating does not shrink goes
	// as it is.
	if wantCompressed := len(want) >= threshold; m.compressed != wantCompressed && (m.compressed || dflShrinks(want, dc.serverBits)) {
		t.Fatalf("echo of %d bytes: compressed %v, want %v (threshold %d)", len(want), m.compressed, wantCompressed, threshold)
	}
	got := m.payload
	if m.compressed {
		var err error
		if got, err = dc.inflate(m.payload); err != nil {
			t.Fatalf("inflating the echo of %d bytes: %v", len(want), err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo differs: %d bytes, want %d (first difference at %d)", len(got), len(want), dflFirstDiff(got, want))
	}
	return m
}

// dflShrinks reports whether the server's encoder, without context, with
// a window of 2^bits (and its default level), makes p smaller.
func dflShrinks(p []byte, bits int) bool {
	var out bytes.Buffer
	if err := deflate(&out, p, nil, bits, 0); err != nil {
		panic(err)
	}
	return out.Len()-len(dflTail) < len(p)
}

func dflFirstDiff(a, b []byte) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// ---------------------------------------------------------------------------
// Servers, handshakes, payloads.

// dflRace reports whether the race detector is on: the largest cases then
// run in one mode only, as everything is about ten times slower.
func dflRace() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

func dflEchoServer(t testing.TB, opts *CompressionOptions, limit int64) *httptest.Server {
	srv, _ := echoServer(t, func(h *Handler) {
		h.Compression = opts
		h.ReadLimit = limit
	})
	return srv
}

// dflDial completes an RFC 6455 handshake with a Sec-WebSocket-Extensions
// line per offer and returns the extension answer ("" if none).
func dflDial(t testing.TB, srv *httptest.Server, offers ...string) (*rawClient, string) {
	t.Helper()
	c := dialRaw(t, srv)
	var extra []string
	for _, o := range offers {
		extra = append(extra, "Sec-WebSocket-Extensions: "+o)
	}
	c.write([]byte(handshakeRequest(RFC6455, srv.Listener.Addr().String(), "/", extra...)))
	status, header, raw := c.readResponse()
	if !strings.Contains(status, " 101 ") {
		t.Fatalf("handshake offering %q: %q", offers, raw)
	}
	answers := header.Values("Sec-Websocket-Extensions")
	switch len(answers) {
	case 0:
		return c, ""
	case 1:
		if !strings.Contains(raw, "\r\nSec-WebSocket-Extensions: "+answers[0]+"\r\n") {
			t.Errorf("extension answer not spelled Sec-WebSocket-Extensions:\n%s", raw)
		}
		return c, answers[0]
	}
	t.Fatalf("several extension answers: %q", answers)
	return nil, ""
}

// dflText returns n bytes of valid UTF-8, JSON-like, with multibyte
// characters that compress moderately. Beyond 256 KiB the text repeats,
// farther apart than any window.
func dflText(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"alpha", "beta", "γάμμα", "delta", "✓", "日本語", "\"quoted\"", "🎉", "value", "name", "id", "ünïcödé"}
	b := make([]byte, 0, n+64)
	for len(b) < min(n, 256<<10) {
		b = fmt.Appendf(b, `{"%s":%d,"%s":"%s"},`, words[r.IntN(len(words))], r.IntN(100000), words[r.IntN(len(words))], words[r.IntN(len(words))])
	}
	for base := len(b); len(b) < n; {
		b = append(b, b[:base]...)
	}
	// Cut on a character boundary and pad with ASCII.
	b = b[:n]
	for len(b) > 0 && b[len(b)-1] >= 0x80 {
		b = b[:len(b)-1]
	}
	for len(b) < n {
		b = append(b, '.')
	}
	return b
}

// dflBinary returns n bytes: stretches of random bytes and copies of
// earlier stretches, every byte value included.
func dflBinary(n int, seed uint64) []byte {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	src := rand.NewChaCha8(s)
	r := rand.New(src)
	b := make([]byte, 0, n)
	for len(b) < n {
		k := min(n-len(b), 16+r.IntN(200))
		if len(b) > 1000 && r.IntN(2) == 0 {
			from := r.IntN(len(b) - k)
			b = append(b, b[from:from+k]...)
		} else {
			b = b[:len(b)+k]
			src.Read(b[len(b)-k:])
		}
	}
	return b
}

// dflJSON returns a JSON-ish message of about 1 KiB, the i-th of a chatty
// stream.
func dflJSON(i int) []byte {
	b := fmt.Appendf(nil, `{"seq":%d,"type":"position_update","room":"lobby-%d","player":{"id":"p-%06d","name":"Player %d","team":"%s"},"state":{"x":%d.%02d,"y":%d.%02d,"heading":%d,"speed":%d},"inventory":[`,
		i, i%7, i*7919%1000000, i%50, [...]string{"red", "blue", "green"}[i%3], i*13%1000, i%100, i*17%1000, i*3%100, i*29%360, i%40)
	for j := 0; len(b) < 900; j++ {
		b = fmt.Appendf(b, `{"item":"item-%d","count":%d,"rare":%v},`, (i+j)*31%97, (i*j)%9, (i+j)%5 == 0)
	}
	b = append(b[:len(b)-1], `],"note":"ünïcödé ✓"}`...)
	for len(b) < 1024 {
		b = append(b, ' ')
	}
	return b
}

// ---------------------------------------------------------------------------
// 1. Negotiation.

func TestDeflateNegotiate(t *testing.T) {
	takeover := &CompressionOptions{ContextTakeover: true}
	noTakeover := &CompressionOptions{}
	cap10 := &CompressionOptions{ContextTakeover: true, MaxWindowBits: 10}
	const (
		nct  = "; server_no_context_takeover; client_no_context_takeover"
		pmd  = "permessage-deflate"
		none = "" // declined
	)
	type tc struct {
		offers []string
		opts   *CompressionOptions
		want   string
		params deflateParams // checked when want != none
	}
	p := func(snt, cnt bool, sb, cb int) deflateParams { return deflateParams{snt, cnt, sb, cb} }
	cases := []tc{
		{[]string{pmd}, takeover, pmd, p(false, false, 15, 15)},
		{[]string{pmd}, noTakeover, pmd + nct, p(true, true, 15, 15)},
		{[]string{pmd + "; server_no_context_takeover"}, takeover, pmd + "; server_no_context_takeover", p(true, false, 15, 15)},
		{[]string{pmd + "; client_no_context_takeover"}, takeover, pmd + "; client_no_context_takeover", p(false, true, 15, 15)},
		{[]string{pmd + "; client_no_context_takeover; server_no_context_takeover"}, takeover, pmd + nct, p(true, true, 15, 15)},
		{[]string{pmd + "; client_no_context_takeover"}, noTakeover, pmd + nct, p(true, true, 15, 15)},
		{[]string{pmd + "; client_max_window_bits"}, takeover, pmd + "; client_max_window_bits=15", p(false, false, 15, 15)},
		{[]string{pmd + "; client_max_window_bits"}, noTakeover, pmd + nct + "; client_max_window_bits=15", p(true, true, 15, 15)},
		{[]string{pmd + "; server_max_window_bits=10; client_max_window_bits=11; server_no_context_takeover; client_no_context_takeover"}, takeover,
			pmd + nct + "; server_max_window_bits=10; client_max_window_bits=11", p(true, true, 10, 11)},
		// Quoted values and white space.
		{[]string{pmd + `; server_max_window_bits="10"`}, takeover, pmd + "; server_max_window_bits=10", p(false, false, 10, 15)},
		{[]string{pmd + `; client_max_window_bits="9"`}, takeover, pmd + "; client_max_window_bits=9", p(false, false, 15, 9)},
		{[]string{pmd + `; server_max_window_bits="1\0"`}, takeover, pmd + "; server_max_window_bits=10", p(false, false, 10, 15)},
		{[]string{"  permessage-deflate ;  server_max_window_bits = 12 ; client_no_context_takeover  "}, takeover, pmd + "; client_no_context_takeover; server_max_window_bits=12", p(false, true, 12, 15)},
		{[]string{", ," + pmd + ","}, takeover, pmd, p(false, false, 15, 15)},
		// MaxWindowBits caps what the client lets the server choose.
		{[]string{pmd}, cap10, pmd, p(false, false, 10, 15)},
		{[]string{pmd + "; server_max_window_bits=12; client_max_window_bits"}, cap10, pmd + "; server_max_window_bits=10; client_max_window_bits=10", p(false, false, 10, 10)},
		{[]string{pmd + "; server_max_window_bits=9; client_max_window_bits=12"}, cap10, pmd + "; server_max_window_bits=9; client_max_window_bits=10", p(false, false, 9, 10)},
		{[]string{pmd + "; client_max_window_bits=8"}, cap10, pmd + "; client_max_window_bits=8", p(false, false, 10, 8)},
		{[]string{pmd + "; client_max_window_bits"}, &CompressionOptions{MaxWindowBits: 8}, pmd + nct + "; client_max_window_bits=8", p(true, true, 8, 8)},
		{[]string{pmd + "; server_max_window_bits=15"}, &CompressionOptions{ContextTakeover: true, MaxWindowBits: 16}, pmd + "; server_max_window_bits=15", p(false, false, 15, 15)},
		// The first acceptable offer wins; a bad one is skipped.
		{[]string{pmd + "; server_max_window_bits=10, " + pmd}, takeover, pmd + "; server_max_window_bits=10", p(false, false, 10, 15)},
		{[]string{pmd + "; client_no_context_takeover", pmd + "; server_max_window_bits=10"}, takeover, pmd + "; client_no_context_takeover", p(false, true, 15, 15)},
		{[]string{pmd + "; unknown_param, " + pmd + "; client_no_context_takeover"}, takeover, pmd + "; client_no_context_takeover", p(false, true, 15, 15)},
		{[]string{pmd + "; server_max_window_bits=10; server_max_window_bits=11, " + pmd}, takeover, pmd, p(false, false, 15, 15)},
		{[]string{pmd + "; server_no_context_takeover=true, " + pmd + "; server_max_window_bits=11"}, takeover, pmd + "; server_max_window_bits=11", p(false, false, 11, 15)},
		{[]string{pmd + "; server_max_window_bits=7", pmd + "; server_max_window_bits=8"}, takeover, pmd + "; server_max_window_bits=8", p(false, false, 8, 15)},
		// Other extensions are ignored.
		{[]string{"x-webkit-deflate-frame, " + pmd + "; client_max_window_bits"}, takeover, pmd + "; client_max_window_bits=15", p(false, false, 15, 15)},
		{[]string{"x-webkit-deflate-frame", pmd + "; server_max_window_bits=11"}, takeover, pmd + "; server_max_window_bits=11", p(false, false, 11, 15)},
		{[]string{"foo; bar=1, permessage-deflate-x, " + pmd}, takeover, pmd, p(false, false, 15, 15)},
		// Declined.
		{[]string{"x-webkit-deflate-frame"}, takeover, none, p(false, false, 0, 0)},
		{[]string{"deflate-frame; no_context_takeover"}, takeover, none, p(false, false, 0, 0)},
	}
	for _, bad := range []string{
		"; unknown_param",
		"; unknown_param=1",
		"; server_no_context_takeover; server_no_context_takeover",
		"; client_no_context_takeover; client_no_context_takeover",
		"; client_max_window_bits; client_max_window_bits=10",
		"; server_max_window_bits=10; server_max_window_bits=10",
		"; server_no_context_takeover=1",
		`; client_no_context_takeover="x"`,
		"; server_max_window_bits",
		"; server_max_window_bits=7",
		"; server_max_window_bits=16",
		"; server_max_window_bits=08",
		`; server_max_window_bits="08"`,
		"; server_max_window_bits=abc",
		"; server_max_window_bits=",
		"; server_max_window_bits=-9",
		"; server_max_window_bits=9.0",
		"; client_max_window_bits=7",
		"; client_max_window_bits=16",
		"; client_max_window_bits=015",
		`; client_max_window_bits="abc"`,
		"; client_max_window_bits=",
		`; server_max_window_bits="10`,
		"; server_max_window_bits=1 0",
	} {
		cases = append(cases,
			tc{[]string{pmd + bad}, takeover, none, p(false, false, 0, 0)},
			tc{[]string{pmd + bad, pmd + "; client_max_window_bits=12"}, takeover, pmd + "; client_max_window_bits=12", p(false, false, 15, 12)},
		)
	}
	for _, n := range []int{8, 9, 10, 11, 12, 13, 14, 15} {
		cases = append(cases,
			tc{[]string{fmt.Sprintf("%s; server_max_window_bits=%d", pmd, n)}, takeover, fmt.Sprintf("%s; server_max_window_bits=%d", pmd, n), p(false, false, n, 15)},
			tc{[]string{fmt.Sprintf("%s; server_max_window_bits=%d", pmd, n)}, noTakeover, fmt.Sprintf("%s%s; server_max_window_bits=%d", pmd, nct, n), p(true, true, n, 15)},
			tc{[]string{fmt.Sprintf("%s; client_max_window_bits=%d", pmd, n)}, takeover, fmt.Sprintf("%s; client_max_window_bits=%d", pmd, n), p(false, false, 15, n)},
			tc{[]string{fmt.Sprintf("%s; client_max_window_bits", pmd)}, &CompressionOptions{ContextTakeover: true, MaxWindowBits: n}, fmt.Sprintf("%s; client_max_window_bits=%d", pmd, n), p(false, false, n, n)},
		)
	}

	// Unit: parseExtensions and negotiateDeflate.
	for _, c := range cases {
		params, got, ok := negotiateDeflate(parseExtensions(c.offers), c.opts)
		if ok != (c.want != none) || got != c.want {
			t.Errorf("offers %q with %+v: answer %q (ok %v), want %q", c.offers, *c.opts, got, ok, c.want)
			continue
		}
		if ok && params != c.params {
			t.Errorf("offers %q with %+v: params %+v, want %+v", c.offers, *c.opts, params, c.params)
		}
	}

	// Over the wire: the same answers, and the connection is accepted either way.
	servers := map[*CompressionOptions]*httptest.Server{}
	for _, c := range cases {
		srv := servers[c.opts]
		if srv == nil {
			srv = dflEchoServer(t, c.opts, 0)
			servers[c.opts] = srv
		}
		conn, got := dflDial(t, srv, c.offers...)
		if got != c.want {
			t.Errorf("over the wire, offers %q with %+v: answer %q, want %q", c.offers, *c.opts, got, c.want)
		}
		conn.writeText(RFC6455, "after negotiation")
		if m := conn.readDflMessage(); string(m.payload) != "after negotiation" || m.compressed {
			t.Errorf("offers %q: echo %+v", c.offers, m)
		}
		conn.conn.Close()
	}
}

// Compression off, or a hixie dialect: never an extension answer.
func TestDeflateNotNegotiated(t *testing.T) {
	offer := "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
	off := dflEchoServer(t, nil, 0)
	c, got := dflDial(t, off, "permessage-deflate; client_max_window_bits", "permessage-deflate")
	if got != "" {
		t.Errorf("Compression nil: answered %q", got)
	}
	// RSV1 is then a protocol error.
	c.write(dflWire(1, dflFixedMessage(dflLiterals("Hello")...), true, nil))
	if code := c.expectClose(); code != StatusProtocolError {
		t.Errorf("compressed message without the extension: close %d, want 1002", code)
	}

	on := dflEchoServer(t, &CompressionOptions{ContextTakeover: true}, 0)
	for _, d := range []Dialect{Hixie75, Hixie76} {
		c := dialRaw(t, on)
		c.write([]byte(handshakeRequest(d, on.Listener.Addr().String(), "/", offer)))
		_, header, raw := c.readResponse()
		if len(header.Values("Sec-Websocket-Extensions")) > 0 || strings.Contains(strings.ToLower(raw), "deflate") {
			t.Errorf("%s answered an extension:\n%s", d, raw)
		}
		if d == Hixie76 {
			io.ReadFull(c.br, make([]byte, 16))
		}
		c.writeText(d, "plain")
		if _, msg := c.readMessage(d); string(msg) != "plain" {
			t.Errorf("%s echo %q", d, msg)
		}
	}
	// No offer, no answer.
	if _, got := dflDial(t, on); got != "" {
		t.Errorf("no offer: answered %q", got)
	}
}

// ---------------------------------------------------------------------------
// 2. Compressed echo.

func TestDeflateEcho(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 4096, 65536, 1 << 20, 16 << 20}
	type split struct {
		name  string
		frags []int // fragment sizes of the compressed payload (nil: one frame)
		tcp   int   // TCP write size (0: at once)
		max   int   // largest compressed payload split so
	}
	splits := []split{
		{name: "whole", max: 1 << 30},
		{name: "1-byte fragments", frags: []int{1}, max: 8 << 10},
		{name: "7-byte fragments", frags: []int{7}, max: 64 << 10},
		{name: "uneven fragments", frags: []int{3, 1000, 1, 17, 65536, 4093}, max: 1 << 30},
		{name: "1-byte TCP writes", tcp: 1, max: 8 << 10},
		{name: "7-byte TCP writes", tcp: 7, max: 64 << 10},
		{name: "997-byte TCP writes with 13-byte fragments", frags: []int{13}, tcp: 997, max: 256 << 10},
	}
	if testing.Short() {
		sizes = sizes[:len(sizes)-1]
	}
	msgs := map[[2]int][]byte{}
	for _, n := range sizes {
		msgs[[2]int{n, 1}], msgs[[2]int{n, 2}] = dflText(n, uint64(n)), dflBinary(n, uint64(n))
	}
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("context takeover %v", takeover), func(t *testing.T) {
			srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: takeover}, 32<<20)
			c, answer := dflDial(t, srv, "permessage-deflate; client_max_window_bits")
			want := "permessage-deflate; client_max_window_bits=15"
			if !takeover {
				want = "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=15"
			}
			if answer != want {
				t.Fatalf("answer %q, want %q", answer, want)
			}
			c.conn.SetDeadline(time.Now().Add(5 * time.Minute))
			dc := newDflClient(takeover, takeover, 15, 15)
			for _, n := range sizes {
				start := time.Now()
				for _, op := range []byte{1, 2} {
					msg := msgs[[2]int{n, int(op)}]
					for _, sp := range splits {
						switch {
						case n >= 16<<20 && (sp.name != "whole" || dflRace() && !takeover || testing.Short()),
							n >= 1<<20 && sp.tcp > 0 && sp.tcp < 997,
							n >= 1<<20 && dflRace() && sp.frags != nil && sp.name != "uneven fragments":
							continue
						}
						payload := dc.compress(t, msg)
						if len(payload) > sp.max {
							// Too many frames or writes: send it whole, to keep the context in step.
							c.write(dflWire(op, payload, true, nil))
						} else {
							c.writeChunks(dflWire(op, payload, true, sp.frags), sp.tcp)
						}
						m := dc.expectEcho(t, c, op, msg, DefaultCompressionThreshold)
						if m.frames != 1 {
							t.Errorf("echo of %d bytes in %d frames", n, m.frames)
						}
						if n == 1<<20 && sp.name == "whole" {
							t.Logf("op %d, %d bytes: client sent %d compressed, server %d", op, n, len(payload), len(m.payload))
						}
					}
				}
				t.Logf("%d bytes: every split, text and binary, in %v", n, time.Since(start))
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			if code := c.expectClose(); code != 1000 {
				t.Errorf("close answered with %d", code)
			}
		})
	}
}

// A server that streams its answer with NextWriter: its compressed message
// spans frames, RSV1 on the first only, and inflates whole.
func TestDeflateStreamedWriter(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("context takeover %v", takeover), func(t *testing.T) {
			srv, done := serveOne(t, func(h *Handler) {
				h.Compression = &CompressionOptions{ContextTakeover: takeover}
				h.ReadLimit = 8 << 20
			}, func(c *Conn) {
				chunks := []int{1, 7, 4095, 5000, 3, 70000}
				for {
					typ, r, err := c.NextReader()
					if err != nil {
						return
					}
					msg, err := io.ReadAll(r)
					if err != nil {
						return
					}
					w, err := c.NextWriter(typ)
					if err != nil {
						return
					}
					for i := 0; len(msg) > 0; i++ {
						n := min(len(msg), chunks[i%len(chunks)])
						if _, err := w.Write(msg[:n]); err != nil {
							return
						}
						msg = msg[n:]
					}
					if err := w.Close(); err != nil {
						return
					}
				}
			})
			c, _ := dflDial(t, srv, "permessage-deflate")
			dc := newDflClient(takeover, takeover, 15, 15)
			for i, n := range []int{0, 5, 127, 128, 4096, 4097, 10000, 100000, 1 << 20} {
				op := byte(1 + i%2)
				msg := dflText(n, uint64(i))
				if op == 2 {
					msg = dflBinary(n, uint64(i))
				}
				c.write(dflWire(op, dc.compress(t, msg), true, nil))
				m := c.readDflMessage()
				if m.op != op {
					t.Fatalf("opcode %d, want %d", m.op, op)
				}
				got := m.payload
				if m.compressed {
					var err error
					if got, err = dc.inflate(m.payload); err != nil {
						t.Fatalf("%d bytes in %d frames: %v", n, m.frames, err)
					}
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes in %d frames (compressed %v): got %d bytes, first difference at %d", n, m.frames, m.compressed, len(got), dflFirstDiff(got, msg))
				}
				// A streamed message of more than a buffer goes compressed, whatever its size.
				if n > 4096 && !m.compressed { // more than the writer buffers
					t.Errorf("streamed message of %d bytes not compressed", n)
				}
				t.Logf("%d bytes: %d frames, compressed %v, %d bytes on the wire", n, m.frames, m.compressed, len(m.payload))
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			c.expectClose()
			waitDone(t, done)
		})
	}
}

// The examples of RFC 7692 section 7.2.3, and the stream shapes a client
// may send.
func TestDeflateRFCExamples(t *testing.T) {
	srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: true, Threshold: -1}, 0)
	hello := []byte("Hello")
	cases := []struct {
		name     string
		payloads [][]byte // successive messages, each "Hello"
		frags    []int
	}{
		{"7.2.3.1 a message compressed", [][]byte{{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}, nil},
		{"7.2.3.1 in two fragments", [][]byte{{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}, []int{3}},
		{"7.2.3.2 sharing the LZ77 window", [][]byte{{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, {0xf2, 0x00, 0x11, 0x00, 0x00}}, nil},
		{"7.2.3.3 a block with no compression", [][]byte{{0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}}, nil},
		{"7.2.3.4 a block with BFINAL set", [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}, nil},
		{"7.2.3.4 BFINAL, the padding in a fragment of its own", [][]byte{{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}, {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}}, []int{7}},
		{"7.2.3.5 two DEFLATE blocks in one message", [][]byte{{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}}, nil},
		{"two blocks split between the blocks", [][]byte{{0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00}}, []int{8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dflDial(t, srv, "permessage-deflate")
			dc := newDflClient(true, true, 15, 15)
			for i, p := range tc.payloads {
				c.write(dflWire(1, p, true, tc.frags))
				dc.expectEcho(t, c, 1, hello, 0)
				if i == 0 {
					// And the connection goes on.
					c.write(dflWire(1, []byte("plain"), false, nil))
					dc.expectEcho(t, c, 1, []byte("plain"), 0)
				}
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			if code := c.expectClose(); code != 1000 {
				t.Errorf("close answered with %d", code)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// 3. Context takeover across many messages.

func TestDeflateContextTakeover(t *testing.T) {
	const messages = 200
	type totals struct{ client, server, plain int }
	run := func(t *testing.T, takeover bool) totals {
		srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: takeover}, 0)
		c, answer := dflDial(t, srv, "permessage-deflate")
		if got := answer == "permessage-deflate"; got != takeover {
			t.Fatalf("answer %q", answer)
		}
		dc := newDflClient(takeover, takeover, 15, 15)
		var tot totals
		dependent, serverDependent := 0, 0
		for i := range messages {
			msg := dflJSON(i)
			payload := dc.compress(t, msg)
			// Does the client's message need the earlier ones?
			if _, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(payload), bytes.NewReader(dflEnd)))); err != nil {
				dependent++
			} else if out, _ := dflDecode(append(bytes.Clone(payload), dflTail...), nil); !bytes.Equal(out.out, msg) {
				dependent++
			}
			c.write(dflWire(1, payload, true, nil))
			m := c.readDflMessage()
			if !m.compressed {
				t.Fatalf("message %d: echo not compressed", i)
			}
			// Decoded twice, independently: the decoder here checks the
			// server's references, compress/flate the content.
			hist := bytes.Clone(dc.serverHist)
			d := dc.decode(t, m.payload)
			if d.intoDict {
				serverDependent++
			}
			dc.serverHist = hist
			got, err := dc.inflate(m.payload)
			if err != nil || !bytes.Equal(got, msg) || !bytes.Equal(d.out, msg) {
				t.Fatalf("message %d: echo differs (%v)", i, err)
			}
			tot.client += len(payload)
			tot.server += len(m.payload)
			tot.plain += len(msg)
		}
		c.write(clientFrame(true, 8, closePayload(1000, "")))
		c.expectClose()
		t.Logf("takeover %v: %d messages, %d bytes; client sent %d compressed (%d needed the earlier messages), server %d (%d referred to earlier messages)",
			takeover, messages, tot.plain, tot.client, dependent, tot.server, serverDependent)
		if takeover {
			// The client's messages referred to earlier ones and the server
			// understood them; the server's did so too.
			if dependent < messages/2 {
				t.Errorf("only %d client messages used the context", dependent)
			}
			if serverDependent < messages/2 {
				t.Errorf("only %d of the server's messages used the context", serverDependent)
			}
		} else if dependent != 0 || serverDependent != 0 {
			t.Errorf("without takeover, %d client and %d server messages referred to earlier ones", dependent, serverDependent)
		}
		return tot
	}
	var with, without totals
	t.Run("takeover", func(t *testing.T) { with = run(t, true) })
	t.Run("no takeover", func(t *testing.T) { without = run(t, false) })
	if with.server == 0 || without.server == 0 {
		return
	}
	t.Logf("server ratio: %.3f with takeover, %.3f without", float64(with.server)/float64(with.plain), float64(without.server)/float64(without.plain))
	if float64(with.server) > 0.7*float64(without.server) {
		t.Errorf("context takeover does not pay: %d bytes with, %d without", with.server, without.server)
	}
}

// A message the application skips (NextReader again without reading it)
// still feeds the context: the next one refers to it.
func TestDeflateContextSurvivesSkippedMessages(t *testing.T) {
	srv, done := serveOne(t, func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: true} }, func(c *Conn) {
		for i := 0; ; i++ {
			typ, r, err := c.NextReader()
			if err != nil {
				return
			}
			if i%2 == 0 {
				continue // skipped, unread
			}
			msg, err := io.ReadAll(r)
			if err != nil {
				return
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	})
	c, _ := dflDial(t, srv, "permessage-deflate")
	dc := newDflClient(true, true, 15, 15)
	for i := range 40 {
		msg := dflJSON(i)
		c.write(dflWire(1, dc.compress(t, msg), true, nil))
		if i%2 == 1 {
			dc.expectEcho(t, c, 1, msg, DefaultCompressionThreshold)
		}
	}
	c.write(clientFrame(true, 8, closePayload(1000, "")))
	if code := c.expectClose(); code != 1000 {
		t.Errorf("close %d", code)
	}
	waitDone(t, done)
}

// Every compression level and a capped server window, compressing every
// message (Threshold -1), the empty one included: the server's output
// inflates to the message and stays within its window.
func TestDeflateLevels(t *testing.T) {
	msgs := [][]byte{nil, {'x'}, dflText(200, 1), dflText(5000, 2), dflBinary(70000, 3)}
	for i := range 5 {
		msgs = append(msgs, dflJSON(i))
	}
	for _, level := range []int{0, 1, 5, 9} {
		for _, maxBits := range []int{0, 9} {
			for _, takeover := range []bool{false, true} {
				t.Run(fmt.Sprintf("level %d/max bits %d/takeover %v", level, maxBits, takeover), func(t *testing.T) {
					srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: takeover, Level: level, MaxWindowBits: maxBits, Threshold: -1}, 0)
					c, _ := dflDial(t, srv, "permessage-deflate")
					serverBits := 15
					if maxBits != 0 {
						serverBits = maxBits
					}
					dc := newDflClient(takeover, takeover, 15, serverBits)
					wire := 0
					for i, msg := range msgs {
						c.write(dflWire(2, dc.compress(t, msg), true, nil))
						m := c.readDflMessage()
						if !m.compressed {
							t.Fatalf("message %d of %d bytes not compressed with Threshold -1", i, len(msg))
						}
						if d := dc.decode(t, m.payload); !bytes.Equal(d.out, msg) {
							t.Fatalf("message %d: %d bytes back, want %d", i, len(d.out), len(msg))
						}
						wire += len(m.payload)
					}
					t.Logf("%d bytes on the wire", wire)
					c.write(clientFrame(true, 8, closePayload(1000, "")))
					c.expectClose()
				})
			}
		}
	}
}

// Several goroutines write compressed messages, whole and streamed, on a
// connection with context takeover: each message goes out in the order it
// entered the shared window, so the client decodes them all in sequence.
func TestDeflateConcurrentWriters(t *testing.T) {
	const writers, messages = 4, 30
	srv, done := serveOne(t, func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: true} }, func(c *Conn) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				for j := range messages {
					p := append(fmt.Appendf(nil, "writer %d message %d ", w, j), dflJSON(w*messages+j)...)
					if j%2 == 0 {
						if c.WriteMessage(TextMessage, p) != nil {
							return
						}
						continue
					}
					mw, err := c.NextWriter(TextMessage)
					if err != nil {
						return
					}
					for len(p) > 0 {
						n := min(len(p), 1+j*37%600)
						mw.Write(p[:n])
						p = p[n:]
					}
					if mw.Close() != nil {
						return
					}
				}
			})
		}
		wg.Wait()
		c.ReadMessage()
	})
	c, _ := dflDial(t, srv, "permessage-deflate")
	dc := newDflClient(true, true, 15, 15)
	next := make([]int, writers)
	for range writers * messages {
		m := c.readDflMessage()
		got := m.payload
		if m.compressed {
			got = dc.decode(t, m.payload).out
		}
		var w, j int
		if _, err := fmt.Sscanf(string(got), "writer %d message %d ", &w, &j); err != nil || w < 0 || w >= writers {
			t.Fatalf("unexpected message %q", got[:min(len(got), 40)])
		}
		if j != next[w] {
			t.Fatalf("writer %d: message %d, want %d", w, j, next[w])
		}
		next[w]++
		if want := append(fmt.Appendf(nil, "writer %d message %d ", w, j), dflJSON(w*messages+j)...); !bytes.Equal(got, want) {
			t.Fatalf("writer %d message %d differs at %d", w, j, dflFirstDiff(got, want))
		}
	}
	c.write(clientFrame(true, 8, closePayload(1000, "")))
	c.expectClose()
	waitDone(t, done)
}

// A prepared message, compressed once without context, enters the
// connection's window like any other: later messages may refer to it.
func TestDeflatePreparedKeepsContext(t *testing.T) {
	shared := dflJSON(7)
	pm, err := NewPreparedMessage(TextMessage, shared)
	if err != nil {
		t.Fatal(err)
	}
	later := append(bytes.Clone(shared[:900]), " and more"...)
	for _, takeover := range []bool{false, true} {
		t.Run(fmt.Sprintf("takeover %v", takeover), func(t *testing.T) {
			srv, done := serveOne(t, func(h *Handler) { h.Compression = &CompressionOptions{ContextTakeover: takeover} }, func(c *Conn) {
				c.WriteMessage(TextMessage, dflJSON(1))
				c.WritePreparedMessage(pm)
				c.WriteMessage(TextMessage, later)
				c.WritePreparedMessage(pm)
				c.ReadMessage()
			})
			c, _ := dflDial(t, srv, "permessage-deflate")
			dc := newDflClient(takeover, takeover, 15, 15)
			for i, want := range [][]byte{dflJSON(1), shared, later, shared} {
				m := c.readDflMessage()
				if !m.compressed {
					t.Fatalf("message %d not compressed", i)
				}
				d := dc.decode(t, m.payload)
				if !bytes.Equal(d.out, want) {
					t.Fatalf("message %d: %d bytes, want %d (first difference at %d)", i, len(d.out), len(want), dflFirstDiff(d.out, want))
				}
				if i == 2 && takeover && !d.intoDict {
					t.Errorf("the message after the prepared one does not refer to it")
				}
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			c.expectClose()
			waitDone(t, done)
		})
	}
}

// A message that deflating does not shrink (random bytes) goes uncompressed,
// whether written or prepared, and stays out of the window under context
// takeover, as the peer never inflates it: a later message refers to the
// one before it at the distance the peer sees. A negative Threshold still
// compresses everything.
func TestDeflateIncompressibleGoesPlain(t *testing.T) {
	random := dflBinary(300, 5)[:300] // below 1000 bytes: no repeats
	rng := rand.New(rand.NewPCG(9, 9))
	noise := make([]byte, 4096)
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	text := dflText(2000, 11)
	pm, err := NewPreparedMessage(BinaryMessage, noise[:2048])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		takeover  bool
		threshold int
	}{{false, 0}, {true, 0}, {true, -1}} {
		t.Run(fmt.Sprintf("takeover %v, threshold %d", tc.takeover, tc.threshold), func(t *testing.T) {
			opts := &CompressionOptions{ContextTakeover: tc.takeover, Threshold: tc.threshold}
			srv, done := serveOne(t, func(h *Handler) { h.Compression = opts }, func(c *Conn) {
				c.WriteMessage(TextMessage, text)
				c.WriteMessage(BinaryMessage, noise)
				c.WritePreparedMessage(pm)
				c.WriteMessage(BinaryMessage, random)
				c.WriteMessage(TextMessage, text)
				c.ReadMessage()
			})
			c, _ := dflDial(t, srv, "permessage-deflate")
			dc := newDflClient(tc.takeover, tc.takeover, 15, 15)
			for i, want := range [][]byte{text, noise, noise[:2048], random, text} {
				m := c.readDflMessage()
				incompressible := i >= 1 && i <= 3
				if m.compressed == (incompressible && tc.threshold >= 0) {
					t.Fatalf("message %d of %d bytes: compressed %v", i, len(want), m.compressed)
				}
				got := m.payload
				if m.compressed {
					d := dc.decode(t, m.payload)
					got = d.out
					// (With everything compressed, the noise pushed the
					// first text out of the 4 KiB the server keeps.)
					if i == 4 && tc.takeover && tc.threshold >= 0 && (!d.intoDict || len(m.payload) > 100) {
						t.Errorf("the repeated text is %d bytes compressed: it does not refer to the first", len(m.payload))
					}
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("message %d: %d bytes, want %d (first difference at %d)", i, len(got), len(want), dflFirstDiff(got, want))
				}
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			c.expectClose()
			waitDone(t, done)
		})
	}
}

// ---------------------------------------------------------------------------
// 4. Window sizes.

func TestDeflateWindowBits(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		for bits := 8; bits <= 15; bits++ {
			t.Run(fmt.Sprintf("takeover %v/%d bits", takeover, bits), func(t *testing.T) {
				srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: takeover}, 4<<20)
				c, answer := dflDial(t, srv, fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d", bits, bits))
				want := fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; client_max_window_bits=%d", bits, bits)
				if !takeover {
					want = fmt.Sprintf("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%d; client_max_window_bits=%d", bits, bits)
				}
				if answer != want {
					t.Fatalf("answer %q, want %q", answer, want)
				}
				dc := newDflClient(takeover, takeover, bits, bits)
				window := 1 << bits
				r := rand.New(rand.NewPCG(uint64(bits), 7))
				random := func(n int) []byte {
					b := make([]byte, n)
					for i := range b {
						b[i] = byte(r.Uint32())
					}
					return b
				}
				var msgs [][]byte
				// Repeats at distances just inside and beyond the window,
				// within a message and across messages.
				for _, d := range []int{window / 2, window - 3, window, window + 1, window + 100, 2 * window, 40000} {
					a := random(d)
					msgs = append(msgs, bytes.Join([][]byte{a, a, a[:min(len(a), 300)]}, nil))
					msgs = append(msgs, a[:min(len(a), 2000)]) // refers to the previous message
				}
				msgs = append(msgs, dflText(60000, uint64(bits)), dflBinary(40000, uint64(bits)))
				var maxDist, wire, plain int
				for i, msg := range msgs {
					c.write(dflWire(2, dc.compress(t, msg), true, nil))
					m := c.readDflMessage()
					if !m.compressed {
						// Allowed only where deflating does not shrink it.
						if dflShrinks(msg, bits) || !bytes.Equal(m.payload, msg) {
							t.Fatalf("message %d of %d bytes not compressed", i, len(msg))
						}
						wire += len(m.payload)
						plain += len(msg)
						continue
					}
					d := dc.decode(t, m.payload)
					if !bytes.Equal(d.out, msg) {
						t.Fatalf("message %d: %d bytes decoded, want %d, first difference at %d", i, len(d.out), len(msg), dflFirstDiff(d.out, msg))
					}
					maxDist = max(maxDist, d.maxDist)
					wire += len(m.payload)
					plain += len(msg)
				}
				t.Logf("farthest reference of the server %d (window %d); %d bytes sent in %d", maxDist, window, plain, wire)
				if maxDist < window/2 {
					t.Errorf("the server never referred farther than %d bytes: the test proves little", maxDist)
				}
			})
		}
	}
}

// The server keeps exactly the window the client may use: a reference
// 2^N bytes back into the previous message is honoured; 2^N+1 is beyond
// what was agreed (close 1007); without context takeover no reference to
// a previous message is possible.
func TestDeflateClientWindowEdge(t *testing.T) {
	for _, bits := range []int{8, 9, 12, 15} {
		window := 1 << bits
		first := dflBinary(window+500, uint64(bits))
		for _, tc := range []struct {
			name     string
			takeover bool
			dist     int
			ok       bool
		}{
			{"at the window", true, window, true},
			{"beyond the window", true, window + 1, false},
			{"without takeover", false, 10, false},
		} {
			if tc.dist > 32768 {
				continue // DEFLATE cannot say it
			}
			t.Run(fmt.Sprintf("%d bits/%s", bits, tc.name), func(t *testing.T) {
				srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: tc.takeover}, 0)
				c, _ := dflDial(t, srv, fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", bits))
				dc := newDflClient(false, tc.takeover, bits, 15)
				c.write(dflWire(2, dc.compress(t, first), true, nil))
				dc.expectEcho(t, c, 2, first, DefaultCompressionThreshold)
				// 200 bytes from dist back, then "xy".
				second := dflFixedMessage(dflToken{length: 200, dist: tc.dist}, dflToken{lit: 'x'}, dflToken{lit: 'y'})
				c.write(dflWire(2, second, true, nil))
				if !tc.ok {
					if code := c.expectClose(); code != StatusInvalidPayload {
						t.Errorf("close %d, want 1007", code)
					}
					return
				}
				want := append(bytes.Clone(first[len(first)-tc.dist:][:200]), "xy"...)
				dc.expectEcho(t, c, 2, want, 0)
			})
		}
	}
}

// ---------------------------------------------------------------------------
// 5. Frames and errors on a compressed connection.

func TestDeflateFrames(t *testing.T) {
	srv := dflEchoServer(t, &CompressionOptions{ContextTakeover: true}, 0)
	hello := dflWire(1, dflFixedMessage(dflLiterals("Hello")...), true, nil)
	helloPayload := dflFixedMessage(dflLiterals("Hello")...)
	big := dflText(300, 1)
	t.Run("uncompressed messages allowed", func(t *testing.T) {
		c, _ := dflDial(t, srv, "permessage-deflate")
		dc := newDflClient(true, true, 15, 15)
		for _, msg := range [][]byte{nil, []byte("small"), big, dflText(70000, 2)} {
			c.write(dflWire(1, msg, false, []int{100, 3}))
			dc.expectEcho(t, c, 1, msg, DefaultCompressionThreshold)
			c.write(dflWire(1, dc.compress(t, msg), true, nil))
			dc.expectEcho(t, c, 1, msg, DefaultCompressionThreshold)
		}
	})
	t.Run("pongs never compressed", func(t *testing.T) {
		c, _ := dflDial(t, srv, "permessage-deflate")
		dc := newDflClient(true, true, 15, 15)
		payload := dc.compress(t, big)
		wire := frames(
			withRSV(clientFrame(false, 1, payload[:5]), 4),
			clientFrame(true, 9, []byte("ping inside")),
			clientFrame(true, 0, payload[5:]),
			clientFrame(true, 9, []byte("ping after")),
		)
		c.write(wire)
		m := dc.expectEcho(t, c, 1, big, DefaultCompressionThreshold) // checks pongs carry no RSV
		if len(m.pongs) != 1 || string(m.pongs[0]) != "ping inside" {
			t.Errorf("pongs before the echo: %q", m.pongs)
		}
		if f := c.readFrame(); f.op != 10 || f.rsv != 0 || string(f.payload) != "ping after" {
			t.Errorf("pong %+v", f)
		}
	})
	fails := []struct {
		name string
		wire []byte
		code StatusCode
	}{
		{"RSV1 on a ping", withRSV(clientFrame(true, 9, []byte("x")), 4), StatusProtocolError},
		{"RSV1 on a pong", withRSV(clientFrame(true, 10, nil), 4), StatusProtocolError},
		{"RSV1 on a close", withRSV(clientFrame(true, 8, closePayload(1000, "")), 4), StatusProtocolError},
		{"RSV1 on a ping between fragments", frames(withRSV(clientFrame(false, 1, helloPayload[:3]), 4), withRSV(clientFrame(true, 9, nil), 4), clientFrame(true, 0, helloPayload[3:])), StatusProtocolError},
		{"RSV1 on a continuation", frames(withRSV(clientFrame(false, 1, helloPayload[:3]), 4), withRSV(clientFrame(true, 0, helloPayload[3:]), 4)), StatusProtocolError},
		{"RSV1 on a continuation of an uncompressed message", frames(clientFrame(false, 1, []byte("Hel")), withRSV(clientFrame(true, 0, []byte("lo")), 4)), StatusProtocolError},
		{"RSV2", withRSV(clientFrame(true, 1, []byte("Hello")), 2), StatusProtocolError},
		{"RSV3", withRSV(clientFrame(true, 1, []byte("Hello")), 1), StatusProtocolError},
		{"RSV1 and RSV2", withRSV(hello, 2), StatusProtocolError},
		{"RSV1 and RSV3", withRSV(hello, 1), StatusProtocolError},
		{"RSV2 on a continuation", frames(withRSV(clientFrame(false, 1, helloPayload[:3]), 4), withRSV(clientFrame(true, 0, helloPayload[3:]), 2)), StatusProtocolError},
		{"invalid block type", dflWire(2, []byte{0x07}, true, nil), StatusInvalidPayload},
		{"stored length mismatch", dflWire(2, []byte{0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'}, true, nil), StatusInvalidPayload},
		// Beyond the window: "Hello" and "a" are all the history there is.
		{"distance too far back", dflWire(2, dflFixedMessage(dflToken{lit: 'a'}, dflToken{length: 3, dist: 7}), true, nil), StatusInvalidPayload},
		{"garbage", dflWire(2, []byte("this is not deflate data at all, only text"), true, nil), StatusInvalidPayload},
		{"inflated text not UTF-8", dflWire(1, dflFixedMessage(dflLiterals("ok \xc3\x28 bad")...), true, nil), StatusInvalidPayload},
		{"inflated text ends inside a character", dflWire(1, dflFixedMessage(dflLiterals("ends \xe2\x82")...), true, nil), StatusInvalidPayload},
		// The payload ends inside a stored block that claims 1000 bytes:
		// the message is over, so its DEFLATE data is invalid.
		{"truncated stored block", dflWire(2, []byte{0x00, 0xe8, 0x03, 0x17, 0xfc, 'a', 'b', 'c', 'd', 'e'}, true, nil), StatusInvalidPayload},
		{"truncated Huffman block", dflWire(2, dflFixedMessage(dflLiterals(strings.Repeat("truncated ", 20))...)[:40], true, nil), StatusInvalidPayload},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dflDial(t, srv, "permessage-deflate")
			c.write(hello)
			dc := newDflClient(true, true, 15, 15)
			dc.expectEcho(t, c, 1, []byte("Hello"), DefaultCompressionThreshold)
			c.write(tc.wire)
			f, err := c.tryReadFrame()
			if err != nil {
				t.Fatalf("no close frame, want %d: %v (the server dropped the connection)", tc.code, err)
			}
			if f.op != 8 || len(f.payload) < 2 {
				t.Fatalf("frame %+v, want a close %d", f, tc.code)
			}
			if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != tc.code {
				t.Errorf("close %d %q, want %d", code, f.payload[2:], tc.code)
			}
			c.expectEOF()
		})
	}
	// The server still serves.
	c, _ := dflDial(t, srv, "permessage-deflate")
	dc := newDflClient(true, true, 15, 15)
	c.write(dflWire(1, dc.compress(t, big), true, nil))
	dc.expectEcho(t, c, 1, big, DefaultCompressionThreshold)
}

// What the application reads when the peer's close, or a protocol
// violation, interrupts a compressed message: the same as for an
// uncompressed one.
func TestDeflateInterruptedMessage(t *testing.T) {
	payload := dflFixedMessage(dflLiterals(strings.Repeat("interrupted ", 30))...)
	cases := []struct {
		name string
		next []byte // after the first fragment
		want func(error) bool
		what string
		code StatusCode // close code on the wire
	}{
		{"peer close", clientFrame(true, 8, closePayload(1000, "bye")), func(err error) bool {
			var ce *CloseError
			return errors.As(err, &ce) && ce.Code == 1000 && ce.Reason == "bye"
		}, "*CloseError 1000 bye", 1000},
		{"RSV1 on a ping", withRSV(clientFrame(true, 9, nil), 4), func(err error) bool {
			var pe *ProtocolError
			return errors.As(err, &pe) && pe.Code == StatusProtocolError
		}, "*ProtocolError 1002", StatusProtocolError},
		{"new message inside", clientFrame(true, 1, []byte("x")), func(err error) bool {
			var pe *ProtocolError
			return errors.As(err, &pe) && pe.Code == StatusProtocolError
		}, "*ProtocolError 1002", StatusProtocolError},
	}
	for _, compressed := range []bool{false, true} {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("compressed %v/%s", compressed, tc.name), func(t *testing.T) {
				errs := make(chan error, 1)
				srv, done := serveOne(t, func(h *Handler) { h.Compression = &CompressionOptions{} }, func(c *Conn) {
					_, _, err := c.ReadMessage()
					errs <- err
				})
				c, _ := dflDial(t, srv, "permessage-deflate")
				first := clientFrame(false, 1, payload[:20])
				if compressed {
					first[0] |= 0x40
				} else {
					first = clientFrame(false, 1, []byte("uncompressed start"))
				}
				c.write(frames(first, tc.next))
				f, err := c.tryReadFrame()
				if err != nil || f.op != 8 || len(f.payload) < 2 {
					t.Fatalf("want a close %d, got %+v, %v", tc.code, f, err)
				}
				if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != tc.code {
					t.Errorf("close %d on the wire, want %d", code, tc.code)
				}
				c.conn.(*net.TCPConn).CloseWrite() // the server need not linger
				waitDone(t, done)
				err = <-errs
				t.Logf("ReadMessage: %v (%T)", err, err)
				if !tc.want(err) {
					t.Errorf("ReadMessage returned %v (%T), want %s", err, err, tc.what)
				}
			})
		}
	}
}

// ---------------------------------------------------------------------------
// 6. Decompression bombs.

func TestDeflateBombHelpers(t *testing.T) {
	for _, matches := range []int{0, 1, 5, 1000, 4100} {
		p := dflZeroBomb(matches)
		want := 1 + 258*matches
		out, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader(dflEnd))))
		if err != nil || len(out) != want || bytes.ContainsFunc(out, func(r rune) bool { return r != 0 }) {
			t.Fatalf("bomb of %d matches: %d bytes, %v; want %d zeros", matches, len(out), err, want)
		}
		d, err := dflDecode(append(bytes.Clone(p), dflTail...), nil)
		if err != nil || len(d.out) != want || d.maxDist != min(1, matches) {
			t.Fatalf("bomb of %d matches, own decoder: %d bytes, distance %d, %v", matches, len(d.out), d.maxDist, err)
		}
	}
	t.Logf("a 1 GiB bomb is %d bytes", len(dflZeroBomb((1<<30)/258+1)))
}

func TestDeflateBomb(t *testing.T) {
	const limit = 1 << 20
	gib := dflZeroBomb((1<<30)/258 + 1) // ~1 MB that inflates to 1 GiB
	kib := dflZeroBomb(4100)            // ~1 KiB that inflates to 1,057,801 bytes
	mib64 := dflZeroBomb((64 << 20) / 258)
	cases := []struct {
		name  string
		wire  []byte
		frags string
	}{
		{"1 KiB to just over the limit", dflWire(2, kib, true, nil), "one frame"},
		{"64 KiB to 64 MiB", dflWire(2, mib64, true, nil), "one frame"},
		{"64 KiB to 64 MiB in 100-byte fragments", dflWire(2, mib64, true, []int{100}), "fragments"},
		{"64 KiB to 64 MiB as text", dflWire(1, mib64, true, []int{1000, 1}), "fragments"},
		{"1 MB to 1 GiB", dflWire(2, gib, true, nil), "one frame"},
		{"1 MB to 1 GiB in 4 KiB fragments", dflWire(2, gib, true, []int{4096}), "fragments"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 1)
			srv, done := serveOne(t, func(h *Handler) {
				h.Compression = &CompressionOptions{ContextTakeover: true}
				h.ReadLimit = limit
			}, func(c *Conn) {
				_, _, err := c.ReadMessage()
				errs <- err
			})
			c, _ := dflDial(t, srv, "permessage-deflate")
			tcp := c.conn.(*net.TCPConn)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			go func() {
				tcp.Write(tc.wire) // may fail once the server gives up
				tcp.CloseWrite()
			}()
			f, err := c.tryReadFrame()
			elapsed := time.Since(start)
			if err != nil || f.op != 8 || len(f.payload) < 2 {
				t.Fatalf("want a close 1009, got %+v, %v", f, err)
			}
			if code := StatusCode(binary.BigEndian.Uint16(f.payload)); code != StatusMessageTooBig {
				t.Fatalf("close %d %q, want 1009", code, f.payload[2:])
			}
			waitDone(t, done)
			runtime.ReadMemStats(&after)
			var pe *ProtocolError
			if err := <-errs; !errors.As(err, &pe) || pe.Code != StatusMessageTooBig {
				t.Errorf("ReadMessage: %v, want a *ProtocolError 1009", err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes on the wire: close 1009 after %v, %.1f MiB allocated in the process", len(tc.wire), elapsed, float64(alloc)/(1<<20))
			if elapsed > time.Second {
				t.Errorf("the bomb took %v to refuse", elapsed)
			}
			if alloc > 16<<20 {
				t.Errorf("%d MiB allocated while refusing the bomb", alloc>>20)
			}
		})
	}
}

// A message that inflates to exactly the read limit is accepted; one byte
// more is not.
func TestDeflateReadLimitExact(t *testing.T) {
	const limit = 1 << 20
	srv := dflEchoServer(t, &CompressionOptions{}, limit)
	for _, n := range []int{limit, limit + 1} {
		c, _ := dflDial(t, srv, "permessage-deflate")
		c.conn.SetDeadline(time.Now().Add(time.Minute))
		dc := newDflClient(false, false, 15, 15)
		for _, msg := range [][]byte{dflText(n, 3), make([]byte, n)} {
			// Zeros compress 1000:1: the payload is far below the limit.
			c.write(dflWire(2, dc.compress(t, msg), true, []int{5000}))
			if n > limit {
				if code := c.expectClose(); code != StatusMessageTooBig {
					t.Errorf("%d bytes: close %d, want 1009", n, code)
				}
				break
			}
			dc.expectEcho(t, c, 2, msg, DefaultCompressionThreshold)
		}
	}
}

// ---------------------------------------------------------------------------
// 7. Memory held by idle connections.

func TestDeflateIdleMemory(t *testing.T) {
	type held struct {
		inflaterHist, deflaterHist  bool // held at all
		inflaterSize, deflaterSize  int  // their sizes
		inflaterBuf, deflaterBuf    int  // and their buffers'
		frNil, brNil, inflaterExist bool
	}
	cases := []struct {
		name                   string
		opts                   CompressionOptions
		offer                  string
		takeover               bool
		sendHist, receiveHist  int
		clientBits, serverBits int
	}{
		{"no takeover", CompressionOptions{}, "permessage-deflate", false, 0, 0, 15, 15},
		{"no takeover offered by the client", CompressionOptions{ContextTakeover: true}, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", false, 0, 0, 15, 15},
		{"takeover, 15 bits", CompressionOptions{ContextTakeover: true}, "permessage-deflate", true, 4 << 10, 32 << 10, 15, 15},
		{"takeover, client 10 bits, server 9", CompressionOptions{ContextTakeover: true}, "permessage-deflate; client_max_window_bits=10; server_max_window_bits=9", true, 512, 1 << 10, 10, 9},
		{"takeover, MaxWindowBits 12", CompressionOptions{ContextTakeover: true, MaxWindowBits: 12}, "permessage-deflate; client_max_window_bits", true, 4 << 10, 4 << 10, 12, 12},
		{"takeover, server 14 bits", CompressionOptions{ContextTakeover: true}, "permessage-deflate; server_max_window_bits=14", true, 4 << 10, 32 << 10, 15, 14},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			heldCh := make(chan held, 1)
			const messages = 10
			srv, done := serveOne(t, func(h *Handler) { h.Compression = &tc.opts }, func(c *Conn) {
				for range messages {
					typ, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					if err := c.WriteMessage(typ, msg); err != nil {
						return
					}
				}
				// Idle now: look at what the connection holds.
				var h held
				hc := &c.hybi
				if f := hc.inflater; f != nil {
					h.inflaterExist = true
					h.frNil, h.brNil = f.fr == nil, f.br == nil
					if h.inflaterHist = f.history != nil; h.inflaterHist {
						h.inflaterSize, h.inflaterBuf = f.history.size, cap(f.history.buf)
					}
				}
				if c.deflater != nil {
					if h.deflaterHist = c.deflater.history != nil; h.deflaterHist {
						h.deflaterSize, h.deflaterBuf = c.deflater.history.size, cap(c.deflater.history.buf)
					}
				}
				heldCh <- h
				c.ReadMessage()
			})
			c, answer := dflDial(t, srv, tc.offer)
			if answer == "" {
				t.Fatal("not negotiated")
			}
			dc := newDflClient(tc.takeover, tc.takeover, tc.clientBits, tc.serverBits)
			for i := range messages {
				msg := dflText(1000+i*4000, uint64(i)) // past every window
				c.write(dflWire(1, dc.compress(t, msg), true, nil))
				dc.expectEcho(t, c, 1, msg, DefaultCompressionThreshold)
			}
			var h held
			select {
			case h = <-heldCh:
			case <-time.After(5 * time.Second):
				t.Fatal("the server did not report")
			}
			if !h.inflaterExist {
				t.Fatal("no inflater on a compressed connection")
			}
			if !h.frNil || !h.brNil {
				t.Errorf("idle connection holds a decompressor (fr released %v, bufio released %v)", h.frNil, h.brNil)
			}
			if !tc.takeover {
				if h.inflaterHist || h.deflaterHist {
					t.Errorf("without takeover the connection holds history: receive %v, send %v", h.inflaterHist, h.deflaterHist)
				}
			} else {
				// Each history's buffer has an eighth of slack.
				if !h.inflaterHist || h.inflaterSize != tc.receiveHist || h.inflaterBuf != tc.receiveHist*9/8 {
					t.Errorf("receive history: held %v, size %d, buffer %d; want %d bytes", h.inflaterHist, h.inflaterSize, h.inflaterBuf, tc.receiveHist)
				}
				if !h.deflaterHist || h.deflaterSize != tc.sendHist || h.deflaterBuf != tc.sendHist*9/8 {
					t.Errorf("send history: held %v, size %d, buffer %d; want %d bytes", h.deflaterHist, h.deflaterSize, h.deflaterBuf, tc.sendHist)
				}
				t.Logf("idle with takeover: %d bytes of send history, %d of receive history", h.deflaterBuf, h.inflaterBuf)
			}
			c.write(clientFrame(true, 8, closePayload(1000, "")))
			c.expectClose()
			waitDone(t, done)
		})
	}
}

// ---------------------------------------------------------------------------
// The decoder above, checked against compress/flate and klauspost's flate.

type dflWriter interface {
	io.WriteCloser
	Flush() error
}

func TestDeflateTestDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	inputs := map[string][]byte{
		"empty":   nil,
		"one":     {42},
		"zeros":   make([]byte, 100000),
		"text":    dflText(100000, 9),
		"binary":  dflBinary(100000, 9),
		"json":    bytes.Join([][]byte{dflJSON(1), dflJSON(2), dflJSON(3), dflJSON(1)}, nil),
		"pattern": bytes.Repeat([]byte("abcdefghijklmnopqrstuvwxyz0123456789"), 5000),
	}
	rnd := make([]byte, 50000)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	inputs["random"] = rnd
	type enc struct {
		name   string
		window int
		new    func(w io.Writer) (dflWriter, error)
	}
	var encs []enc
	for _, level := range []int{stdflate.HuffmanOnly, stdflate.NoCompression, 1, 5, 9} {
		encs = append(encs, enc{fmt.Sprintf("compress/flate level %d", level), 1 << 15, func(w io.Writer) (dflWriter, error) {
			return stdflate.NewWriter(w, level)
		}})
	}
	for _, level := range []int{1, 4, 6, 9} {
		encs = append(encs, enc{fmt.Sprintf("klauspost level %d", level), 1 << 15, func(w io.Writer) (dflWriter, error) {
			return kflate.NewWriter(w, level)
		}})
	}
	for _, bits := range []int{8, 10, 13, 15} {
		encs = append(encs, enc{fmt.Sprintf("klauspost window %d", 1<<bits), 1 << bits, func(w io.Writer) (dflWriter, error) {
			return kflate.NewWriterWindow(w, 1<<bits)
		}})
	}
	for _, e := range encs {
		for name, in := range inputs {
			var buf bytes.Buffer
			w, err := e.new(&buf)
			if err != nil {
				t.Fatal(err)
			}
			// Several writes with sync flushes between, then the final block.
			for off, i := 0, 0; off < len(in); i++ {
				n := min(len(in)-off, 1+r.IntN(70000))
				w.Write(in[off : off+n])
				if i%2 == 0 {
					w.Flush()
				}
				off += n
			}
			w.Close()
			d, err := dflDecode(buf.Bytes(), nil)
			if err != nil || !d.final || !bytes.Equal(d.out, in) {
				t.Errorf("%s, %s: %v, final %v, %d bytes of %d", e.name, name, err, d.final, len(d.out), len(in))
				continue
			}
			if d.maxDist > e.window {
				t.Errorf("%s, %s: distance %d beyond the window %d", e.name, name, d.maxDist, e.window)
			}
			std, err := io.ReadAll(stdflate.NewReader(bytes.NewReader(buf.Bytes())))
			if err != nil || !bytes.Equal(std, in) {
				t.Errorf("%s, %s: compress/flate disagrees: %v", e.name, name, err)
			}
		}
	}
	// Dictionaries: references into the dictionary are reported.
	dict := dflText(32<<10, 5)
	var buf bytes.Buffer
	w, _ := stdflate.NewWriterDict(&buf, 6, dict)
	msg := append(bytes.Clone(dict[1000:3000]), dict[30000:31000]...)
	w.Write(msg)
	w.Flush()
	d, err := dflDecode(buf.Bytes(), dict)
	if err != nil || !bytes.Equal(d.out, msg) || !d.intoDict || d.maxDist < 30000 {
		t.Errorf("with a dictionary: %v, into the dictionary %v, distance %d", err, d.intoDict, d.maxDist)
	}
	if _, err := dflDecode(buf.Bytes(), nil); err == nil {
		t.Errorf("decoding without the dictionary succeeded")
	}
	// The hand-made streams decode alike with both decoders.
	hand := dflFixedMessage(append(dflLiterals("abcabc"), dflToken{length: 258, dist: 3}, dflToken{length: 3, dist: 1}, dflToken{length: 10, dist: 200})...)
	wantHand := []byte("abcabc")
	for range 258 {
		wantHand = append(wantHand, wantHand[len(wantHand)-3])
	}
	for range 3 {
		wantHand = append(wantHand, wantHand[len(wantHand)-1])
	}
	for range 10 {
		wantHand = append(wantHand, wantHand[len(wantHand)-200])
	}
	std, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(hand), bytes.NewReader(dflEnd))))
	if err != nil || !bytes.Equal(std, wantHand) {
		t.Errorf("hand-made stream: compress/flate read %q, %v", std, err)
	}
	if d, err := dflDecode(append(bytes.Clone(hand), dflTail...), nil); err != nil || !bytes.Equal(d.out, wantHand) || d.maxDist != 200 {
		t.Errorf("hand-made stream: own decoder %v, distance %d", err, d.maxDist)
	}
	// Invalid streams are refused by both.
	for name, in := range map[string][]byte{
		"block type 3":       {0x07},
		"stored NLEN":        {0x01, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'},
		"distance too far":   append(dflFixedMessage(dflToken{lit: 'a'}, dflToken{length: 3, dist: 2}), 0x00, 0x00, 0xff, 0xff),
		"truncated stored":   {0x01, 0x05, 0x00, 0xfa, 0xff, 'h'},
		"truncated fixed":    dflFixedMessage(dflLiterals("truncated fixed block")...)[:10],
		"length symbol 286":  dflFinalFixed(func(w *dflBitWriter) { w.fixedSym('a'); w.fixedSym(286) }),
		"length symbol 287":  dflFinalFixed(func(w *dflBitWriter) { w.fixedSym('a'); w.fixedSym(287) }),
		"distance symbol 30": dflFinalFixed(func(w *dflBitWriter) { w.fixedSym('a'); w.fixedSym(257); w.code(30, 5) }),
		"distance symbol 31": dflFinalFixed(func(w *dflBitWriter) { w.fixedSym('a'); w.fixedSym(257); w.code(31, 5) }),
	} {
		if _, err := dflDecode(in, nil); err == nil {
			t.Errorf("%s: own decoder accepted % x", name, in)
		}
		if _, err := io.ReadAll(stdflate.NewReader(bytes.NewReader(in))); err == nil {
			t.Errorf("%s: compress/flate accepted % x", name, in)
		}
	}
}

// dflFinalFixed is a final fixed Huffman block with what body writes.
func dflFinalFixed(body func(*dflBitWriter)) []byte {
	w := &dflBitWriter{}
	w.bits(1, 1)
	w.bits(1, 2)
	body(w)
	w.fixedSym(256)
	w.bits(0, 7)
	return w.out
}

// ---------------------------------------------------------------------------
// Benchmarks: one 1 KiB JSON-ish message, compressed by the connection's
// deflater or inflated by its inflater, in each mode.

func BenchmarkCompress(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts CompressionOptions
		p    deflateParams
	}{
		{"no takeover", CompressionOptions{}, deflateParams{true, true, 15, 15}},
		{"takeover", CompressionOptions{ContextTakeover: true}, deflateParams{false, false, 15, 15}},
		{"takeover level 5", CompressionOptions{ContextTakeover: true, Level: 5}, deflateParams{false, false, 15, 15}},
		{"takeover 10 bits", CompressionOptions{ContextTakeover: true}, deflateParams{false, false, 10, 10}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			d := newDeflater(mode.p, &mode.opts)
			msgs := make([][]byte, 64)
			for i := range msgs {
				msgs[i] = dflJSON(i)
			}
			var buf bytes.Buffer
			b.SetBytes(int64(len(msgs[0])))
			b.ReportAllocs()
			var out int
			i := 0
			for b.Loop() {
				buf.Reset()
				if err := d.compress(&buf, msgs[i%len(msgs)]); err != nil {
					b.Fatal(err)
				}
				out += buf.Len()
				i++
			}
			b.ReportMetric(float64(out)/float64(i), "wire-bytes/msg")
		})
	}
}

func BenchmarkInflate(b *testing.B) {
	for _, takeover := range []bool{false, true} {
		b.Run(fmt.Sprintf("takeover %v", takeover), func(b *testing.B) {
			// A periodic stream of messages: once the window holds only
			// the stream, the compressed forms of one period decode again
			// and again.
			const period = 64
			msgs := make([][]byte, period)
			for i := range msgs {
				msgs[i] = dflJSON(i)
			}
			dc := newDflClient(takeover, takeover, 15, 15)
			var warm, cycle [][]byte
			for range 2 {
				for _, m := range msgs {
					warm = append(warm, dc.compress(b, m))
				}
			}
			for _, m := range msgs {
				cycle = append(cycle, dc.compress(b, m))
			}
			var src bytes.Reader
			f := newInflater(deflateParams{!takeover, !takeover, 15, 15}, src.Read)
			out := make([]byte, 4096)
			inflate := func(p []byte) int {
				src.Reset(p)
				f.start()
				total := 0
				for {
					n, err := f.read(out[total:])
					total += n
					if err == io.EOF {
						return total
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			for i, p := range warm {
				if n := inflate(p); !bytes.Equal(out[:n], msgs[i%period]) {
					b.Fatalf("warm-up message %d differs", i)
				}
			}
			b.SetBytes(int64(len(msgs[0])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				n := inflate(cycle[i%period])
				if i < period && !bytes.Equal(out[:n], msgs[i]) {
					b.Fatalf("message %d differs", i)
				}
				i++
			}
		})
	}
}

// A history holds exactly the last size bytes written, whatever the sizes
// of the writes, across the slides of its buffer.
func TestHistoryKeepsTheWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for _, size := range []int{256, 8 << 10, 32 << 10} {
		h := &history{size: size}
		var all []byte
		for i := range 2000 {
			p := make([]byte, rng.IntN(size/3+1))
			if i%97 == 0 {
				p = make([]byte, size+rng.IntN(size)) // larger than the window
			}
			for j := range p {
				p[j] = byte(rng.Uint32())
			}
			h.write(p)
			all = append(all, p...)
			want := all[max(0, len(all)-size):]
			if got := h.bytes(); !bytes.Equal(got, want) {
				t.Fatalf("size %d, write %d: history of %d bytes differs from the last %d written", size, i, len(got), len(want))
			}
			if cap(h.buf) != size+size/8 {
				t.Fatalf("size %d: buffer grew to %d", size, cap(h.buf))
			}
		}
	}
}
