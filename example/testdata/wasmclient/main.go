//go:build js && wasm

// wasmclient is TestBrowserWasmClient's program: in the browser, it dials
// the page's own server with websocket.Dial (the browser's WebSocket),
// echoes text and binary through /echo and /echo-proto, checks what the
// browser cannot do is refused, and closes with a code and reason. It
// reports to the page in window.wasmLog (its steps) and window.wasmResult
// ("ok", or "FAIL: " and why), which the test polls.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall/js"
	"time"

	"github.com/hybi/websocket"
)

func logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	js.Global().Get("wasmLog").Call("push", line)
	fmt.Println(line)
}

func main() {
	js.Global().Set("wasmLog", js.Global().Get("Array").New())
	result := "ok"
	if err := run(); err != nil {
		result = "FAIL: " + err.Error()
	}
	logf("result: %s", result)
	js.Global().Set("wasmResult", result)
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := "ws://" + js.Global().Get("location").Get("host").String()

	// What the browser has no say over is refused before dialing.
	_, _, err := websocket.Dial(ctx, base+"/echo", &websocket.DialOptions{Header: map[string][]string{"Origin": {"x"}}})
	if !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("Dial with a Header: %v, want errors.ErrUnsupported", err)
	}
	logf("Dial with a Header: %v", err)
	if _, _, err := websocket.Dial(ctx, "ws://127.0.0.1:1/none", nil); err == nil {
		return errors.New("Dial of a closed port succeeded")
	} else {
		logf("Dial of a closed port: %v", err)
	}

	// The app's /echo: the browser offers permessage-deflate, which the
	// server takes.
	c, resp, err := websocket.Dial(ctx, base+"/echo", &websocket.DialOptions{ReadLimit: 4 << 20})
	if err != nil {
		return fmt.Errorf("Dial /echo: %w", err)
	}
	defer c.CloseNow()
	logf("open: protocol %q, extensions %q, status %d", c.Subprotocol(), c.Extensions(), resp.StatusCode)
	if c.Subprotocol() != "" || !strings.HasPrefix(c.Extensions(), "permessage-deflate") {
		return fmt.Errorf("/echo: protocol %q, extensions %q, want none and permessage-deflate", c.Subprotocol(), c.Extensions())
	}
	if err := c.Ping(nil); !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("Ping: %v, want errors.ErrUnsupported", err)
	}

	text := "héllo, wörld: 日本語, emoji 🌍🚀"
	if err := c.WriteText(text); err != nil {
		return fmt.Errorf("WriteText: %w", err)
	}
	if err := expect(c, websocket.TextMessage, []byte(text)); err != nil {
		return err
	}
	logf("text echoed: %q", text)

	bin := make([]byte, 1<<20)
	for i := range bin {
		bin[i] = byte(i*7 + i>>8)
	}
	if err := c.WriteMessage(websocket.BinaryMessage, bin); err != nil {
		return fmt.Errorf("WriteMessage binary: %w", err)
	}
	if err := expect(c, websocket.BinaryMessage, bin); err != nil {
		return err
	}
	logf("binary echoed: %d bytes", len(bin))

	// NextWriter: the parts go out as one message.
	w, err := c.NextWriter(websocket.TextMessage)
	if err != nil {
		return fmt.Errorf("NextWriter: %w", err)
	}
	for _, part := range []string{"streamed ", "in ", "three parts ✓"} {
		if _, err := io.WriteString(w, part); err != nil {
			return fmt.Errorf("NextWriter's Write: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("NextWriter's Close: %w", err)
	}
	typ, r, err := c.NextReader()
	if err != nil {
		return fmt.Errorf("NextReader: %w", err)
	}
	got, err := io.ReadAll(r)
	if err != nil || typ != websocket.TextMessage || string(got) != "streamed in three parts ✓" {
		return fmt.Errorf("NextReader: %v %q %v", typ, got, err)
	}
	logf("streamed message echoed: %q", got)

	// A message beyond the read limit fails the connection with 1009.
	c.SetReadLimit(1000)
	if err := c.WriteMessage(websocket.BinaryMessage, bin[:2000]); err != nil {
		return fmt.Errorf("WriteMessage over the limit: %w", err)
	}
	if _, _, err := c.ReadMessage(); err == nil {
		return errors.New("a message beyond the read limit was read")
	} else {
		logf("over the read limit: %v; CloseCause: %v", err, c.CloseCause())
	}
	var pe *websocket.ProtocolError
	if !errors.As(c.CloseCause(), &pe) || pe.Code != websocket.StatusMessageTooBig {
		return fmt.Errorf("CloseCause after a message beyond the limit: %v, want a *ProtocolError with 1009", c.CloseCause())
	}

	// /echo-proto chooses a subprotocol; the close's code and reason reach
	// the server.
	c2, _, err := websocket.Dial(ctx, base+"/echo-proto", &websocket.DialOptions{Subprotocols: []string{"nope", "echo.v1"}})
	if err != nil {
		return fmt.Errorf("Dial /echo-proto: %w", err)
	}
	defer c2.CloseNow()
	if c2.Subprotocol() != "echo.v1" {
		return fmt.Errorf("/echo-proto: protocol %q, want echo.v1", c2.Subprotocol())
	}
	if err := c2.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2, 0xff}); err != nil {
		return err
	}
	if err := expect(c2, websocket.BinaryMessage, []byte{0, 1, 2, 0xff}); err != nil {
		return err
	}
	if err := c2.Close(4001, "bye from wasm ✓"); err != nil {
		return fmt.Errorf("Close: %w", err)
	}
	var lce *websocket.LocalCloseError
	if !errors.As(c2.CloseCause(), &lce) || lce.Code != 4001 {
		return fmt.Errorf("CloseCause after Close: %v", c2.CloseCause())
	}
	if _, _, err := c2.ReadMessage(); err == nil {
		return errors.New("a read after Close succeeded")
	}
	select {
	case <-c2.Context().Done():
	case <-time.After(5 * time.Second):
		return errors.New("Context not done 5 s after Close")
	}
	logf("closed /echo-proto with 4001; CloseCause: %v", c2.CloseCause())

	// The server closes first: its code and reason are the read's error
	// and CloseCause.
	c4, _, err := websocket.Dial(ctx, base+"/close-me", nil)
	if err != nil {
		return fmt.Errorf("Dial /close-me: %w", err)
	}
	defer c4.CloseNow()
	_, _, err = c4.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4002 || ce.Reason != "server says bye" {
		return fmt.Errorf("read after the server's close: %v, want a *CloseError 4002", err)
	}
	if !errors.As(c4.CloseCause(), &ce) || ce.Code != 4002 {
		return fmt.Errorf("CloseCause after the server's close: %v", c4.CloseCause())
	}
	logf("closed by the server: %v", err)

	// A code the browser cannot send: the connection closes all the same.
	c3, _, err := websocket.Dial(ctx, base+"/echo", nil)
	if err != nil {
		return fmt.Errorf("Dial /echo again: %w", err)
	}
	defer c3.CloseNow()
	if err := c3.Close(websocket.StatusGoingAway, "leaving"); !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("Close(1001): %v, want errors.ErrUnsupported", err)
	} else {
		logf("Close(1001): %v", err)
	}
	if err := c3.WriteText("after close"); err == nil {
		return errors.New("a write after Close succeeded")
	}
	return nil
}

func expect(c *websocket.Conn, typ websocket.MessageType, want []byte) error {
	gotTyp, got, err := c.ReadMessage()
	if err != nil {
		return fmt.Errorf("ReadMessage: %w", err)
	}
	if gotTyp != typ || !bytes.Equal(got, want) {
		return fmt.Errorf("echo: %v of %d bytes, want %v of %d bytes", gotTyp, len(got), typ, len(want))
	}
	return nil
}
