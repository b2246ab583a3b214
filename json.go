package websocket

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// WriteJSON writes v, encoded by encoding/json, as one text message,
// streamed through NextWriter: the message holds the encoding only, not
// the newline json.Encoder ends it with. A value that cannot be encoded
// returns encoding/json's error and sends nothing.
func (c *Conn) WriteJSON(v any) error {
	w := &jsonWriter{c: c}
	err := json.NewEncoder(w).Encode(v)
	if w.w == nil {
		return err // nothing was encoded: no message was begun
	}
	if cerr := w.w.Close(); err == nil {
		err = cerr
	}
	return err
}

// jsonWriter begins the message at the first Write, which json.Encoder
// makes only once it has encoded the whole value.
type jsonWriter struct {
	c *Conn
	w io.WriteCloser
}

func (j *jsonWriter) Write(p []byte) (int, error) {
	if j.w == nil {
		w, err := j.c.NextWriter(TextMessage)
		if err != nil {
			return 0, err
		}
		j.w = w
	}
	if n := len(p); n > 0 && p[n-1] == '\n' {
		if _, err := j.w.Write(p[:n-1]); err != nil {
			return 0, err
		}
		return n, nil
	}
	return j.w.Write(p)
}

// ReadJSON reads the next message and decodes it into v with
// encoding/json, streaming it from NextReader, within the read limit (a
// larger message fails the connection with 1009, as for any read). A
// binary message, or text that is not one JSON value, returns a
// *JSONError and leaves the connection as it was: the rest of that
// message is skipped by the next read.
func (c *Conn) ReadJSON(v any) error {
	typ, r, err := c.NextReader()
	if err != nil {
		return err
	}
	if typ != TextMessage {
		return &JSONError{Type: typ, Err: errors.New("a JSON message must be text")}
	}
	head := &headReader{r: r}
	dec := json.NewDecoder(head)
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // an empty message holds no value
		}
		return jsonError(head, err)
	}
	// One value, and nothing after it but space.
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("more after the value, at byte %d", dec.InputOffset())
		}
		return jsonError(head, err)
	}
	return nil
}

// jsonError is the error of a message that is not JSON, unless reading
// the message failed (that error is returned as it is).
func jsonError(head *headReader, err error) error {
	if head.err != nil && head.err != io.EOF {
		return head.err
	}
	return &JSONError{Type: TextMessage, Start: string(head.start[:head.n]), Err: err}
}

// JSONError is a message ReadJSON could not decode: binary, or text
// that is not one JSON value. Err is encoding/json's error (a
// *json.SyntaxError, a *json.UnmarshalTypeError, ...) or what else is
// wrong; Start is the message's first bytes, to tell which it was.
type JSONError struct {
	Type  MessageType
	Start string // up to 64 bytes
	Err   error
}

func (e *JSONError) Error() string {
	if e.Type != TextMessage {
		return fmt.Sprintf("websocket: ReadJSON: a %s message: %v", e.Type, e.Err)
	}
	return fmt.Sprintf("websocket: ReadJSON: the text message beginning %q is not JSON: %v", e.Start, e.Err)
}

func (e *JSONError) Unwrap() error { return e.Err }

// headReader keeps the first bytes of what it reads, for JSONError, and
// the error that ended reading.
type headReader struct {
	r     io.Reader
	start [64]byte
	n     int
	err   error
}

func (h *headReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += copy(h.start[h.n:], p[:n])
	h.err = err
	return n, err
}
