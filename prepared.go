package websocket

import (
	"bytes"
	"fmt"
	"sync"
	"sync/atomic"
)

// PreparedMessage is a message encoded once per wire form, for sending the
// same message to many connections: the hixie text frame, the RFC 6455 frame
// (the same for hybi-07, -08 and RFC 6455), and one deflated frame per
// compression setting in use. Forms are built when first needed.
type PreparedMessage struct {
	typ  MessageType
	data []byte

	plain atomic.Pointer[[]byte] // the RFC 6455 frame, read without mu once built

	mu       sync.Mutex
	hixie    []byte
	deflated map[[2]int]deflatedFrame // by window bits and level
}

type deflatedFrame struct {
	frame      []byte
	payloadLen int
}

// NewPreparedMessage prepares a message of type typ; data must not change
// afterwards.
func NewPreparedMessage(typ MessageType, data []byte) (*PreparedMessage, error) {
	if typ != TextMessage && typ != BinaryMessage {
		return nil, fmt.Errorf("websocket: %v is not a data message type", typ)
	}
	return &PreparedMessage{typ: typ, data: data}, nil
}

// frame returns the message's encoding for c, and whether it is deflated.
func (pm *PreparedMessage) frame(c *Conn) ([]byte, bool, error) {
	d := c.deflater
	if c.dialect.hybi() && (d == nil || !d.worthIt(len(pm.data))) {
		if f := pm.plain.Load(); f != nil {
			return *f, false, nil // a group's writers, for each member: no lock
		}
	}
	pm.mu.Lock()
	defer pm.mu.Unlock()
	switch {
	case !c.dialect.hybi():
		if pm.hixie == nil {
			if bytes.IndexByte(pm.data, 0xFF) >= 0 {
				return nil, false, errInvalidHixieText
			}
			pm.hixie = append(append(append(make([]byte, 0, len(pm.data)+2), 0x00), pm.data...), 0xFF)
		}
		return pm.hixie, false, nil
	case d != nil && d.worthIt(len(pm.data)):
		// Compressed without context, it is valid on a connection with
		// context takeover too: it just refers to nothing before it.
		key := [2]int{d.params.serverBits, d.level}
		f, ok := pm.deflated[key]
		if !ok {
			var buf bytes.Buffer
			if err := deflate(&buf, pm.data, nil, key[0], key[1]); err != nil {
				return nil, false, err
			}
			payload, err := withoutSyncTail(buf.Bytes())
			if err != nil {
				return nil, false, err
			}
			f = deflatedFrame{append(appendFrameHeader(make([]byte, 0, maxHeaderSize+len(payload)), true, opcode(pm.typ), true, len(payload)), payload...), len(payload)}
			if pm.deflated == nil {
				pm.deflated = make(map[[2]int]deflatedFrame)
			}
			pm.deflated[key] = f
		}
		if d.shrunk(f.payloadLen, len(pm.data)) { // else sent as it is
			return f.frame, true, nil
		}
	}
	if pm.plain.Load() == nil {
		f := append(appendFrameHeader(make([]byte, 0, maxHeaderSize+len(pm.data)), true, opcode(pm.typ), false, len(pm.data)), pm.data...)
		pm.plain.Store(&f)
	}
	return *pm.plain.Load(), false, nil
}

// WritePreparedMessage writes pm. A binary message to a hixie connection
// returns an error wrapping errors.ErrUnsupported, as WriteMessage does.
func (c *Conn) WritePreparedMessage(pm *PreparedMessage) error {
	if err := c.checkType(pm.typ); err != nil {
		return err
	}
	if c.masks() { // a frame masked with its own key: nothing to share
		c.msgMu.Lock()
		defer c.msgMu.Unlock()
		return c.writeWhole(pm.typ, pm.data)
	}
	f, compressed, err := pm.frame(c)
	if err != nil {
		return err
	}
	c.msgMu.Lock()
	defer c.msgMu.Unlock()
	if compressed {
		c.deflater.sent(pm.data) // the peer's window will hold it: so must ours
	}
	return c.writeFrame(f)
}
