// Package loadgen is a WebSocket load generator built on raw TCP, with no
// WebSocket library: it does its own RFC 6455 handshake, sends frames that
// were masked (and compressed) once in advance, and checks every echo byte
// for byte. It measures a server process from the outside through /proc.
package loadgen

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
)

// Opcodes of RFC 6455.
const (
	OpContinuation = 0x0
	OpText         = 0x1
	OpBinary       = 0x2
	OpClose        = 0x8
	OpPing         = 0x9
	OpPong         = 0xA
)

// maskKey masks every frame the generator sends: masking protects
// intermediaries from chosen plaintext, which does not apply on loopback, and
// one key lets each frame be built once and sent many times.
var maskKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// MaskedFrame returns a whole client frame (FIN set) carrying payload,
// masked, with RSV1 set if compressed.
func MaskedFrame(op byte, payload []byte, compressed bool) []byte {
	b0 := 0x80 | op
	if compressed {
		b0 |= 0x40
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xffff:
		f = append(f, 0x80|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	f = append(f, maskKey[:]...)
	start := len(f)
	f = append(f, payload...)
	for i := range payload {
		f[start+i] ^= maskKey[i&3]
	}
	return f
}

// CloseFrame is a masked close frame with code 1000.
var CloseFrame = MaskedFrame(OpClose, []byte{0x03, 0xe8}, false)

// Deflate compresses p as one permessage-deflate message (RFC 7692 section
// 7.2.1: flushed, without the final 00 00 ff ff), using a window of
// 2^windowBits bytes, as the server's client_max_window_bits may require.
func Deflate(p []byte, windowBits int) []byte {
	var buf bytes.Buffer
	var w *flate.Writer
	if windowBits >= 15 || windowBits == 0 {
		w, _ = flate.NewWriter(&buf, flate.DefaultCompression)
	} else {
		w, _ = flate.NewWriterWindow(&buf, 1<<windowBits)
	}
	_, _ = w.Write(p)
	_ = w.Flush()
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// ErrClosed is returned when the server sent a close frame.
type ErrClosed struct {
	Code   int
	Reason string
}

func (e *ErrClosed) Error() string {
	return fmt.Sprintf("server closed the connection: %d %q", e.Code, e.Reason)
}

// maxMessage bounds what readMessage accepts.
const maxMessage = 64<<20 + 1024

// readMessage reads the next data message from br into buf[:0], skipping
// pings and pongs; it reports its opcode and whether RSV1 was set on its
// first frame.
func readMessage(br *bufio.Reader, buf []byte) (op byte, compressed bool, msg []byte, err error) {
	var hdr [8]byte
	msg = buf[:0]
	started := false
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return 0, false, msg, err
		}
		fin, rsv1, fop := hdr[0]&0x80 != 0, hdr[0]&0x40 != 0, hdr[0]&0x0f
		if hdr[0]&0x30 != 0 {
			return 0, false, msg, errors.New("server frame with RSV2 or RSV3 set")
		}
		if hdr[1]&0x80 != 0 {
			return 0, false, msg, errors.New("server frame is masked")
		}
		n := uint64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return 0, false, msg, err
			}
			n = uint64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return 0, false, msg, err
			}
			n = binary.BigEndian.Uint64(hdr[:8])
		}
		if n > maxMessage || uint64(len(msg))+n > maxMessage {
			return 0, false, msg, fmt.Errorf("server message over %d bytes", maxMessage)
		}
		if fop&0x8 != 0 { // control frame
			if !fin || n > 125 || rsv1 {
				return 0, false, msg, errors.New("malformed control frame")
			}
			var p [125]byte
			if _, err := io.ReadFull(br, p[:n]); err != nil {
				return 0, false, msg, err
			}
			if fop == OpClose {
				e := &ErrClosed{Code: 1005}
				if n >= 2 {
					e.Code = int(binary.BigEndian.Uint16(p[:2]))
					e.Reason = string(p[2:n])
				}
				return 0, false, msg, e
			}
			continue // ping or pong: nothing is expected, nothing is owed
		}
		switch {
		case fop == OpContinuation && !started:
			return 0, false, msg, errors.New("continuation frame outside a message")
		case fop != OpContinuation && started:
			return 0, false, msg, errors.New("new message inside a fragmented one")
		case fop != OpContinuation:
			op, compressed, started = fop, rsv1, true
		case rsv1:
			return 0, false, msg, errors.New("RSV1 on a continuation frame")
		}
		start := len(msg)
		msg = append(msg, make([]byte, n)...)
		if _, err := io.ReadFull(br, msg[start:]); err != nil {
			return 0, false, msg, err
		}
		if fin {
			return op, compressed, msg, nil
		}
	}
}
