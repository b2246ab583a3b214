package interop

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	coder "github.com/coder/websocket"
	"github.com/hybi/websocket"
)

var coderLib = library{name: "coder/websocket", dial: dialCoder, closeOf: coderCloseOf}

func TestCoderEcho(t *testing.T)                 { testEcho(t, coderLib) }
func TestCoderFragmented(t *testing.T)           { testFragmented(t, coderLib) }
func TestCoderServerFragmented(t *testing.T)     { testServerFragmented(t, coderLib) }
func TestCoderPing(t *testing.T)                 { testPing(t, coderLib) }
func TestCoderPingBetweenFragments(t *testing.T) { testPingBetweenFragments(t, coderLib) }
func TestCoderClientClose(t *testing.T)          { testClientClose(t, coderLib) }
func TestCoderServerClose(t *testing.T)          { testServerClose(t, coderLib) }
func TestCoderReadLimit(t *testing.T)            { testReadLimit(t, coderLib) }
func TestCoderInvalidUTF8(t *testing.T)          { testInvalidUTF8(t, coderLib) }
func TestCoderConcurrent(t *testing.T)           { testConcurrent(t, coderLib) }
func TestCoderConcurrentWriters(t *testing.T)    { testConcurrentWriters(t, coderLib) }
func TestCoderSubprotocol(t *testing.T)          { testSubprotocol(t, coderLib) }
func TestCoderOrigin(t *testing.T)               { testOrigin(t, coderLib) }
func TestCoderShutdown(t *testing.T)             { testShutdown(t, coderLib) }
func TestCoderServeEnds(t *testing.T)            { testServeEnds(t, coderLib) }
func TestCoderCompressionOffered(t *testing.T)   { testCompressionOffered(t, coderLib) }

// coderClient adapts a *coder.Conn, whose calls take contexts already.
type coderClient struct {
	c *coder.Conn
}

func dialCoder(ctx context.Context, url string, o dialOptions) (client, *http.Response, error) {
	// A transport of its own that keeps no idle connection (a refused
	// handshake would leave one, and its goroutines, behind); an upgrade
	// takes the connection out of the transport anyway.
	tr := &http.Transport{DialContext: o.netDial, DisableKeepAlives: true}
	opts := &coder.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		HTTPHeader:   o.header,
		Subprotocols: o.subprotocols,
	}
	if o.compression {
		opts.CompressionMode = coder.CompressionContextTakeover
	}
	if o.onPing != nil {
		opts.OnPingReceived = func(_ context.Context, p []byte) bool {
			o.onPing(string(p))
			return true // and answer it
		}
	}
	c, resp, err := coder.Dial(ctx, url, opts)
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(largeLimit) // 32 KiB by default
	return &coderClient{c: c}, resp, nil
}

func coderCloseOf(err error) (int, string, bool) {
	var ce coder.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code), ce.Reason, true
	}
	return 0, "", false
}

func toCoder(typ websocket.MessageType) coder.MessageType {
	if typ == websocket.BinaryMessage {
		return coder.MessageBinary
	}
	return coder.MessageText
}

func (cc *coderClient) write(ctx context.Context, typ websocket.MessageType, p []byte) error {
	return cc.c.Write(ctx, toCoder(typ), p)
}

// writer returns coder's streaming writer: every Write goes out as a frame
// of its own, Close sends an empty final frame.
func (cc *coderClient) writer(ctx context.Context, typ websocket.MessageType) (io.WriteCloser, error) {
	return cc.c.Writer(ctx, toCoder(typ))
}

func (cc *coderClient) read(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, p, err := cc.c.Read(ctx)
	return websocket.MessageType(typ), p, err
}

func (cc *coderClient) readInBackground(ctx context.Context) { cc.c.CloseRead(ctx) }

// ping uses coder's Ping, which waits for the pong while a reader runs.
func (cc *coderClient) ping(ctx context.Context) error { return cc.c.Ping(ctx) }

// close uses coder's Close: it sends the close, waits for the server's and
// returns nil only if the server answered with the same code.
func (cc *coderClient) close(ctx context.Context, code int, reason string) error {
	return cc.c.Close(coder.StatusCode(code), reason)
}

func (cc *coderClient) closeNow()           { cc.c.CloseNow() }
func (cc *coderClient) subprotocol() string { return cc.c.Subprotocol() }
