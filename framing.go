package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// hixieCodec reads and writes the framing of draft-hixie-75 and -76:
// text frames 0x00 <UTF-8> 0xFF, length-prefixed frames (discarded) and, in
// -76, the 0xFF 0x00 closing handshake.
type hixieCodec struct {
	c *Conn

	inText bool  // inside a text frame being read
	total  int64 // bytes of it read so far
	utf8   utf8Validator

	writing bool // a text frame is open on the wire (wmu)
}

var errInvalidHixieText = errors.New("websocket: hixie text may not contain byte 0xFF")

func (x *hixieCodec) inMessage() bool { return x.inText }

// sizeHint is the rest of the message if its end is buffered (a
// browser's message usually arrives whole), else what is buffered.
func (x *hixieCodec) sizeHint() int {
	buf := x.c.br.Pending()
	if end := bytes.IndexByte(buf, 0xFF); end >= 0 {
		return end
	}
	return len(buf)
}

func (x *hixieCodec) next() (MessageType, error) {
	br := &x.c.br
	for {
		typ, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		x.c.heardFrame()
		switch {
		case typ == 0x00:
			x.inText = true
			x.total = 0
			x.utf8.reset()
			return TextMessage, nil
		case typ&0x80 == 0:
			// A sentinel-framed type other than text: WebKit skipped it.
			if err := x.skipToSentinel(); err != nil {
				return 0, err
			}
		default:
			length, err := x.readLength()
			if err != nil {
				return 0, err
			}
			if typ == 0xFF && length == 0 && x.c.dialect == Hixie76 {
				return 0, errControl // the close: answer
			}
			if _, err := br.Discard(int(length)); err != nil {
				return 0, unexpected(err)
			}
		}
	}
}

// readLength reads the 7-bit groups of a length-prefixed frame, refusing a
// length over the read limit before any of the payload is read.
func (x *hixieCodec) readLength() (int64, error) {
	var length int64
	for {
		b, err := x.c.br.ReadByte()
		if err != nil {
			return 0, unexpected(err)
		}
		var more, tooLong bool
		if length, more, tooLong = x.lengthByte(length, b); tooLong {
			return 0, x.c.fail(StatusMessageTooBig, "length-prefixed frame exceeds the read limit")
		}
		if !more {
			return length, nil
		}
	}
}

// lengthByte adds b, the next 7-bit group of a length-prefixed frame's
// length, to length: whether more groups follow, and whether the length
// is over the read limit already.
func (x *hixieCodec) lengthByte(length int64, b byte) (_ int64, more, tooLong bool) {
	length = length<<7 | int64(b&0x7F)
	return length, b&0x80 != 0, x.c.overLimit(length) || length > 1<<48
}

// ready reports whether b, what is buffered, holds all that next and read
// take to reach the end of the next text message (the frames skipped
// before it included), or of the close, or enough to refuse them: the
// event engine runs the codec only then, so that it never waits for the
// socket. It goes on from where sc left off: a frame arriving over many
// reads is searched once.
func (x *hixieCodec) ready(b []byte, sc *readyScan) bool {
	for sc.pos < len(b) {
		if sc.inFrame { // sentinel-framed, from sc.end, searched up to sc.pos
			typ, rest := b[sc.end], b[sc.pos:]
			i := bytes.IndexByte(rest, 0xFF)
			if i < 0 {
				sc.pos = len(b)
				// Invalid text fails fast, as it does when read from the socket.
				return x.c.overLimit(int64(len(b)-sc.end-1)) || typ == 0x00 && !sc.utf8.write(rest)
			}
			if typ == 0x00 || x.c.overLimit(int64(sc.pos+i-sc.end-1)) {
				return true
			}
			sc.pos, sc.inFrame = sc.pos+i+1, false // a frame skipped
			continue
		}
		rest := b[sc.pos:]
		typ := rest[0]
		if typ&0x80 == 0 { // sentinel-framed: text, or skipped
			sc.inFrame, sc.end, sc.utf8 = true, sc.pos, utf8Validator{}
			sc.pos++
			continue
		}
		var length int64
		n := 1
		for more := true; more; n++ {
			if n == len(rest) {
				return false
			}
			var tooLong bool
			if length, more, tooLong = x.lengthByte(length, rest[n]); tooLong {
				return true
			}
		}
		if typ == 0xFF && length == 0 && x.c.dialect == Hixie76 {
			return true // the close
		}
		if int64(len(rest)-n) < length {
			return false
		}
		sc.pos += n + int(length)
	}
	return false
}

func (x *hixieCodec) skipToSentinel() error {
	var total int64
	for {
		buf, found, err := x.buffered()
		if err != nil {
			return err
		}
		if total += int64(len(buf)); x.c.overLimit(total) {
			return x.c.fail(StatusMessageTooBig, "frame exceeds the read limit")
		}
		x.c.br.Discard(len(buf))
		if found {
			x.c.br.Discard(1)
			return nil
		}
	}
}

// buffered waits for at least one byte and returns what is buffered up to
// the next 0xFF, excluded, and whether that 0xFF is buffered.
func (x *hixieCodec) buffered() ([]byte, bool, error) {
	br := &x.c.br
	if err := br.wait(); err != nil {
		return nil, false, unexpected(err)
	}
	buf := br.Pending()
	if end := bytes.IndexByte(buf, 0xFF); end >= 0 {
		return buf[:end], true, nil
	}
	return buf, false, nil
}

// answer acts on hixie's only control frame, the peer's close (0xFF 0x00).
func (x *hixieCodec) answer() error {
	return x.c.answerClose(&CloseError{Code: StatusNoStatusRcvd})
}

func (x *hixieCodec) read(p []byte) (int, error) {
	if !x.inText {
		return 0, io.EOF
	}
	buf, found, err := x.buffered()
	if err != nil {
		return 0, err
	}
	n := copy(p, buf)
	x.c.heardFrame()
	x.total += int64(n)
	if x.c.overLimit(x.total) {
		return 0, x.c.fail(StatusMessageTooBig, fmt.Sprintf("message exceeds the read limit of %d bytes", x.c.readLimit.Load()))
	}
	if !x.utf8.write(p[:n]) {
		return 0, x.c.fail(StatusInvalidPayload, "text message is not valid UTF-8")
	}
	x.c.br.Discard(n)
	if found && n == len(buf) {
		x.c.br.Discard(1)
		x.inText = false
		if !x.utf8.complete() {
			return n, x.c.fail(StatusInvalidPayload, "text message ends inside a UTF-8 sequence")
		}
		return n, io.EOF // with the last bytes: a reader need not ask again
	}
	return n, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (x *hixieCodec) dataFrame(_ MessageType, p []byte, first, fin, _ bool) (pre, post []byte, err error) {
	if bytes.IndexByte(p, 0xFF) >= 0 {
		return nil, nil, errInvalidHixieText
	}
	if first {
		pre, x.writing = hixieStart, true
	}
	if fin {
		post, x.writing = hixieEnd, false
	}
	return pre, post, nil
}

func (x *hixieCodec) controlFrame(opcode, []byte) ([]byte, error) { return nil, errors.ErrUnsupported }

// closeFrame is hixie-76's closing handshake; hixie-75 has none.
func (x *hixieCodec) closeFrame(StatusCode, string) (pre, payload []byte) {
	switch {
	case x.c.dialect != Hixie76:
		return nil, nil
	case x.writing:
		// End the message cut short by the close, so the peer sees the close.
		x.writing = false
		return hixieEndClose, nil
	}
	return hixieEndClose[1:], nil
}

var (
	hixieStart    = []byte{0x00}
	hixieEnd      = []byte{0xFF}
	hixieEndClose = []byte{0xFF, 0xFF, 0x00} // a message's end, then the close
)
