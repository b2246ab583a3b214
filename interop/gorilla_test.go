package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	"github.com/hybi/websocket"
)

var gorillaLib = library{name: "gorilla/websocket", dial: dialGorilla, closeOf: gorillaCloseOf}

func TestGorillaEcho(t *testing.T)                 { testEcho(t, gorillaLib) }
func TestGorillaFragmented(t *testing.T)           { testFragmented(t, gorillaLib) }
func TestGorillaServerFragmented(t *testing.T)     { testServerFragmented(t, gorillaLib) }
func TestGorillaPing(t *testing.T)                 { testPing(t, gorillaLib) }
func TestGorillaPingBetweenFragments(t *testing.T) { testPingBetweenFragments(t, gorillaLib) }
func TestGorillaClientClose(t *testing.T)          { testClientClose(t, gorillaLib) }
func TestGorillaServerClose(t *testing.T)          { testServerClose(t, gorillaLib) }
func TestGorillaReadLimit(t *testing.T)            { testReadLimit(t, gorillaLib) }
func TestGorillaInvalidUTF8(t *testing.T)          { testInvalidUTF8(t, gorillaLib) }
func TestGorillaConcurrent(t *testing.T)           { testConcurrent(t, gorillaLib) }
func TestGorillaConcurrentWriters(t *testing.T)    { testConcurrentWriters(t, gorillaLib) }
func TestGorillaSubprotocol(t *testing.T)          { testSubprotocol(t, gorillaLib) }
func TestGorillaOrigin(t *testing.T)               { testOrigin(t, gorillaLib) }
func TestGorillaShutdown(t *testing.T)             { testShutdown(t, gorillaLib) }
func TestGorillaServeEnds(t *testing.T)            { testServeEnds(t, gorillaLib) }
func TestGorillaCompressionOffered(t *testing.T)   { testCompressionOffered(t, gorillaLib) }

// gorillaClient adapts a *gorilla.Conn. Contexts become deadlines.
type gorillaClient struct {
	c      *gorilla.Conn
	pongs  chan string
	pingN  atomic.Int64
	bgDone chan error // set by readInBackground: why background reading ended
}

func dialGorilla(ctx context.Context, url string, o dialOptions) (client, *http.Response, error) {
	d := &gorilla.Dialer{
		NetDialContext:    o.netDial,
		Subprotocols:      o.subprotocols,
		WriteBufferSize:   o.writeBufferSize, // a streamed message goes out a buffer at a time
		EnableCompression: o.compression,
	}
	c, resp, err := d.DialContext(ctx, url, o.header)
	if err != nil {
		return nil, resp, err
	}
	gc := &gorillaClient{c: c, pongs: make(chan string, 16)}
	c.SetReadLimit(largeLimit)
	c.SetPongHandler(func(p string) error {
		select {
		case gc.pongs <- p:
		default:
		}
		return nil
	})
	if o.onPing != nil {
		c.SetPingHandler(func(p string) error {
			o.onPing(p)
			err := c.WriteControl(gorilla.PongMessage, []byte(p), time.Now().Add(5*time.Second))
			if errors.Is(err, gorilla.ErrCloseSent) {
				return nil
			}
			return err
		})
	}
	return gc, resp, nil
}

func gorillaCloseOf(err error) (int, string, bool) {
	var ce *gorilla.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Text, true
	}
	return 0, "", false
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func toGorilla(typ websocket.MessageType) int {
	if typ == websocket.BinaryMessage {
		return gorilla.BinaryMessage
	}
	return gorilla.TextMessage
}

func fromGorilla(typ int) websocket.MessageType {
	switch typ {
	case gorilla.TextMessage:
		return websocket.TextMessage
	case gorilla.BinaryMessage:
		return websocket.BinaryMessage
	}
	return websocket.MessageType(typ)
}

func (gc *gorillaClient) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	gc.c.SetWriteDeadline(deadline(ctx))
	return gc.c.WriteMessage(toGorilla(typ), p)
}

func (gc *gorillaClient) writer(ctx context.Context, typ websocket.MessageType) (io.WriteCloser, error) {
	gc.c.SetWriteDeadline(deadline(ctx))
	return gc.c.NextWriter(toGorilla(typ))
}

func (gc *gorillaClient) read(ctx context.Context) (websocket.MessageType, []byte, error) {
	gc.c.SetReadDeadline(deadline(ctx))
	typ, p, err := gc.c.ReadMessage()
	return fromGorilla(typ), p, err
}

// readInBackground reads in a goroutine, so that the ping and pong handlers
// run; the close handler answers the server's close.
func (gc *gorillaClient) readInBackground(ctx context.Context) {
	done := make(chan error, 1)
	gc.bgDone = done
	gc.c.SetReadDeadline(deadline(ctx))
	go func() {
		_, _, err := gc.c.NextReader()
		if err == nil {
			err = errors.New("unexpected data message")
		}
		done <- err
	}()
}

// ping sends a ping and waits for the pong handler to see its payload.
func (gc *gorillaClient) ping(ctx context.Context) error {
	p := fmt.Sprintf("client-ping %d", gc.pingN.Add(1))
	if err := gc.c.WriteControl(gorilla.PingMessage, []byte(p), deadline(ctx)); err != nil {
		return err
	}
	for {
		select {
		case got := <-gc.pongs:
			if got == p {
				return nil
			}
		case <-ctx.Done():
			return fmt.Errorf("no pong for %q: %w", p, ctx.Err())
		}
	}
}

// close sends a close frame and reads until the server's answer.
func (gc *gorillaClient) close(ctx context.Context, code int, reason string) error {
	msg := []byte{}
	if code != gorilla.CloseNoStatusReceived {
		msg = gorilla.FormatCloseMessage(code, reason)
	}
	if err := gc.c.WriteControl(gorilla.CloseMessage, msg, deadline(ctx)); err != nil {
		return err
	}
	var err error
	if gc.bgDone != nil {
		select {
		case err = <-gc.bgDone:
		case <-ctx.Done():
			return fmt.Errorf("no answer to the close: %w", ctx.Err())
		}
	} else {
		gc.c.SetReadDeadline(deadline(ctx))
		for err == nil {
			_, _, err = gc.c.NextReader() // discards data messages
		}
	}
	if got, _, ok := gorillaCloseOf(err); !ok || got != code {
		return fmt.Errorf("the server answered the close %d with: %w", code, err)
	}
	if err := gc.expectEOF(ctx); err != nil {
		return err
	}
	return gc.c.Close()
}

// expectEOF reads from the TCP connection: after the closing handshake the
// server must have closed it (FIN, not RST, and no more bytes).
func (gc *gorillaClient) expectEOF(ctx context.Context) error {
	nc := gc.c.NetConn()
	nc.SetReadDeadline(deadline(ctx))
	var b [64]byte
	n, err := nc.Read(b[:])
	if n != 0 || err != io.EOF {
		return fmt.Errorf("after the closing handshake, TCP read %d bytes (% x), %v; want EOF", n, b[:n], err)
	}
	return nil
}

func (gc *gorillaClient) closeNow()           { gc.c.Close() }
func (gc *gorillaClient) subprotocol() string { return gc.c.Subprotocol() }
