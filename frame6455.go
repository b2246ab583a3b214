package websocket

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"unicode/utf8"
	"unsafe"
)

// opcode is an RFC 6455 frame opcode (section 5.2).
type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

// rsv1 is the RSV1 bit in frameHeader.rsv: permessage-deflate's "compressed".
const rsv1 = 0x4

// maxControlPayload is the largest payload of a control frame (section 5.5).
const maxControlPayload = 125

// frameHeader is a decoded RFC 6455 frame header.
type frameHeader struct {
	fin    bool
	rsv    byte // RSV1-3 in the low three bits
	op     opcode
	masked bool
	length int64
	mask   [4]byte
}

// frameSource is what frame headers are read from: a connReader, or a
// bufio.Reader in tests.
type frameSource interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// readFrameHeader decodes one frame header from br. It rejects what no
// extension could make valid here; what depends on the connection's state
// (masking, reserved bits, opcode sequencing) is checked by the caller.
func readFrameHeader(br frameSource) (frameHeader, error) {
	b, err := br.Peek(2)
	if err != nil {
		return frameHeader{}, err
	}
	n := headerSize(b)
	b, err = br.Peek(n)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return frameHeader{}, err
	}
	var h frameHeader
	err = h.decode(b)
	br.Discard(n)
	return h, err
}

// headerSize is the size of the frame header that starts with the two
// bytes of b.
func headerSize(b []byte) int {
	n := 2
	switch b[1] & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b[1]&0x80 != 0 {
		n += 4
	}
	return n
}

// decode decodes a whole frame header, b (headerSize bytes), into h.
func (h *frameHeader) decode(b []byte) error {
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] >> 4 & 0x7
	h.op = opcode(b[0] & 0xF)
	h.masked = b[1]&0x80 != 0
	switch l := b[1] & 0x7F; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
	case 127:
		l := binary.BigEndian.Uint64(b[2:])
		if l > math.MaxInt64 {
			return &ProtocolError{StatusProtocolError, "frame length has the most significant bit set"}
		}
		h.length = int64(l)
	default:
		h.length = int64(l)
	}
	if h.masked {
		copy(h.mask[:], b[len(b)-4:])
	}
	return nil
}

// maxHeaderSize is the largest header of a frame the server sends; a
// client's adds its mask key.
const maxHeaderSize = 10

// appendFrameHeader appends the header of an unmasked server frame.
func appendFrameHeader(b []byte, fin bool, op opcode, rsv1 bool, length int) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	switch {
	case length <= 125:
		return append(b, b0, byte(length))
	case length <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, b0, 126), uint16(length))
	default:
		return binary.BigEndian.AppendUint64(append(b, b0, 127), uint64(length))
	}
}

// maskBytes XORs b with the mask key, starting at position pos of the key,
// and returns the position after b. The same call masks and unmasks.
func maskBytes(key [4]byte, pos int, b []byte) int { return maskCopy(key, pos, b, b) }

// maskCopy writes src XORed with the mask key to dst (dst may be src; it
// is at least as long), starting at position pos of the key, and returns
// the position after src: unmasking while copying costs no more than
// unmasking in place.
func maskCopy(key [4]byte, pos int, dst, src []byte) int {
	dst = dst[:len(src)]
	if key == ([4]byte{}) { // a server's frame, read by a client
		copy(dst, src)
		return (pos + len(src)) & 3
	}
	if len(src) >= 16 {
		// Rotate the key to start at pos and work 8 bytes at a time, 32
		// per iteration: the compiler does not vectorise, unrolling helps.
		k32 := binary.LittleEndian.Uint32(key[:])
		k32 = bits.RotateLeft32(k32, -8*(pos&3))
		k64 := uint64(k32) | uint64(k32)<<32
		le := binary.LittleEndian
		i := 0
		for ; i+32 <= len(src) && i+32 <= len(dst); i += 32 {
			s, d := src[i:i+32], dst[i:i+32]
			le.PutUint64(d[0:], le.Uint64(s[0:])^k64)
			le.PutUint64(d[8:], le.Uint64(s[8:])^k64)
			le.PutUint64(d[16:], le.Uint64(s[16:])^k64)
			le.PutUint64(d[24:], le.Uint64(s[24:])^k64)
		}
		for ; i+8 <= len(src) && i+8 <= len(dst); i += 8 {
			le.PutUint64(dst[i:], le.Uint64(src[i:])^k64)
		}
		dst, src = dst[i:], src[i:]
	}
	for i := range src {
		dst[i] = src[i] ^ key[pos&3]
		pos++
	}
	return pos & 3
}

// hybiCodec reads and writes RFC 6455 frames (also spoken by hybi-07/08).
type hybiCodec struct {
	inflater *inflater // nil without permessage-deflate

	// The message being read.
	remaining  int64  // unread payload of the current frame
	raw        int64  // payload bytes read so far
	total      int64  // message bytes read so far (inflated if compressed)
	msgOp      opcode // text or binary
	started    bool   // a message is in progress
	compressed bool   // its payload is deflated
	fin        bool   // the current frame is its last
	maskPos    uint8  // where in mask the payload's next byte is
	mask       [4]byte
	utf8       utf8Validator

	ctl *controlFrame // read, not yet answered

	hdr  [maxHeaderSize + 4]byte // header of the frame being written (wmu)
	keys *maskKeys               // a client's mask keys (wmu); nil on the server
}

// conn is the Conn whose codec h is: h lives inside it (Conn.hybi), so
// it needs no pointer to it, which would cost every connection 8 bytes.
func (h *hybiCodec) conn() *Conn {
	return (*Conn)(unsafe.Add(unsafe.Pointer(h), -int(unsafe.Offsetof(Conn{}.hybi))))
}

// maskKeys makes a client's mask keys: a fresh one per frame, which RFC
// 6455 wants unpredictable (section 10.3), from ChaCha8 seeded by
// crypto/rand, without a system call per frame.
type maskKeys struct{ rand *rand.ChaCha8 }

func newMaskKeys() *maskKeys {
	var seed [32]byte
	crand.Read(seed[:]) // never fails (Go 1.24)
	return &maskKeys{rand.NewChaCha8(seed)}
}

// header appends a frame's header to h.hdr: a client's is masked with a
// new key, which ends it (sendFrame masks the payload with it).
func (h *hybiCodec) header(fin bool, op opcode, rsv1 bool, length int) []byte {
	b := appendFrameHeader(h.hdr[:0], fin, op, rsv1, length)
	if h.keys != nil {
		b[1] |= 0x80
		b = binary.LittleEndian.AppendUint32(b, uint32(h.keys.rand.Uint64()))
	}
	return b
}

func (h *hybiCodec) inMessage() bool { return h.started }

// sizeHint is the rest of the current frame (the whole message when it is
// one uncompressed frame, the common case), up to maxSizeHint: a length a
// peer claims is not memory to reserve before its bytes arrive.
func (h *hybiCodec) sizeHint() int {
	if h.compressed {
		return int(min(h.remaining*4, maxSizeHint))
	}
	return int(min(h.remaining, maxSizeHint))
}

// maxSizeHint bounds what a read reserves ahead of the data; larger
// messages grow their buffer as they arrive.
const maxSizeHint = 64 << 10

// readHeader reads a frame header and enforces the rules that do not depend
// on the message in progress. A control frame it reads whole, keeps for
// answer, and returns errControl.
func (h *hybiCodec) readHeader() (frameHeader, error) {
	c := h.conn()
	hdr, err := readFrameHeader(&c.br)
	c.heardFrame()
	if err != nil {
		if pe, ok := err.(*ProtocolError); ok {
			return hdr, c.fail(pe.Code, pe.Reason)
		}
		return hdr, err
	}
	if pe := h.refusal(hdr); pe != nil {
		return hdr, c.fail(pe.Code, pe.Reason)
	}
	if hdr.op.control() {
		return hdr, h.readControl(hdr)
	}
	return hdr, nil
}

func (op opcode) control() bool { return op >= opClose }

// refusal is why a frame with header hdr fails the connection, whatever
// the message in progress, or nil.
func (h *hybiCodec) refusal(hdr frameHeader) *ProtocolError {
	switch {
	case hdr.rsv&^rsv1 != 0:
		return &ProtocolError{StatusProtocolError, "RSV2 or RSV3 set: no extension defines them"}
	case hdr.rsv != 0 && (h.inflater == nil || hdr.op != opText && hdr.op != opBinary):
		// permessage-deflate sets RSV1 on a message's first frame only.
		return &ProtocolError{StatusProtocolError, "RSV1 set with no extension defining it on this frame"}
	case hdr.masked == h.conn().client:
		if h.conn().client {
			return &ProtocolError{StatusProtocolError, "masked server frame"}
		}
		return &ProtocolError{StatusProtocolError, "unmasked client frame"}
	}
	switch hdr.op {
	case opContinuation, opText, opBinary:
		return nil
	case opClose, opPing, opPong:
		switch {
		case !hdr.fin:
			return &ProtocolError{StatusProtocolError, "fragmented control frame"}
		case hdr.length > maxControlPayload:
			return &ProtocolError{StatusProtocolError, "control frame payload over 125 bytes"}
		}
		return nil
	}
	return &ProtocolError{StatusProtocolError, fmt.Sprintf("reserved opcode %#x", byte(hdr.op))}
}

// controlFrame is a control frame read, not yet answered.
type controlFrame struct {
	op      opcode
	n       uint8
	payload [maxControlPayload]byte
}

// readControl reads a control frame into h.ctl and returns errControl.
func (h *hybiCodec) readControl(hdr frameHeader) error {
	// Copied out of the read buffer before it is acted on (which may close
	// the connection and drain that buffer): an allocation per control
	// frame rather than 125 bytes held by every connection.
	buffered, err := h.conn().br.Peek(int(hdr.length))
	if err != nil {
		return unexpected(err)
	}
	h.keepControl(hdr, buffered)
	h.conn().br.Discard(len(buffered))
	return errControl
}

// ready reports whether b, what is buffered, holds all that next and read
// take to reach the end of the next message (the control frames among its
// frames included), or of a control frame before it, or of a close that
// cuts it short, or enough of it to refuse it: the event engine runs the
// codec only then, so that it never waits for the socket. A ping or pong
// between the fragments of a message still arriving, it reports in
// sc.control, for takeControl to answer at once, as a goroutine reading
// the message would. It goes on from where sc
// left off, checking each byte once however many reads a message takes;
// the text of a message not buffered whole is checked as it arrives, so
// that invalid UTF-8 fails fast, as it does when read from the socket.
func (h *hybiCodec) ready(b []byte, sc *readyScan) bool {
	for {
		if sc.inFrame {
			end := min(len(b), sc.end)
			if sc.check && !h.validScan(b[sc.pos:end], sc) {
				return true
			}
			if sc.pos = end; end < sc.end {
				return false
			}
			if sc.inFrame = false; sc.last {
				return true
			}
		}
		rest := b[sc.pos:]
		if len(rest) < 2 || len(rest) < headerSize(rest) {
			return false
		}
		n := headerSize(rest)
		var hdr frameHeader
		if err := hdr.decode(rest[:n]); err != nil || h.refusal(hdr) != nil {
			return true
		}
		data := !hdr.op.control()
		if !data && sc.inMessage && hdr.op != opClose {
			if len(rest) < n+int(hdr.length) {
				return false
			}
			sc.control = sc.pos // past the message's first header: > 0
			return true
		}
		switch {
		case !data:
		case (hdr.op == opContinuation) != sc.inMessage:
			return true // out of sequence: refused
		case !sc.inMessage:
			sc.inMessage, sc.compressed, sc.text = true, hdr.rsv&rsv1 != 0, hdr.op == opText
		}
		if data {
			if h.tooLong(hdr.length, sc.raw, sc.compressed) {
				return true
			}
			sc.raw += hdr.length
		}
		sc.pos += n
		sc.inFrame, sc.end, sc.mask, sc.maskPos = true, math.MaxInt, hdr.mask, 0 // MaxInt: beyond any buffer (no read limit)
		if hdr.length <= int64(math.MaxInt-sc.pos) {
			sc.end = sc.pos + int(hdr.length)
		}
		sc.check = data && sc.text && !sc.compressed
		// A close ends the message cut short: read answers it.
		sc.last = !sc.inMessage || hdr.op == opClose || data && hdr.fin
	}
}

// validScan reports whether p, the next payload bytes of the text message
// that sc is checking, keep it valid UTF-8 so far.
func (h *hybiCodec) validScan(p []byte, sc *readyScan) bool {
	var chunk [256]byte
	for len(p) > 0 {
		k := min(len(p), len(chunk))
		sc.maskPos = uint8(maskCopy(sc.mask, int(sc.maskPos), chunk[:k], p[:k]))
		if !sc.utf8.write(chunk[:k]) {
			return false
		}
		p = p[k:]
	}
	return true
}

// takeControl takes the ping or pong that ready found between the
// fragments of a message still arriving out of what is buffered, and
// answers it; ready then goes on from where it was.
func (h *hybiCodec) takeControl(sc *readyScan) error {
	cr := &h.conn().br
	frame := cr.Pending()[sc.control:]
	n := headerSize(frame)
	var hdr frameHeader
	hdr.decode(frame[:n]) // checked by ready
	h.keepControl(hdr, frame[n:n+int(hdr.length)])
	cr.cut(sc.control, n+int(hdr.length))
	sc.control = 0
	return h.answer()
}

// keepControl keeps the control frame of header hdr and payload p (as
// sent: masked) for answer.
func (h *hybiCodec) keepControl(hdr frameHeader, p []byte) {
	h.ctl = &controlFrame{op: hdr.op, n: uint8(len(p))}
	maskCopy(hdr.mask, 0, h.ctl.payload[:len(p)], p)
}

// answer acts on the control frame that readHeader kept: it pongs a ping,
// calls the pong handler, or answers a close.
func (h *hybiCodec) answer() error {
	op, payload := h.ctl.op, h.ctl.payload[:h.ctl.n]
	h.ctl = nil
	switch op {
	case opPing:
		if err := h.conn().writeControl(opPong, payload); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	case opPong:
		h.conn().pong(payload)
	case opClose:
		ce, err := h.peerClose(payload)
		if err != nil {
			return err
		}
		return h.conn().answerClose(ce)
	}
	return nil
}

// peerClose is the peer's close, parsed: a *CloseError, or the error that
// fails the connection for a malformed one.
func (h *hybiCodec) peerClose(payload []byte) (*CloseError, error) {
	ce := &CloseError{Code: StatusNoStatusRcvd}
	switch {
	case len(payload) == 1:
		return nil, h.conn().fail(StatusProtocolError, "close frame with a 1-byte payload")
	case len(payload) >= 2:
		ce.Code = StatusCode(binary.BigEndian.Uint16(payload))
		if !ce.Code.sendable() {
			return nil, h.conn().fail(StatusProtocolError, fmt.Sprintf("close code %d may not be sent", int(ce.Code)))
		}
		if !utf8.Valid(payload[2:]) {
			return nil, h.conn().fail(StatusInvalidPayload, "close reason is not valid UTF-8")
		}
		ce.Reason = string(payload[2:])
	}
	return ce, nil
}

func (h *hybiCodec) next() (MessageType, error) {
	hdr, err := h.readHeader()
	if err != nil {
		return 0, err
	}
	if hdr.op == opContinuation {
		return 0, h.conn().fail(StatusProtocolError, "continuation frame with no message started")
	}
	h.started = true
	h.compressed = hdr.rsv&rsv1 != 0
	h.msgOp = hdr.op
	h.raw, h.total = 0, 0
	h.utf8.reset()
	if err := h.startFrame(hdr); err != nil {
		return 0, err
	}
	if h.compressed {
		h.inflater.start()
	}
	return MessageType(h.msgOp), nil
}

// compressedSlack is how much a compressed payload may exceed the read
// limit (deflate's framing of incompressible data); the inflated size is
// held to the limit itself.
func compressedSlack(limit int64) int64 { return limit/16 + 1024 }

func (h *hybiCodec) startFrame(hdr frameHeader) error {
	if h.tooLong(hdr.length, h.raw, h.compressed) {
		return h.conn().fail(StatusMessageTooBig, fmt.Sprintf("message exceeds the read limit of %d bytes", h.conn().readLimit.Load()))
	}
	h.fin = hdr.fin
	h.remaining = hdr.length
	h.mask = hdr.mask
	h.maskPos = 0
	return nil
}

// tooLong reports whether a frame of length, after raw bytes of its
// message's payload, takes the message over the read limit.
func (h *hybiCodec) tooLong(length, raw int64, compressed bool) bool {
	limit := h.conn().readLimit.Load()
	if limit < 0 {
		return false
	}
	room := limit - raw // compared, not added: a length may be near 2^63
	if compressed {
		room += compressedSlack(limit)
	}
	return length > room
}

// read reads the message's content: its payload, inflated if compressed.
func (h *hybiCodec) read(p []byte) (int, error) {
	if !h.started {
		return 0, io.EOF
	}
	var n int
	var err error
	if h.compressed {
		n, err = h.inflater.read(p)
		if err == errBadDeflate {
			return 0, h.conn().fail(StatusInvalidPayload, err.Error())
		}
	} else {
		n, err = h.readPayload(p)
	}
	h.total += int64(n)
	if h.compressed && h.conn().overLimit(h.total) {
		return 0, h.conn().fail(StatusMessageTooBig, fmt.Sprintf("message inflates beyond the read limit of %d bytes", h.conn().readLimit.Load()))
	}
	if h.msgOp == opText && !h.utf8.write(p[:n]) {
		return n, h.conn().fail(StatusInvalidPayload, "text message is not valid UTF-8")
	}
	if err == io.EOF {
		h.started = false
		if h.msgOp == opText && !h.utf8.complete() {
			return n, h.conn().fail(StatusInvalidPayload, "text message ends inside a UTF-8 sequence")
		}
	}
	return n, err
}

// readPayload reads the message's payload across its frames, unmasked;
// io.EOF after the final frame.
func (h *hybiCodec) readPayload(p []byte) (int, error) {
	for h.remaining == 0 {
		if h.fin {
			return 0, io.EOF
		}
		hdr, err := h.readHeader()
		if err == errControl {
			// Inside a message: answered here, deeper in the stack than
			// Conn would, but such interleaving is rare.
			if err = h.answer(); err == nil {
				continue
			}
		}
		if err != nil {
			return 0, unexpected(err) // the message is not over: EOF is not its end
		}
		if hdr.op != opContinuation {
			return 0, h.conn().fail(StatusProtocolError, "new data frame inside a fragmented message")
		}
		if err := h.startFrame(hdr); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > h.remaining {
		p = p[:h.remaining]
	}
	n, pos, err := h.conn().br.readMasked(p, h.mask, int(h.maskPos))
	h.maskPos = uint8(pos)
	h.conn().heardFrame() // a long frame trickling in is a peer alive
	h.remaining -= int64(n)
	h.raw += int64(n)
	switch {
	case err == io.EOF:
		err = io.ErrUnexpectedEOF
	case err == nil && h.remaining == 0 && h.fin:
		err = io.EOF // with the last bytes: a reader need not ask again
	}
	return n, err
}

func (h *hybiCodec) dataFrame(typ MessageType, p []byte, first, fin, compressed bool) (pre, post []byte, err error) {
	op := opContinuation
	if first {
		op = opcode(typ)
	}
	return h.header(fin, op, compressed && first, len(p)), nil, nil
}

func (h *hybiCodec) controlFrame(op opcode, payload []byte) ([]byte, error) {
	return h.header(true, op, false, len(payload)), nil
}

// closeFrame is a close with code and reason; code 0: one with no payload.
func (h *hybiCodec) closeFrame(code StatusCode, reason string) (pre, payload []byte) {
	if code == 0 {
		return h.header(true, opClose, false, 0), nil
	}
	pre = h.header(true, opClose, false, 2+len(reason))
	if reason == "" && h.keys == nil { // the code fits after the header: no payload to make
		return binary.BigEndian.AppendUint16(pre, uint16(code)), nil
	}
	return pre, append(binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code)), reason...)
}
