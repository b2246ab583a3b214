package interop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hybi/websocket"
)

// Our client (Dial) against the echo servers of peers_test.go.

// forEachPeer runs f against each peer library.
func forEachPeer(t *testing.T, f func(t *testing.T, lib peerLib)) {
	for _, lib := range peerLibs {
		t.Run(lib.name, func(t *testing.T) { f(t, lib) })
	}
}

// dialPeer dials p with o (ReadLimit raised) and closes the connection at
// once when the test ends, whatever happened.
func dialPeer(t *testing.T, ctx context.Context, p *peer, o websocket.DialOptions) *websocket.Conn {
	t.Helper()
	if o.ReadLimit == 0 {
		o.ReadLimit = largeLimit
	}
	c, resp, err := websocket.Dial(ctx, p.url, &o)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("Dial: %v (%s)", err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// echoOnce writes p and checks the echo, byte for byte.
func echoOnce(c *websocket.Conn, typ websocket.MessageType, p []byte) error {
	if err := c.WriteMessage(typ, p); err != nil {
		return fmt.Errorf("write %s message of %d bytes: %w", typ, len(p), err)
	}
	return readEcho(c, typ, p)
}

func readEcho(c *websocket.Conn, typ websocket.MessageType, p []byte) error {
	return checkEcho(typ, p)(c.ReadMessage())
}

// closeAndCheck closes c with 1000 and checks that the peer saw that close.
func closeAndCheck(t *testing.T, c *websocket.Conn, p *peer) {
	t.Helper()
	if err := c.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("Close: %v", err)
	}
	if e := p.awaitEnd(t); e.err != nil || e.close.code != 1000 {
		t.Errorf("the server's connection ended with %+v, want our close 1000", e)
	}
}

// TestClientEcho: text and binary messages across the frame length
// encodings, up to 4 MiB, echoed byte for byte.
func TestClientEcho(t *testing.T) {
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		p := startPeer(t, lib, peerOptions{})
		ctx := testContext(t, time.Minute)
		c := dialPeer(t, ctx, p, websocket.DialOptions{})
		for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
			for _, n := range []int{0, 125, 126, 65535, 65536, 4 << 20} {
				if err := echoOnce(c, typ, payload(typ, n)); err != nil {
					t.Fatal(err)
				}
			}
		}
		closeAndCheck(t, c, p)
	})
}

// TestClientStreamed: a message written through NextWriter in several
// writes goes out in several frames (seen on the wire) and comes back
// whole; text is split inside characters.
func TestClientStreamed(t *testing.T) {
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		p := startPeer(t, lib, peerOptions{})
		ctx := testContext(t, time.Minute)
		var tp tap
		c := dialPeer(t, ctx, p, websocket.DialOptions{NetDialContext: tp.dial})
		var want [][]byte
		for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
			msg := payload(typ, 300<<10)
			w, err := c.NextWriter(typ)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(msg); off += 70001 {
				if _, err := w.Write(msg[off:min(off+70001, len(msg))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := readEcho(c, typ, msg); err != nil {
				t.Fatal(err)
			}
			want = append(want, msg)
		}
		closeAndCheck(t, c, p)
		frames, err := tp.sent()
		if err != nil {
			t.Fatal(err)
		}
		for i, typ := range []websocket.MessageType{textMsg, binaryMsg} {
			n, _, err := checkFragmented(frames, typ, want[i])
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			t.Logf("%s message of %d bytes went out in %d frames", typ, len(want[i]), n)
			frames = frames[n:]
		}
	})
}

// TestClientPing: the peer answers our ping, and its pong reaches our pong
// handler with the ping's payload.
func TestClientPing(t *testing.T) {
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		p := startPeer(t, lib, peerOptions{})
		ctx := testContext(t, 30*time.Second)
		c := dialPeer(t, ctx, p, websocket.DialOptions{})
		pongs := make(chan string, 4)
		c.SetPongHandler(func(b []byte) { pongs <- string(b) })
		readErr := make(chan error, 1)
		go func() {
			_, _, err := c.ReadMessage()
			readErr <- err
		}()
		for i := range 3 {
			ping := fmt.Sprintf("ping %d ✓", i)
			if err := c.Ping([]byte(ping)); err != nil {
				t.Fatal(err)
			}
			select {
			case got := <-pongs:
				if got != ping {
					t.Errorf("pong %q, want %q", got, ping)
				}
			case <-ctx.Done():
				t.Fatalf("no pong for %q", ping)
			}
		}
		closeAndCheck(t, c, p)
		if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
			t.Errorf("the reader got %v, want the peer's answer 1000", err)
		}
	})
}

// TestClientClose: our close code and reason reach the server; the
// server's reach our reader and CloseCause.
func TestClientClose(t *testing.T) {
	frames := []closeFrame{{4001, "bye ✓"}, {1001, "going away"}, {3000, ""}}
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		for _, cf := range frames {
			t.Run(fmt.Sprintf("ours_%d", cf.code), func(t *testing.T) {
				p := startPeer(t, lib, peerOptions{})
				ctx := testContext(t, 30*time.Second)
				c := dialPeer(t, ctx, p, websocket.DialOptions{})
				if err := echoOnce(c, textMsg, []byte("before closing")); err != nil {
					t.Fatal(err)
				}
				if err := c.Close(websocket.StatusCode(cf.code), cf.reason); err != nil {
					t.Errorf("Close: %v", err)
				}
				if e := p.awaitEnd(t); e.err != nil || e.close != cf {
					t.Errorf("the server's connection ended with %+v, want our close %+v", e, cf)
				}
			})
			t.Run(fmt.Sprintf("theirs_%d", cf.code), func(t *testing.T) {
				p := startPeer(t, lib, peerOptions{closeWith: &cf})
				ctx := testContext(t, 30*time.Second)
				c := dialPeer(t, ctx, p, websocket.DialOptions{})
				_, _, err := c.ReadMessage()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || int(ce.Code) != cf.code || ce.Reason != cf.reason {
					t.Errorf("read ended with %v, want the server's close %+v", err, cf)
				}
				if cause := c.CloseCause(); !errors.As(cause, &ce) || int(ce.Code) != cf.code || ce.Reason != cf.reason {
					t.Errorf("CloseCause %v (%T), want the server's close %+v", cause, cause, cf)
				}
				t.Logf("the server's connection ended with %+v", p.awaitEnd(t))
			})
		}
	})
}

// TestClientDeflate: permessage-deflate offered with and without context
// takeover, against servers with and without it: Extensions is what the
// server agreed, compressible messages are compressed both ways on the
// wire (RSV1), and every echo is byte for byte.
func TestClientDeflate(t *testing.T) {
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		for _, ours := range []bool{true, false} {
			for _, theirs := range []bool{true, false} {
				t.Run(fmt.Sprintf("our_takeover_%v/server_takeover_%v", ours, theirs), func(t *testing.T) {
					testClientDeflate(t, lib, ours, theirs)
				})
			}
		}
	})
}

func testClientDeflate(t *testing.T, lib peerLib, ours, theirs bool) {
	o := peerOptions{compression: true, takeover: theirs}
	p := startPeer(t, lib, o)
	ctx := testContext(t, time.Minute)
	var tp tap
	c := dialPeer(t, ctx, p, websocket.DialOptions{
		NetDialContext: tp.dial,
		Compression:    &websocket.CompressionOptions{ContextTakeover: ours},
	})
	if got, want := c.Extensions(), lib.deflate(o, ours); !slices.Equal(params(got), params(want)) {
		t.Errorf("Extensions() = %q, want %q", got, want)
	}
	const messages = 5
	for i := range messages {
		if err := echoOnce(c, textMsg, textPayload(1000+i*20000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := echoOnce(c, binaryMsg, binaryPayload(70000, 1)); err != nil {
		t.Fatal(err)
	}
	// The same message twice: with the context kept, the second refers
	// back to the first and shrinks (within gws's 4 KiB window). Hex alone
	// would go uncompressed: our level-1 compressor stores a block with no
	// match in it.
	repeat := fmt.Appendf(nil, "%s%x", strings.Repeat("repeat ", 10), binaryPayload(900, 2))
	for range 2 {
		if err := echoOnce(c, textMsg, repeat); err != nil {
			t.Fatal(err)
		}
	}
	closeAndCheck(t, c, p)
	for _, dir := range []struct {
		who, noTakeover string
		frames          func() ([]wireFrame, error)
	}{{"we", "client_no_context_takeover", tp.sent}, {"the server", "server_no_context_takeover", tp.received}} {
		frames, err := dir.frames()
		if err != nil {
			t.Fatal(err)
		}
		_, compressed, _ := checkCompressedWire(t, dir.who, frames)
		if compressed < messages+2 {
			t.Errorf("%s compressed %d messages, want the %d text ones at least", dir.who, compressed, messages+2)
		}
		sizes := messageSizes(frames)
		first, second := sizes[len(sizes)-2], sizes[len(sizes)-1]
		takeover := !strings.Contains(c.Extensions(), dir.noTakeover)
		if shrank := second < first/2; shrank != takeover {
			t.Errorf("%s sent the same message as %d then %d bytes; context takeover agreed: %v", dir.who, first, second, takeover)
		}
		t.Logf("%s: %d messages compressed; on the wire %v bytes", dir.who, compressed, sizes)
	}
}

// messageSizes returns the wire size of each data message in frames.
func messageSizes(frames []wireFrame) []int {
	var sizes []int
	n := 0
	for _, f := range frames {
		if f.op >= 0x8 {
			continue
		}
		n += len(f.payload)
		if f.fin {
			sizes = append(sizes, n)
			n = 0
		}
	}
	return sizes
}

// params splits an extension answer into its sorted parameters.
func params(answer string) []string {
	ps := strings.Split(answer, ";")
	for i := range ps {
		ps[i] = strings.TrimSpace(ps[i])
	}
	slices.Sort(ps)
	return ps
}

// TestClientSubprotocol: the server picks the one it speaks of those we
// offer.
func TestClientSubprotocol(t *testing.T) {
	forEachPeer(t, func(t *testing.T, lib peerLib) {
		p := startPeer(t, lib, peerOptions{subprotocols: []string{"chat.v2"}})
		ctx := testContext(t, 30*time.Second)
		c := dialPeer(t, ctx, p, websocket.DialOptions{Subprotocols: []string{"chat.v1", "chat.v2"}})
		if got := c.Subprotocol(); got != "chat.v2" {
			t.Errorf("Subprotocol() = %q, want chat.v2", got)
		}
		if err := echoOnce(c, textMsg, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		closeAndCheck(t, c, p)
	})
}
