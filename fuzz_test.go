package websocket

// Native fuzz targets (go test -fuzz=^FuzzX$). Each target checks the
// package against a reference written here from the specs (RFC 6455,
// RFC 7692, draft-hixie-75/76, the standard library's UTF-8 and deflate),
// independently of the code under test. Without -fuzz, the seeds added with
// f.Add and the corpus in testdata/fuzz/<FuzzName>/ run as ordinary tests.

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// ---------------------------------------------------------------------------
// References shared by the targets.

// fzCompletions are the continuation bytes tried after a truncated UTF-8
// sequence: every range a continuation byte may have to fall in (Unicode
// Table 3-7: 80..BF, A0..BF, 80..9F, 90..BF, 80..8F) contains one of them.
var fzCompletions = []byte{0x80, 0x90, 0xA0}

// fzValidPrefix reports whether p is the beginning of some valid UTF-8 text:
// whether a valid text could still follow from it.
func fzValidPrefix(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	// Only the last character may be cut short, and a character has at
	// most 4 bytes: some split k <= 3 from the end leaves valid text before
	// and a sequence that 1 to 3 more bytes complete.
	for k := 1; k <= 3 && k <= len(p); k++ {
		if !utf8.Valid(p[:len(p)-k]) {
			continue
		}
		tail := p[len(p)-k:]
		for more := 1; more <= 4-k; more++ {
			if fzCompletable(tail, more) {
				return true
			}
		}
	}
	return false
}

func fzCompletable(tail []byte, more int) bool {
	buf := append([]byte(nil), tail...)
	var try func(int) bool
	try = func(left int) bool {
		if left == 0 {
			return utf8.Valid(buf)
		}
		for _, c := range fzCompletions {
			buf = append(buf, c)
			ok := try(left - 1)
			buf = buf[:len(buf)-1]
			if ok {
				return true
			}
		}
		return false
	}
	return try(more)
}

var (
	fzErrKeyTooLarge  = errors.New("too large")
	fzErrKeyNoSpace   = errors.New("no space")
	fzErrKeyRemainder = errors.New("remainder")
)

// fzHixieKey derives a draft-hixie-76 key number as the draft words it: the
// key's digits as one (arbitrarily large) integer, refused above 2^32-1,
// then divided by the count of spaces, which must divide it exactly.
func fzHixieKey(key string) (uint32, error) {
	digits := new(big.Int)
	spaces := int64(0)
	for _, b := range []byte(key) {
		switch {
		case '0' <= b && b <= '9':
			digits.Mul(digits, big.NewInt(10))
			digits.Add(digits, big.NewInt(int64(b-'0')))
		case b == ' ':
			spaces++
		}
	}
	if digits.Cmp(big.NewInt(math.MaxUint32)) > 0 {
		return 0, fzErrKeyTooLarge
	}
	if spaces == 0 {
		return 0, fzErrKeyNoSpace
	}
	q, r := new(big.Int).QuoRem(digits, big.NewInt(spaces), new(big.Int))
	if r.Sign() != 0 {
		return 0, fzErrKeyRemainder
	}
	return uint32(q.Uint64()), nil
}

// fzSendable lists the close codes RFC 6455 section 7.4 lets an endpoint
// put on the wire (with 1012-1014 from the IANA registry).
func fzSendable(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fzTail is what RFC 7692 section 7.2.2 appends to a message's payload
// before inflating it, followed by an empty final block so that a reader
// ends.
var fzTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// fzInflate inflates payload with the standard library's decompressor,
// returning at most max+1 bytes (max < 0: no bound but 64 MiB).
func fzInflate(payload, dict []byte, max int64) ([]byte, error) {
	if max < 0 {
		max = 64 << 20
	}
	r := stdflate.NewReaderDict(bytes.NewReader(payload), dict)
	return io.ReadAll(io.LimitReader(r, max+1))
}

// ---------------------------------------------------------------------------
// A net.Conn that hands the server the fuzz bytes, then EOF, and swallows
// what the server writes.

type fzConn struct {
	data   []byte
	chunk  int // largest read; 0: no bound
	closed bool
	wrote  int
}

func (c *fzConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	if c.chunk > 0 && len(p) > c.chunk {
		p = p[:c.chunk]
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func (c *fzConn) Write(p []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	c.wrote += len(p)
	return len(p), nil
}

func (c *fzConn) Close() error {
	if c.closed {
		return net.ErrClosed
	}
	c.closed = true
	return nil
}

func (c *fzConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (c *fzConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *fzConn) SetDeadline(t time.Time) error      { return nil }
func (c *fzConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *fzConn) SetWriteDeadline(t time.Time) error { return nil }

// fzServerConn is a server Conn of dialect d reading data, as if the
// handshake had just completed.
func fzServerConn(data []byte, chunk int, d Dialect, limit int64, dp *deflateParams) *Conn {
	h := &Handler{ReadLimit: limit}
	if dp != nil {
		h.Compression = &CompressionOptions{ContextTakeover: !dp.clientNoTakeover}
	}
	netConn := &fzConn{data: data, chunk: chunk}
	brw := bufio.NewReadWriter(bufio.NewReader(netConn), bufio.NewWriter(netConn))
	hs := &handshake{dialect: d, deflate: dp}
	return newConn(netConn, brw, hs, new(http.Request), false, h)
}

// fzMsg is a message read.
type fzMsg struct {
	typ  MessageType
	data []byte
}

func (m fzMsg) String() string {
	if len(m.data) > 64 {
		return fmt.Sprintf("%v %q... (%d bytes)", m.typ, m.data[:64], len(m.data))
	}
	return fmt.Sprintf("%v %q", m.typ, m.data)
}

// fzReadAll reads messages from c until an error, with ReadMessage or, if
// small > 0, with NextReader and reads of small bytes.
func fzReadAll(c *Conn, small int) ([]fzMsg, error) {
	var msgs []fzMsg
	for {
		if small == 0 {
			typ, b, err := c.ReadMessage()
			if err != nil {
				return msgs, err
			}
			msgs = append(msgs, fzMsg{typ, b})
			continue
		}
		typ, r, err := c.NextReader()
		if err != nil {
			return msgs, err
		}
		var b []byte
		buf := make([]byte, small)
		for {
			n, err := r.Read(buf)
			if n > len(buf) {
				panic("Read returned more than asked")
			}
			b = append(b, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				return msgs, err
			}
		}
		msgs = append(msgs, fzMsg{typ, b})
	}
}

// fzOutcome is the set of ends of reading that the reference accepts.
type fzOutcome struct {
	eof   bool                // io.EOF or io.ErrUnexpectedEOF: the input ran out
	close *CloseError         // the peer's close
	codes map[StatusCode]bool // a *ProtocolError with one of these codes
}

func fzEOF() *fzOutcome                 { return &fzOutcome{eof: true} }
func fzFail(code StatusCode) *fzOutcome { return (&fzOutcome{}).or(code) }

func (o *fzOutcome) or(code StatusCode) *fzOutcome {
	if o.codes == nil {
		o.codes = map[StatusCode]bool{}
	}
	o.codes[code] = true
	return o
}

func (o *fzOutcome) String() string {
	var s []string
	if o.eof {
		s = append(s, "EOF")
	}
	if o.close != nil {
		s = append(s, fmt.Sprintf("close %d %q", o.close.Code, o.close.Reason))
	}
	for code := range o.codes {
		s = append(s, fmt.Sprintf("fail %d", code))
	}
	slices.Sort(s)
	return strings.Join(s, " or ")
}

func (o *fzOutcome) accepts(err error) bool {
	var ce *CloseError
	var pe *ProtocolError
	switch {
	case errors.As(err, &ce):
		return o.close != nil && *o.close == *ce
	case errors.As(err, &pe):
		return o.codes[pe.Code]
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return o.eof
	}
	return false
}

// fzCheck compares what the server read with the reference's messages and
// end.
func fzCheck(t *testing.T, got []fzMsg, err error, want []fzMsg, end *fzOutcome) {
	t.Helper()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Fatalf("message %d not read (read ended with %v): want %v", i, err, want[i])
		case i >= len(want):
			t.Fatalf("message %d read, the reference has none: %v (reference end: %v)", i, got[i], end)
		case got[i].typ != want[i].typ || !bytes.Equal(got[i].data, want[i].data):
			t.Fatalf("message %d read as %v, want %v", i, got[i], want[i])
		}
	}
	if !end.accepts(err) {
		t.Fatalf("after %d messages reading ended with %v (%T), want %v", len(got), err, err, end)
	}
}

// fzBounded runs f, failing t if it does not return within d.
func fzBounded(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Fatalf("still running after %v:\n%s", d, buf)
	}
}

// fzAllocated returns how many bytes of heap f allocated.
func fzAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// fzRace is set under the race detector, whose sync.Pool drops a share of
// what is put back: each read into a pooled buffer may then allocate one.
var fzRace = soakRaceEnabled()

// fzAllocBound is the most that reading n bytes without compression may
// allocate: a few times what arrived, and a fixed amount for the
// connection's buffers. Allocating by what a frame header claims would let
// a peer make the server commit memory it never sends.
func fzAllocBound(n int) uint64 {
	if fzRace {
		return 256<<10 + 4112*uint64(n)
	}
	return 256<<10 + 16*uint64(n)
}

// ---------------------------------------------------------------------------
// Reference decoder of RFC 6455 client frames.

type fzHybiModel struct {
	data    []byte
	limit   int64
	deflate *deflateParams
	history []byte // inflated messages, with client context takeover
}

type fzHeader struct {
	fin    bool
	rsv    byte // RSV1 = 4, RSV2 = 2, RSV3 = 1
	op     byte
	length uint64
	mask   [4]byte
}

// frame reads up to the next data frame header, acting on the control
// frames before it; a non-nil outcome ends the stream.
func (m *fzHybiModel) frame() (fzHeader, *fzOutcome) {
	for {
		var h fzHeader
		if len(m.data) < 2 {
			return h, fzEOF()
		}
		b0, b1 := m.data[0], m.data[1]
		n := 2
		switch b1 & 0x7F {
		case 126:
			n += 2
		case 127:
			n += 8
		}
		masked := b1&0x80 != 0
		if masked {
			n += 4
		}
		if len(m.data) < n {
			return h, fzEOF()
		}
		switch l := b1 & 0x7F; l {
		case 126:
			h.length = uint64(binary.BigEndian.Uint16(m.data[2:]))
		case 127:
			h.length = binary.BigEndian.Uint64(m.data[2:])
			if h.length>>63 != 0 {
				return h, fzFail(StatusProtocolError)
			}
		default:
			h.length = uint64(l)
		}
		if masked {
			copy(h.mask[:], m.data[n-4:n])
		}
		m.data = m.data[n:]
		h.fin, h.rsv, h.op = b0&0x80 != 0, b0>>4&7, b0&0xF
		switch {
		case h.rsv&3 != 0, h.rsv&4 != 0 && (m.deflate == nil || h.op != 1 && h.op != 2), !masked:
			return h, fzFail(StatusProtocolError)
		}
		switch h.op {
		case 0, 1, 2:
			return h, nil
		case 8, 9, 10:
			if !h.fin || h.length > 125 {
				return h, fzFail(StatusProtocolError)
			}
			p, truncated := m.payload(h)
			if truncated {
				return h, fzEOF()
			}
			if h.op != 8 {
				continue // ping (answered) or pong
			}
			switch {
			case len(p) == 0:
				return h, &fzOutcome{close: &CloseError{Code: StatusNoStatusRcvd}}
			case len(p) == 1, !fzSendable(binary.BigEndian.Uint16(p)):
				return h, fzFail(StatusProtocolError)
			case !utf8.Valid(p[2:]):
				return h, fzFail(StatusInvalidPayload)
			}
			return h, &fzOutcome{close: &CloseError{Code: StatusCode(binary.BigEndian.Uint16(p)), Reason: string(p[2:])}}
		default:
			return h, fzFail(StatusProtocolError)
		}
	}
}

// payload reads what there is of a frame's payload, unmasked.
func (m *fzHybiModel) payload(h fzHeader) (p []byte, truncated bool) {
	n := uint64(len(m.data))
	if h.length < n {
		n = h.length
	}
	p = bytes.Clone(m.data[:n])
	m.data = m.data[n:]
	for i := range p {
		p[i] ^= h.mask[i%4]
	}
	return p, n < h.length
}

// overLimit reports whether a frame of length, after raw bytes of its
// message, takes the message beyond the limit (allowing slack more).
func (m *fzHybiModel) overLimit(raw int64, length uint64, slack int64) bool {
	if m.limit < 0 {
		return false
	}
	room := m.limit + slack - raw
	return room < 0 || length > uint64(room)
}

func (m *fzHybiModel) dict() []byte {
	if m.deflate == nil || m.deflate.clientNoTakeover {
		return nil
	}
	return m.history
}

// contentFails adds to o the failures that the content inflated from
// payload (complete or not) shows.
func (m *fzHybiModel) contentFails(o *fzOutcome, typ byte, payload []byte, complete bool) {
	in := payload
	if complete {
		in = append(bytes.Clone(payload), fzTail...)
	}
	// Inflated whole (within reason): past the limit, the decompressor may
	// report corrupt data in the same read as the bytes that overflow.
	out, err := fzInflate(in, m.dict(), -1)
	var corrupt stdflate.CorruptInputError
	switch {
	case errors.As(err, &corrupt):
		o.or(StatusInvalidPayload)
		if m.limit >= 0 {
			// klauspost/compress accepts some streams compress/flate
			// (and zlib) refuse, such as a Huffman code without an
			// end-of-block symbol, and inflates past that point.
			o.or(StatusMessageTooBig)
		}
	case complete && err != nil:
		o.or(StatusInvalidPayload)
	}
	if m.limit >= 0 && int64(len(out)) > m.limit {
		o.or(StatusMessageTooBig)
	}
	if typ == 1 && (complete && !utf8.Valid(out) || !fzValidPrefix(out)) {
		o.or(StatusInvalidPayload)
	}
}

// message reads the rest of a message that starts with header h.
func (m *fzHybiModel) message(h fzHeader) (fzMsg, *fzOutcome) {
	typ, compressed := h.op, h.rsv&4 != 0
	var raw int64
	var content []byte // the payload
	var slack int64
	if compressed {
		slack = compressedSlack(m.limit)
	}
	// end is how the message ends when it ends early: for a compressed
	// message, the decompressor reads ahead of the content it checks, so
	// what its content shows so far may come first.
	end := func(o *fzOutcome) (fzMsg, *fzOutcome) {
		if compressed {
			m.contentFails(o, typ, content, false)
		}
		return fzMsg{}, o
	}
	for {
		if m.overLimit(raw, h.length, slack) {
			return end(fzFail(StatusMessageTooBig))
		}
		p, truncated := m.payload(h)
		raw += int64(len(p))
		content = append(content, p...)
		if !compressed && typ == 1 && !fzValidPrefix(content) {
			return end(fzFail(StatusInvalidPayload))
		}
		if truncated {
			return end(fzEOF())
		}
		if h.fin {
			break
		}
		var o *fzOutcome
		if h, o = m.frame(); o != nil {
			return end(o)
		}
		if h.op != 0 {
			return end(fzFail(StatusProtocolError))
		}
	}
	if !compressed {
		if typ == 1 && !utf8.Valid(content) {
			return fzMsg{}, fzFail(StatusInvalidPayload)
		}
		return fzMsg{MessageType(typ), content}, nil
	}
	o := &fzOutcome{}
	m.contentFails(o, typ, content, true)
	if len(o.codes) > 0 {
		return fzMsg{}, o
	}
	out, _ := fzInflate(append(bytes.Clone(content), fzTail...), m.dict(), m.limit)
	if !m.deflate.clientNoTakeover {
		m.history = append(m.history, out...)
		if size := 1 << m.deflate.clientBits; len(m.history) > size {
			m.history = m.history[len(m.history)-size:]
		}
	}
	return fzMsg{MessageType(typ), out}, nil
}

// fzModelHybi decodes data as a client's frames: the messages a server
// must deliver, and how reading must end.
func fzModelHybi(data []byte, limit int64, dp *deflateParams) ([]fzMsg, *fzOutcome) {
	m := &fzHybiModel{data: data, limit: limit, deflate: dp}
	var msgs []fzMsg
	for {
		h, o := m.frame()
		if o != nil {
			return msgs, o
		}
		if h.op == 0 {
			return msgs, fzFail(StatusProtocolError)
		}
		msg, o := m.message(h)
		if o != nil {
			return msgs, o
		}
		msgs = append(msgs, msg)
	}
}

// ---------------------------------------------------------------------------
// Reference decoder of hixie-75/76 client frames.

func fzModelHixie(data []byte, limit int64, d Dialect) ([]fzMsg, *fzOutcome) {
	over := func(n uint64) bool { return limit >= 0 && n > uint64(limit) }
	var msgs []fzMsg
	for {
		if len(data) == 0 {
			return msgs, fzEOF()
		}
		typ := data[0]
		data = data[1:]
		switch {
		case typ == 0x00:
			end := bytes.IndexByte(data, 0xFF)
			text := data
			if end >= 0 {
				text = data[:end]
			}
			o := &fzOutcome{}
			if !fzValidPrefix(text) || end >= 0 && !utf8.Valid(text) {
				o.or(StatusInvalidPayload)
			}
			if over(uint64(len(text))) {
				o.or(StatusMessageTooBig)
			}
			if len(o.codes) > 0 {
				return msgs, o
			}
			if end < 0 {
				return msgs, fzEOF()
			}
			msgs = append(msgs, fzMsg{TextMessage, bytes.Clone(text)})
			data = data[end+1:]
		case typ&0x80 == 0:
			end := bytes.IndexByte(data, 0xFF)
			skipped := len(data)
			if end >= 0 {
				skipped = end
			}
			if over(uint64(skipped)) {
				return msgs, fzFail(StatusMessageTooBig)
			}
			if end < 0 {
				return msgs, fzEOF()
			}
			data = data[end+1:]
		default:
			var length uint64
			for {
				if len(data) == 0 {
					return msgs, fzEOF()
				}
				b := data[0]
				data = data[1:]
				length = length<<7 | uint64(b&0x7F)
				if over(length) || length > 1<<48 {
					return msgs, fzFail(StatusMessageTooBig)
				}
				if b&0x80 == 0 {
					break
				}
			}
			if typ == 0xFF && length == 0 && d == Hixie76 {
				return msgs, &fzOutcome{close: &CloseError{Code: StatusNoStatusRcvd}}
			}
			if uint64(len(data)) < length {
				return msgs, fzEOF()
			}
			data = data[length:]
		}
	}
}

// ---------------------------------------------------------------------------
// FuzzHybiFrames and FuzzHixieFrames.

var fzLimits = [4]int64{0, 20, 1000, -1} // 0: the default

func fzLimit(sel byte) int64 {
	if l := fzLimits[sel&3]; l != 0 {
		return l
	}
	return DefaultReadLimit
}

// fzDeflates are the permessage-deflate settings FuzzHybiFrames tries.
var fzDeflates = [4]*deflateParams{
	nil,
	{serverNoTakeover: true, clientNoTakeover: true, serverBits: 15, clientBits: 15},
	{serverBits: 15, clientBits: 15},
	{serverBits: 15, clientBits: 9},
}

// fzFrame is a client frame: first byte b0, payload masked with a fixed key.
func fzJoin(b ...[]byte) []byte { return bytes.Join(b, nil) }

func fzClose(code StatusCode, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

func fzFrame(b0 byte, payload []byte) []byte {
	return fzJoin(fzFrameHeader(b0, len(payload)), fzMasked(payload))
}

func fzFrameHeader(b0 byte, n int) []byte {
	var f []byte
	switch {
	case n < 126:
		f = []byte{b0, 0x80 | byte(n)}
	case n < 1<<16:
		f = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		f = binary.BigEndian.AppendUint64([]byte{b0, 0x80 | 127}, uint64(n))
	}
	return append(f, 1, 2, 3, 4)
}

func fzMasked(payload []byte) []byte {
	p := bytes.Clone(payload)
	for i := range p {
		p[i] ^= byte(1 + i%4)
	}
	return p
}

// fzDeflate compresses p the way a client does, without the 4-byte tail.
func fzDeflate(p []byte) []byte {
	var buf bytes.Buffer
	w, _ := stdflate.NewWriter(&buf, stdflate.BestSpeed)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func FuzzHybiFrames(f *testing.F) {
	hello := fzFrame(0x81, []byte("Hello"))
	seeds := [][]byte{
		nil,
		hello,
		fzJoin(fzFrame(0x01, []byte("Hel")), fzFrame(0x89, []byte("ping")), fzFrame(0x80, []byte("lo"))),
		fzJoin(fzFrame(0x82, []byte{0, 1, 2, 0xff}), fzFrame(0x88, fzClose(1000, "bye"))),
		fzFrame(0x81, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")),
		fzJoin(fzFrame(0x01, []byte("\xce")), fzFrame(0x80, []byte("\xba"))),
		fzFrame(0x81, []byte("\xed\xa0\x80")),
		{0x81, 0x05, 'H', 'e', 'l', 'l', 'o'},                   // unmasked
		fzFrame(0x88, []byte{0x03}),                             // 1-byte close
		fzFrame(0x88, fzClose(1005, "")),                        // unsendable code
		fzFrame(0x83, nil),                                      // reserved opcode
		fzFrame(0x09, nil),                                      // fragmented ping
		fzFrame(0x80, []byte("x")),                              // continuation first
		fzFrame(0xC1, fzDeflate([]byte("Hello, Hello, Hello"))), // compressed
		fzJoin(fzFrame(0x41, fzDeflate([]byte("Hello"))[:3]), fzFrame(0x80, fzDeflate([]byte("Hello"))[3:])),
		fzJoin(fzFrame(0xC1, fzDeflate([]byte("Hello"))), fzFrame(0xC1, fzDeflate([]byte("Hello")))),
		fzFrame(0xC1, []byte{0xff, 0xff}), // corrupt deflate
		fzFrame(0xE1, nil),                // RSV2
		fzFrame(0x81, make([]byte, 200)),  // over the small limits
		fzJoin(fzFrameHeader(0x81, 1<<20+1), []byte("short")),
		{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, // length MSB
	}
	for i, s := range seeds {
		f.Add(s, byte(i*37), byte(i%5))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode, chunk byte) {
		limit := fzLimit(mode)
		dp := fzDeflates[mode>>2&3]
		small := 0
		if mode&0x10 != 0 {
			small = 1 + int(chunk%7)
		}
		d := [4]Dialect{Hybi07, Hybi08, RFC6455, RFC6455}[mode>>5&3]
		var got []fzMsg
		var err error
		allocated := fzAllocated(func() {
			fzBounded(t, 10*time.Second, func() {
				c := fzServerConn(data, int(chunk), d, limit, dp)
				defer c.CloseNow()
				got, err = fzReadAll(c, small)
			})
		})
		if dp == nil && allocated > fzAllocBound(len(data)) {
			t.Fatalf("%d bytes allocated to read %d bytes", allocated, len(data))
		}
		for _, m := range got {
			switch {
			case m.typ != TextMessage && m.typ != BinaryMessage:
				t.Fatalf("message of type %v", m.typ)
			case m.typ == TextMessage && !utf8.Valid(m.data):
				t.Fatalf("text message is not UTF-8: %q", m.data)
			case limit >= 0 && int64(len(m.data)) > limit:
				t.Fatalf("message of %d bytes, limit %d", len(m.data), limit)
			}
		}
		var params *deflateParams
		if dp != nil {
			cp := *dp
			params = &cp
		}
		want, end := fzModelHybi(data, limit, params)
		fzCheck(t, got, err, want, end)
	})
}

func FuzzHixieFrames(f *testing.F) {
	seeds := [][]byte{
		nil,
		{0x00, 'H', 'i', 0xFF},
		{0x00, 0xFF, 0x00, 'a', 0x00, 'b', 0xFF},
		{0x00, 0xce, 0xba, 0xFF, 0xFF, 0x00},
		{0x00, 0xce, 0xFF},
		{0x00, 0xed, 0xa0, 0x80, 0xFF},
		{0x05, 'j', 'u', 'n', 'k', 0xFF, 0x00, 'x', 0xFF},
		{0x80, 0x03, 'a', 'b', 'c', 0x00, 'y', 0xFF},
		{0xFF, 0x80, 0x00},
		{0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x81, 0x01},
		append(append([]byte{0x00}, bytes.Repeat([]byte("é"), 600)...), 0xFF),
		{0x00, 'n', 'o', ' ', 'e', 'n', 'd'},
	}
	for i, s := range seeds {
		f.Add(s, byte(i), byte(i%3))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode, chunk byte) {
		limit := fzLimit(mode)
		d := Hixie75
		if mode&4 != 0 {
			d = Hixie76
		}
		small := 0
		if mode&8 != 0 {
			small = 1 + int(chunk%7)
		}
		var got []fzMsg
		var err error
		allocated := fzAllocated(func() {
			fzBounded(t, 10*time.Second, func() {
				c := fzServerConn(data, int(chunk), d, limit, nil)
				defer c.CloseNow()
				got, err = fzReadAll(c, small)
			})
		})
		if allocated > fzAllocBound(len(data)) {
			t.Fatalf("%d bytes allocated to read %d bytes", allocated, len(data))
		}
		for _, m := range got {
			if m.typ != TextMessage || !utf8.Valid(m.data) || limit >= 0 && int64(len(m.data)) > limit {
				t.Fatalf("message %v breaks the invariants (limit %d)", m, limit)
			}
		}
		want, end := fzModelHixie(data, limit, d)
		fzCheck(t, got, err, want, end)
	})
}

// ---------------------------------------------------------------------------
// FuzzUTF8

func FuzzUTF8(f *testing.F) {
	for _, s := range []string{
		"", "ascii", "κόσμε", "\U0010FFFF", "\xef\xbf\xbf", "\xc3\x28", "\xa0\xa1",
		"\xe2\x82\x28", "\xf0\x90\x28\xbc", "\xed\xa0\x80", "\xc0\xaf",
		"\xe0\x80\xaf", "\xf4\x90\x80\x80", "\xff", "ok\xf0\x9f\x98", "a\x00b",
	} {
		f.Add([]byte(s), uint16(len(s)/2), uint16(len(s)))
	}
	f.Add([]byte("a\xf0\x9f\x98\x80b\xe2\x82\xac"), uint16(2), uint16(7))
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16) {
		i, j := int(cut1)%(len(data)+1), int(cut2)%(len(data)+1)
		if i > j {
			i, j = j, i
		}
		var v utf8Validator
		ok := true
		for _, cut := range [][2]int{{0, i}, {i, j}, {j, len(data)}} {
			got := v.write(data[cut[0]:cut[1]])
			if want := fzValidPrefix(data[:cut[1]]); got != want {
				t.Fatalf("write up to %q: %v, want %v (whether a valid text can start so)", data[:cut[1]], got, want)
			}
			if ok = got; !ok {
				break
			}
		}
		if ok {
			if got, want := v.complete(), utf8.Valid(data); got != want {
				t.Fatalf("%q split at %d, %d: complete %v, utf8.Valid %v", data, i, j, got, want)
			}
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzInflate

func FuzzInflate(f *testing.F) {
	hello := fzDeflate([]byte("Hello, Hello, Hello"))
	for i, s := range [][]byte{
		nil,
		hello,
		append(bytes.Clone(hello), hello...),
		fzDeflate(bytes.Repeat([]byte("abc"), 1000)),
		{0x01, 0x00, 0x00, 0xff, 0xff},          // a final empty block only
		{0x03, 0x00},                            // final fixed block, empty
		{0xff, 0xff, 0xff},                      // corrupt
		{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0}, // "Hello" then garbage
	} {
		split := uint16(math.MaxUint16) // one message
		if i == 2 {
			split = uint16(len(hello)) // two
		}
		f.Add(s, split, byte(i*29))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16, mode byte) {
		limit := [4]int64{0: 50, 1: 4096, 2: 1 << 20, 3: -1}[mode&3]
		takeover := mode&4 != 0
		bits := 15
		if mode&8 != 0 {
			bits = 9
		}
		bufSize := []int{1, 7, 512, 4096}[mode>>4&3]
		chunk := []int{0, 1, 3, 100}[mode>>6&3]
		p := deflateParams{clientNoTakeover: !takeover, serverNoTakeover: true, clientBits: bits, serverBits: 15}
		msgs := [][]byte{data}
		if cut := int(split); cut < len(data) {
			msgs = [][]byte{data[:cut], data[cut:]}
		}
		var src []byte
		payload := func(b []byte) (int, error) {
			if len(src) == 0 {
				return 0, io.EOF
			}
			if chunk > 0 && len(b) > chunk {
				b = b[:chunk]
			}
			n := copy(b, src)
			src = src[n:]
			return n, nil
		}
		inf := newInflater(p, payload)
		var history []byte
		for i, msg := range msgs {
			src = msg
			var dict []byte
			if takeover {
				dict = history
			}
			ref, refErr := fzInflate(append(bytes.Clone(msg), fzTail...), dict, limit)
			refOK := refErr == nil && (limit < 0 || int64(len(ref)) <= limit)
			var out []byte
			var err error
			fzBounded(t, 10*time.Second, func() {
				inf.start()
				buf := make([]byte, bufSize)
				for {
					var n int
					n, err = inf.read(buf)
					if n > len(buf) {
						panic("inflater read more than asked")
					}
					out = append(out, buf[:n]...)
					if err != nil || limit >= 0 && int64(len(out)) > limit {
						break // as the connection stops reading
					}
				}
			})
			if limit >= 0 && int64(len(out)) > limit+int64(bufSize) {
				t.Fatalf("message %d: %d bytes inflated, limit %d, reads of %d", i, len(out), limit, bufSize)
			}
			switch {
			case refOK && err != io.EOF:
				t.Fatalf("message %d: inflater ended with %v after %d bytes; compress/flate inflates %d bytes", i, err, len(out), len(ref))
			case refOK && !bytes.Equal(out, ref):
				t.Fatalf("message %d: inflated %q, compress/flate %q", i, out, ref)
			case !refOK && err == io.EOF && (limit < 0 || int64(len(out)) <= limit):
				t.Fatalf("message %d: inflated %q (%d bytes), compress/flate: %v, %d bytes", i, out, len(out), refErr, len(ref))
			case err != nil && err != io.EOF && err != errBadDeflate:
				// The payload is whole: data that does not end is bad
				// data, not a connection cut short.
				t.Fatalf("message %d: inflater error %v after %d bytes (compress/flate: %v)", i, err, len(out), refErr)
			}
			if err == io.EOF && inf.fr != nil {
				t.Fatalf("message %d: decompressor not released at the end of the message", i)
			}
			if !refOK {
				return // the connection fails here
			}
			history = append(history, out...)
			if len(history) > 1<<bits {
				history = history[len(history)-1<<bits:]
			}
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzExtensions

var fzKnownDeflateParams = map[string]bool{
	"server_no_context_takeover": true, "client_no_context_takeover": true,
	"server_max_window_bits": true, "client_max_window_bits": true,
}

// fzBits parses a window bits value as RFC 7692 section 7.1.2 defines it:
// 1*DIGIT without leading zero, 8 to 15.
func fzBits(v string) (int, bool) {
	switch v {
	case "8", "9":
		return int(v[0] - '0'), true
	}
	if len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5' {
		return 10 + int(v[1]-'0'), true
	}
	return 0, false
}

// fzCheckDeflateAnswer checks a Sec-WebSocket-Extensions answer against
// the parameters in force: one permessage-deflate element with known
// parameters, each once, saying what p says.
func fzCheckDeflateAnswer(t *testing.T, answer string, p deflateParams, opts *CompressionOptions) {
	t.Helper()
	offers := parseExtensions([]string{answer})
	if len(offers) != 1 || offers[0].name != "permessage-deflate" || !offers[0].ok {
		t.Fatalf("answer %q does not re-parse as one permessage-deflate element: %+v", answer, offers)
	}
	seen := map[string]string{}
	for _, param := range offers[0].params {
		if !fzKnownDeflateParams[param.name] {
			t.Fatalf("answer %q has unknown parameter %q", answer, param.name)
		}
		if _, dup := seen[param.name]; dup {
			t.Fatalf("answer %q repeats %q", answer, param.name)
		}
		seen[param.name] = param.value
		bits, valid := fzBits(param.value)
		switch param.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if param.hasValue {
				t.Fatalf("answer %q: %s has a value", answer, param.name)
			}
		case "server_max_window_bits":
			if !valid || bits != p.serverBits {
				t.Fatalf("answer %q: server_max_window_bits, server window %d", answer, p.serverBits)
			}
		case "client_max_window_bits":
			if !valid || bits != p.clientBits {
				t.Fatalf("answer %q: client_max_window_bits, client window %d", answer, p.clientBits)
			}
		}
	}
	_, snt := seen["server_no_context_takeover"]
	_, cnt := seen["client_no_context_takeover"]
	if snt != p.serverNoTakeover || cnt != p.clientNoTakeover {
		t.Fatalf("answer %q, params %+v", answer, p)
	}
	if !opts.ContextTakeover && (!snt || !cnt) {
		t.Fatalf("answer %q keeps a context without ContextTakeover", answer)
	}
	maxBits := opts.MaxWindowBits
	if maxBits < 8 || maxBits > 15 {
		maxBits = 15
	}
	if p.serverBits < 8 || p.serverBits > maxBits || p.clientBits < 8 || p.clientBits > 15 {
		t.Fatalf("answer %q: windows out of range: %+v (max %d)", answer, p, maxBits)
	}
}

// fzAcceptable reports whether a parsed offer is one a server may accept
// (RFC 7692 section 7): permessage-deflate, well formed, with known
// parameters given at most once and valid values. It returns the
// parameters in force when accepted under opts.
func fzAcceptable(o extensionOffer, opts *CompressionOptions) (deflateParams, bool) {
	maxBits := opts.MaxWindowBits
	if maxBits < 8 || maxBits > 15 {
		maxBits = 15
	}
	p := deflateParams{serverBits: maxBits, clientBits: 15}
	if o.name != "permessage-deflate" || !o.ok {
		return p, false
	}
	seen := map[string]bool{}
	for _, param := range o.params {
		if seen[param.name] || !fzKnownDeflateParams[param.name] {
			return p, false
		}
		seen[param.name] = true
		bits, valid := fzBits(param.value)
		switch param.name {
		case "server_no_context_takeover":
			p.serverNoTakeover = true
		case "client_no_context_takeover":
			p.clientNoTakeover = true
		case "server_max_window_bits":
			if !valid {
				return p, false
			}
			p.serverBits = min(bits, maxBits)
		case "client_max_window_bits":
			if param.hasValue && !valid {
				return p, false
			}
			if param.hasValue {
				p.clientBits = bits
			}
			p.clientBits = min(p.clientBits, maxBits)
		}
		if strings.HasSuffix(param.name, "takeover") && param.hasValue {
			return p, false
		}
	}
	if !opts.ContextTakeover {
		p.serverNoTakeover, p.clientNoTakeover = true, true
	}
	return p, true
}

func FuzzExtensions(f *testing.F) {
	for i, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; client_max_window_bits=10; server_max_window_bits=\"12\"",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
		"x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=08, permessage-deflate",
		"permessage-deflate; client_max_window_bits; client_max_window_bits",
		"permessage-deflate; foo=\"a,b\", permessage-deflate; server_max_window_bits=15",
		"permessage-deflate; server_max_window_bits=\"1\\5\"",
		"permessage-deflate;server_max_window_bits=7",
		"permessage-deflate; client_no_context_takeover=1\npermessage-deflate; client_max_window_bits=15",
		", ,permessage-deflate ; ; server_no_context_takeover",
		"\"permessage-deflate\"",
	} {
		f.Add(s, byte(i*41))
	}
	f.Fuzz(func(t *testing.T, header string, mode byte) {
		opts := &CompressionOptions{
			ContextTakeover: mode&1 != 0,
			MaxWindowBits:   []int{0, 8, 10, 15, 7, 16, -1, 12}[mode>>1&7],
		}
		values := strings.Split(header, "\n")
		offers := parseExtensions(values)
		for _, o := range offers {
			if !o.ok {
				continue
			}
			if !isToken(o.name) {
				t.Fatalf("offer %+v accepted with a name that is no token", o)
			}
			for _, p := range o.params {
				if !isToken(p.name) || p.hasValue && !isToken(p.value) {
					t.Fatalf("offer %+v accepted with parameter %+v", o, p)
				}
			}
		}
		p, answer, ok := negotiateDeflate(offers, opts)
		var want deflateParams
		var acceptable bool
		for _, o := range offers {
			if want, acceptable = fzAcceptable(o, opts); acceptable {
				break
			}
		}
		if ok != acceptable {
			t.Fatalf("%q: accepted %v (%q), reference %v", header, ok, answer, acceptable)
		}
		if !ok {
			return
		}
		if p != want {
			t.Fatalf("%q: params %+v, reference %+v", header, p, want)
		}
		fzCheckDeflateAnswer(t, answer, p, opts)
	})
}

// ---------------------------------------------------------------------------
// FuzzHixieKey

func FuzzHixieKey(f *testing.F) {
	for _, k := range []string{
		"4 @1  46546xW%0l 1 5", "12998 5 Y3 1  .P00",
		"18x 6]8vM;54 *(5:  {   U1]8  z [  8", "1_ tx7X d  <  nw  334J702) 7]o}` 0",
		"", " ", "0", "0 ", "4294967295 ", "4294967296 ", "42949672950  ",
		"000000000000000000000000004294967295 ", "7 7 7 ", "3  ", "99999999999999999999999 ",
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key string) {
		got, err := hixieKeyNumber(key)
		want, wantErr := fzHixieKey(key)
		switch {
		case wantErr == nil && err != nil:
			t.Fatalf("%q: %v, want %d", key, err, want)
		case wantErr == nil && got != want:
			t.Fatalf("%q: %d, want %d", key, got, want)
		case wantErr == fzErrKeyTooLarge && !errors.Is(err, errKeyTooLarge),
			wantErr == fzErrKeyNoSpace && !errors.Is(err, errKeyNoSpace),
			wantErr == fzErrKeyRemainder && !errors.Is(err, errKeyRemainder):
			t.Fatalf("%q: %d, %v; want the error %q", key, got, err, wantErr)
		}
	})
}

// ---------------------------------------------------------------------------
// FuzzHandshake

// fzValidHost is net/http's server-side check of the Host field
// (httpguts.ValidHostHeader): requests with any other byte never reach a
// handler.
func fzValidHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!$%&'()*+,-.:;=[]_~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fzRequest parses data as net/http's server does before it calls a
// handler; ok is false for what the server itself refuses.
func fzRequest(data []byte) (*http.Request, bool) {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(data)))
	if err != nil || r.ProtoMajor != 1 {
		return nil, false
	}
	// ReadRequest has moved the Host field to r.Host (unless the target
	// was absolute). The server refuses an HTTP/1.1 request without one.
	if r.ProtoAtLeast(1, 1) && r.Host == "" || !fzValidHost(r.Host) {
		return nil, false
	}
	return r, true
}

// fzTokens reports whether a comma-separated field lists token.
func fzTokens(r *http.Request, name, token string) bool {
	for _, v := range r.Header.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

func fzHandler(cfg byte) *Handler {
	h := &Handler{Serve: func(*Conn) {}}
	switch cfg & 3 {
	case 1:
		h.Origins = []string{"*"}
	case 2:
		h.Origins = []string{"http://example.com", "*.example.org"}
	case 3:
		h.Origins = []string{"null", "localhost:*"}
	}
	switch cfg >> 2 & 3 {
	case 1:
		h.Location = "ws://example.com/chat"
	case 2:
		h.Location = "wss://Example.com:8443/a%20b"
	}
	if cfg&0x10 != 0 {
		h.Subprotocols = []string{"chat", "superchat"}
	}
	if cfg&0x20 != 0 {
		h.Compression = &CompressionOptions{ContextTakeover: cfg&0x40 != 0, MaxWindowBits: 10}
	}
	h.TrustProxyHeaders = cfg&0x40 != 0
	return h
}

func FuzzHandshake(f *testing.F) {
	host := "example.com"
	for i, req := range []string{
		handshakeRequest(Hixie75, host, "/chat"),
		handshakeRequest(Hixie76, host, "/chat?x=1"),
		handshakeRequest(Hybi07, host, "/chat"),
		handshakeRequest(Hybi08, host, "/chat", "Sec-WebSocket-Protocol: chat, superchat"),
		handshakeRequest(RFC6455, host, "/chat", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"),
		handshakeRequest(RFC6455, host, "/a%20b", "Sec-WebSocket-Version: 8"),
		handshakeRequest(Hixie76, "Example.COM:80", "/chat", "Sec-WebSocket-Protocol: chat"),
		handshakeRequest(RFC6455, "example.com:8443", "/a%20b", "Forwarded: proto=https;host=example.com:8443"),
		"GET /chat HTTP/1.1\r\nHost: x.example.org\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nOrigin: null\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
		"GET http://example.com/chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key1: 1 0\r\nSec-WebSocket-Key2: 42949672950  \r\n\r\n12345678",
		"POST /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
	} {
		f.Add([]byte(req), byte(i*23))
	}
	f.Fuzz(func(t *testing.T, data []byte, cfg byte) {
		r, ok := fzRequest(data)
		if !ok {
			return
		}
		if cfg&0x80 != 0 {
			r.TLS = &tls.ConnectionState{}
		}
		h := fzHandler(cfg)
		hs, ref := h.negotiate(r)
		if ref != nil {
			if hs != nil || ref.status < 400 || ref.status > 599 || ref.reason < 0 || ref.reason >= numRefusals || ref.msg == "" {
				t.Fatalf("refusal %+v with handshake %+v", ref, hs)
			}
			if ref.reason != refNotWebSocket && !(fzTokens(r, "Connection", "upgrade") && fzTokens(r, "Upgrade", "websocket")) {
				t.Fatalf("not an upgrade, refused as %+v", ref)
			}
			return
		}
		if hs == nil {
			t.Fatal("neither handshake nor refusal")
		}
		if r.Method != http.MethodGet || !fzTokens(r, "Connection", "upgrade") || !fzTokens(r, "Upgrade", "websocket") {
			t.Fatalf("accepted %s without Connection: upgrade and Upgrade: websocket: %v", r.Method, r.Header)
		}
		version, hasVersion := r.Header["Sec-Websocket-Version"]
		key := r.Header.Get("Sec-WebSocket-Key")
		switch d := hs.dialect; {
		case d < Hixie75 || d > RFC6455:
			t.Fatalf("dialect %v", d)
		case d.hybi():
			wantD := map[string]Dialect{"7": Hybi07, "8": Hybi08, "13": RFC6455}[strings.TrimSpace(strings.Join(version, ","))]
			if d != wantD {
				t.Fatalf("dialect %v for Sec-WebSocket-Version %q", d, version)
			}
			if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
				t.Fatalf("key %q accepted", key)
			}
			sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			if len(hs.accept) != 28 || hs.accept != base64.StdEncoding.EncodeToString(sum[:]) {
				t.Fatalf("accept %q for key %q", hs.accept, key)
			}
		case hasVersion || key != "":
			t.Fatalf("%v for a request with Sec-WebSocket-Version %q, Key %q", d, version, key)
		case d == Hixie76:
			k1, err1 := fzHixieKey(r.Header.Get("Sec-WebSocket-Key1"))
			k2, err2 := fzHixieKey(r.Header.Get("Sec-WebSocket-Key2"))
			if err1 != nil || err2 != nil || k1 != hs.key1 || k2 != hs.key2 {
				t.Fatalf("keys %d %d, reference %d %v, %d %v", hs.key1, hs.key2, k1, err1, k2, err2)
			}
		case d == Hixie75:
			if r.Header.Get("Sec-WebSocket-Key1") != "" || r.Header.Get("Sec-WebSocket-Key2") != "" {
				t.Fatalf("hixie-75 for a request with keys")
			}
		}
		// scheme://host/path[?query]: what the request named, which net/http
		// let through even where url.Parse would not ("Host: 0%").
		scheme, rest, _ := strings.Cut(hs.location, "://")
		host, resource, _ := strings.Cut(rest, "/")
		if scheme != "ws" && scheme != "wss" || host == "" || !strings.HasPrefix(rest, host+"/") ||
			strings.ContainsFunc(hs.location, func(c rune) bool { return c <= ' ' || c == 0x7F }) {
			t.Fatalf("location %q (for a request to %q)", hs.location, r.RequestURI)
		}
		if h.Location != "" {
			want, _ := url.Parse(h.Location)
			wantPath := want.EscapedPath()
			if wantPath == "" {
				wantPath = "/"
			}
			path, _, _ := strings.Cut("/"+resource, "?")
			if hostWithoutDefaultPort(scheme, host) != hostWithoutDefaultPort(want.Scheme, want.Host) || path != wantPath {
				t.Fatalf("location %q accepted for Handler.Location %q", hs.location, h.Location)
			}
		}
		if hs.protocol != "" && (!slices.Contains(h.Subprotocols, hs.protocol) || !slices.Contains(hs.offered, hs.protocol)) {
			t.Fatalf("subprotocol %q chosen from %q, offered %q", hs.protocol, h.Subprotocols, hs.offered)
		}
		if cfg&3 == 2 && hs.origin != "" && !slices.ContainsFunc(h.Origins, func(o string) bool { return strings.EqualFold(o, hs.origin) }) {
			// Origins {"http://example.com", "*.example.org"}: either, with
			// the scheme's default port or none.
			o, err := url.Parse(hs.origin)
			if err != nil {
				t.Fatalf("origin %q accepted: %v", hs.origin, err)
			}
			oh := hostWithoutDefaultPort(o.Scheme, o.Host)
			if ok, _ := path.Match("*.example.org", oh); !ok && !(strings.EqualFold(o.Scheme, "http") && oh == "example.com") {
				t.Fatalf("origin %q accepted by %q", hs.origin, h.Origins)
			}
		}
		if hs.extensions != "" || hs.deflate != nil {
			if h.Compression == nil || !hs.dialect.hybi() || hs.deflate == nil {
				t.Fatalf("extensions %q for %v, Compression %v", hs.extensions, hs.dialect, h.Compression)
			}
			fzCheckDeflateAnswer(t, hs.extensions, *hs.deflate, h.Compression)
		}
		fzCheckAnswer(t, hs)
	})
}

// fzCheckAnswer writes the answer to hs and reads it back as a client
// would: a 101 whose fields say what hs says, and nothing more.
func fzCheckAnswer(t *testing.T, hs *handshake) {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	prefix := ""
	switch hs.dialect {
	case Hixie75:
		writeHixieAnswer(bw, hs)
	case Hixie76:
		prefix = "Sec-"
		writeHixieAnswer(bw, hs)
		challenge := hixieChallenge(hs.key1, hs.key2, [8]byte{})
		bw.Write(challenge[:])
	default:
		writeHybiAnswer(bw, hs)
	}
	bw.Flush()
	raw := buf.String()
	br := bufio.NewReader(&buf)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("answer %q: %v", raw, err)
	}
	want := http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}
	switch {
	case hs.dialect.hybi():
		want["Sec-Websocket-Accept"] = []string{hs.accept}
		if hs.protocol != "" {
			want["Sec-Websocket-Protocol"] = []string{hs.protocol}
		}
		if hs.extensions != "" {
			want["Sec-Websocket-Extensions"] = []string{hs.extensions}
		}
	default:
		want["Upgrade"] = []string{"WebSocket"}
		if hs.origin != "" {
			want[prefix+"Websocket-Origin"] = []string{hs.origin}
		}
		want[prefix+"Websocket-Location"] = []string{hs.location}
		if hs.protocol != "" {
			want[prefix+"Websocket-Protocol"] = []string{hs.protocol}
		}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || !fzSameHeader(resp.Header, want) {
		t.Fatalf("answer %q read as %d %v, want %v", raw, resp.StatusCode, resp.Header, want)
	}
	rest, _ := io.ReadAll(br)
	if wantRest := map[bool]int{true: 16, false: 0}[hs.dialect == Hixie76]; len(rest) != wantRest {
		t.Fatalf("answer %q: %d bytes after the head", raw, len(rest))
	}
}

func fzSameHeader(got, want http.Header) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			return false
		}
	}
	return true
}

// FuzzDialAnswer feeds the client's verification any answer to each
// dialect's request (first byte: the dialect): it never panics, and
// accepts only a 101 that agrees to what was offered.
func FuzzDialAnswer(f *testing.F) {
	const rfcAnswer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	for _, seed := range []string{
		"\x04" + rfcAnswer + "\r\n\x81\x02hi",
		"\x04" + rfcAnswer + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10; client_max_window_bits=9\r\n\r\n",
		"\x03" + rfcAnswer + "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n\r\n",
		"\x01HTTP/1.1 101 WebSocket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nSec-WebSocket-Origin: http://example.com\r\nSec-WebSocket-Location: ws://example.com/chat?x=1\r\nSec-WebSocket-Protocol: chat\r\n\r\n8jKS'y:G*Co,Wxa-",
		"\x00HTTP/1.1 101 Web Socket Protocol Handshake\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nWebSocket-Origin: http://example.com\r\nWebSocket-Location: ws://example.com/chat?x=1\r\n\r\n",
		"\x04HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nno!",
		"\x04HTTP/1.1 302 Found\r\nLocation: wss://example.org/\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	u, _ := url.Parse("ws://example.com/chat?x=1")
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		d := Dialect(data[0]%5 + 1)
		o := &DialOptions{Dialect: d, Subprotocols: []string{"chat"}, Header: http.Header{"Origin": {"http://example.com"}},
			Compression: &CompressionOptions{ContextTakeover: data[0]&8 == 0}}
		r, err := o.newRequest(u)
		if err != nil {
			t.Fatal(err)
		}
		// The keys of the specs' examples, which the seeds answer.
		r.key = "dGhlIHNhbXBsZSBub25jZQ=="
		r.n1, _ = hixieKeyNumber("4 @1  46546xW%0l 1 5")
		r.n2, _ = hixieKeyNumber("12998 5 Y3 1  .P00")
		r.key3 = [8]byte([]byte("^n:ds[4U"))
		resp, hs, err := r.readAnswer(bufio.NewReader(bytes.NewReader(data[1:])), u)
		var he *HandshakeError
		switch {
		case err == nil:
			if resp.StatusCode != 101 || hs.dialect != d || hs.protocol != "" && hs.protocol != "chat" {
				t.Fatalf("accepted %d, %v, %q", resp.StatusCode, hs.dialect, hs.protocol)
			}
			if p := hs.deflate; p != nil && (!d.hybi() || p.serverBits < 8 || p.serverBits > 15 || p.clientBits < 8 || p.clientBits > 15 ||
				!o.Compression.ContextTakeover && !(p.serverNoTakeover && p.clientNoTakeover)) {
				t.Fatalf("accepted deflate %+v", *p)
			}
		case errors.As(err, &he):
			if resp == nil || he.Status != resp.StatusCode || len(he.Body) > maxErrorBody {
				t.Fatalf("HandshakeError %+v for %v", he, resp)
			}
		case resp != nil:
			t.Fatalf("answer read, error %v", err)
		}
	})
}
