package interop

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	"github.com/hybi/websocket"
)

// permessage-deflate (RFC 7692) with real client libraries: gorilla (which
// always negotiates no context takeover) and coder in both of its modes,
// against servers with compression on, with and without context takeover.
// The echo must be byte-exact, the negotiated parameters exactly those the
// server should answer, and the frames on the wire compressed (RSV1 on the
// first frame of a message only).

// deflateClient is a client library set up for compression.
type deflateClient struct {
	lib library
	// noTakeoverOffered: the client offers server_no_context_takeover and
	// client_no_context_takeover, so the server answers both, whatever its
	// own setting.
	noTakeoverOffered bool
}

var deflateClients = []deflateClient{
	{lib: gorillaLib, noTakeoverOffered: true},
	{lib: library{name: "coder/websocket context takeover", dial: dialCoderMode(coder.CompressionContextTakeover), closeOf: coderCloseOf}},
	{lib: library{name: "coder/websocket no context takeover", dial: dialCoderMode(coder.CompressionNoContextTakeover), closeOf: coderCloseOf}, noTakeoverOffered: true},
}

// dialCoderMode dials with coder's compression in mode, as dialCoder does
// otherwise.
func dialCoderMode(mode coder.CompressionMode) func(ctx context.Context, url string, o dialOptions) (client, *http.Response, error) {
	return func(ctx context.Context, url string, o dialOptions) (client, *http.Response, error) {
		tr := &http.Transport{DialContext: o.netDial, DisableKeepAlives: true}
		c, resp, err := coder.Dial(ctx, url, &coder.DialOptions{
			HTTPClient:      &http.Client{Transport: tr},
			HTTPHeader:      o.header,
			CompressionMode: mode,
		})
		if err != nil {
			return nil, resp, err
		}
		c.SetReadLimit(largeLimit)
		return &coderClient{c: c}, resp, nil
	}
}

// wantAnswer is the Sec-WebSocket-Extensions answer the server owes dc.
func (dc deflateClient) wantAnswer(serverTakeover bool) string {
	if !serverTakeover || dc.noTakeoverOffered {
		return "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	}
	return "permessage-deflate"
}

// forEachDeflate runs f for every client library and server mode.
func forEachDeflate(t *testing.T, f func(t *testing.T, dc deflateClient, serverTakeover bool)) {
	for _, dc := range deflateClients {
		for _, takeover := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/server takeover %v", dc.lib.name, takeover), func(t *testing.T) { f(t, dc, takeover) })
		}
	}
}

func deflateServer(t *testing.T, takeover bool, serve serveFunc) *server {
	return newServer(t, &websocket.Handler{
		ReadLimit:   largeLimit,
		Compression: &websocket.CompressionOptions{ContextTakeover: takeover},
	}, serve)
}

// dialDeflate dials with compression offered and checks the answer.
func dialDeflate(t *testing.T, ctx context.Context, s *server, dc deflateClient, serverTakeover bool, tp *tap) client {
	t.Helper()
	o := dialOptions{compression: true}
	if tp != nil {
		o.netDial = tp.dial
	}
	cl, resp, err := dc.lib.dial(ctx, s.url, o)
	if err != nil {
		t.Fatalf("%s dial: %v", dc.lib.name, err)
	}
	t.Cleanup(cl.closeNow)
	if got, want := resp.Header.Get("Sec-WebSocket-Extensions"), dc.wantAnswer(serverTakeover); got != want {
		t.Errorf("negotiated %q, want %q", got, want)
	}
	return cl
}

// checkCompressedWire checks the data frames of one direction: RSV1 on
// first frames only, none on control frames; it returns the count of
// messages and of compressed ones, and the sizes of the first frames.
func checkCompressedWire(t *testing.T, what string, frames []wireFrame) (messages, compressed int, sizes []int) {
	t.Helper()
	inMessage := false
	for i, f := range frames {
		switch {
		case f.op >= 0x8:
			if f.rsv != 0 {
				t.Errorf("%s: control frame %d (opcode %#x) with RSV bits %03b", what, i, f.op, f.rsv)
			}
			continue
		case f.op == 0:
			if f.rsv != 0 {
				t.Errorf("%s: continuation frame %d with RSV bits %03b", what, i, f.rsv)
			}
			if !inMessage {
				t.Errorf("%s: continuation frame %d outside a message", what, i)
			}
		default:
			if f.rsv&^4 != 0 {
				t.Errorf("%s: frame %d with RSV bits %03b", what, i, f.rsv)
			}
			if inMessage {
				t.Errorf("%s: frame %d starts a message inside another", what, i)
			}
			messages++
			if f.rsv == 4 {
				compressed++
			}
			sizes = append(sizes, len(f.payload))
		}
		inMessage = !f.fin
	}
	return messages, compressed, sizes
}

// TestDeflateEcho: text and binary of 0 to 16 MiB, whole and streamed,
// echoed byte for byte; on the wire the server compresses the text
// messages of 128 bytes and more (its threshold) and only those (the
// binary ones are random: deflating does not shrink them, so they go as
// they are), and the client's compressed frames are understood.
func TestDeflateEcho(t *testing.T) {
	sizes := []int{0, 1, 127, 128, 1000, 65535, 65536, 1 << 20}
	forEachDeflate(t, func(t *testing.T, dc deflateClient, serverTakeover bool) {
		s := deflateServer(t, serverTakeover, echo)
		ctx := testContext(t, 5*time.Minute)
		var tp tap
		cl := dialDeflate(t, ctx, s, dc, serverTakeover, &tp)
		var sent []int
		var texts []bool
		for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
			for _, n := range sizes {
				if err := roundTrip(ctx, cl, typ, payload(typ, n)); err != nil {
					t.Fatal(err)
				}
				sent, texts = append(sent, n), append(texts, typ == textMsg)
			}
			// Streamed: the client library frames (and compresses) as it likes.
			p := payload(typ, 200<<10)
			w, err := cl.writer(ctx, typ)
			if err != nil {
				t.Fatal(err)
			}
			for off := 0; off < len(p); off += 7000 {
				if _, err := w.Write(p[off:min(off+7000, len(p))]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := expectEcho(ctx, cl, typ, p); err != nil {
				t.Fatal(err)
			}
			sent, texts = append(sent, len(p)), append(texts, typ == textMsg)
		}
		closeCleanly(t, ctx, s, cl)

		fromClient, err := tp.sent()
		if err != nil {
			t.Fatal(err)
		}
		fromServer, err := tp.received()
		if err != nil {
			t.Fatal(err)
		}
		cm, cc, _ := checkCompressedWire(t, "client", fromClient)
		sm, sc, frameSizes := checkCompressedWire(t, "server", fromServer)
		if sm != len(sent) {
			t.Fatalf("the server sent %d messages, want %d", sm, len(sent))
		}
		for i, f := range fromServerFirstFrames(fromServer) {
			if wantRSV := texts[i] && sent[i] >= websocket.DefaultCompressionThreshold; (f.rsv == 4) != wantRSV {
				t.Errorf("server message %d of %d bytes: RSV1 %v, want %v", i, sent[i], f.rsv == 4, wantRSV)
			}
		}
		if cc == 0 {
			t.Errorf("%s sent no compressed message", dc.lib.name)
		}
		t.Logf("client: %d messages, %d compressed; server: %d messages, %d compressed; server frame sizes %v for message sizes %v", cm, cc, sm, sc, frameSizes, sent)

		// 16 MiB each way, on a connection of its own (no tap); with the
		// race detector, ten times slower, in one server mode only.
		if testing.Short() || deflateRaceEnabled() && !serverTakeover {
			return
		}
		cl2 := dialDeflate(t, ctx, s, dc, serverTakeover, nil)
		for _, typ := range []websocket.MessageType{textMsg, binaryMsg} {
			if err := roundTrip(ctx, cl2, typ, payload(typ, 16<<20)); err != nil {
				t.Fatal(err)
			}
		}
		closeCleanly(t, ctx, s, cl2)
	})
}

// deflateRaceEnabled reports whether the race detector is on.
func deflateRaceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

func fromServerFirstFrames(frames []wireFrame) []wireFrame {
	var firsts []wireFrame
	for _, f := range frames {
		if f.op == 1 || f.op == 2 {
			firsts = append(firsts, f)
		}
	}
	return firsts
}

// chatty returns the i-th message of a repetitive JSON stream.
func chatty(i int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"seq":%d,"type":"position_update","room":"lobby-%d","player":{"id":"p-%06d","name":"Player %d"},"state":{"x":%d,"y":%d,"heading":%d},"items":[`, i, i%7, i*7919%1000000, i%50, i*13%1000, i*17%1000, i*29%360)
	for j := 0; b.Len() < 900; j++ {
		fmt.Fprintf(&b, `{"item":"item-%d","count":%d,"rare":%v},`, (i+j)*31%97, (i*j)%9, (i+j)%5 == 0)
	}
	b.WriteString(`{}],"note":"ünïcödé ✓"}`)
	return []byte(b.String())
}

// TestDeflateContext: hundreds of chatty messages on one connection, both
// ways compressed; with context takeover both ways the server's messages
// shrink to a fraction of what they are without.
func TestDeflateContext(t *testing.T) {
	const messages = 300
	forEachDeflate(t, func(t *testing.T, dc deflateClient, serverTakeover bool) {
		s := deflateServer(t, serverTakeover, echo)
		ctx := testContext(t, 2*time.Minute)
		var tp tap
		cl := dialDeflate(t, ctx, s, dc, serverTakeover, &tp)
		plain := 0
		for i := range messages {
			p := chatty(i)
			plain += len(p)
			if err := roundTrip(ctx, cl, textMsg, p); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		closeCleanly(t, ctx, s, cl)
		fromServer, err := tp.received()
		if err != nil {
			t.Fatal(err)
		}
		fromClient, err := tp.sent()
		if err != nil {
			t.Fatal(err)
		}
		_, sc, sizes := checkCompressedWire(t, "server", fromServer)
		_, cc, _ := checkCompressedWire(t, "client", fromClient)
		if sc != messages {
			t.Errorf("the server compressed %d of %d messages", sc, messages)
		}
		if cc == 0 {
			t.Errorf("the client compressed none of its messages")
		}
		wire := 0
		for _, n := range sizes {
			wire += n
		}
		ratio := float64(wire) / float64(plain)
		takeover := dc.wantAnswer(serverTakeover) == "permessage-deflate"
		t.Logf("%d messages, %d bytes: the server sent %d (ratio %.3f, context takeover %v); the client compressed %d", messages, plain, wire, ratio, takeover, cc)
		// Without takeover the libraries inflate each message on its own:
		// a reference to an earlier one would have broken the echo above.
		if takeover && ratio > 0.25 {
			t.Errorf("with context takeover the server's ratio is %.3f", ratio)
		}
	})
}

// TestDeflateServerStreams: the server streams its answer with NextWriter,
// so a compressed message spans several frames (RSV1 on the first only);
// the libraries inflate it whole.
func TestDeflateServerStreams(t *testing.T) {
	forEachDeflate(t, func(t *testing.T, dc deflateClient, serverTakeover bool) {
		s := deflateServer(t, serverTakeover, func(c *websocket.Conn, report func(error)) {
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					report(err)
					return
				}
				w, err := c.NextWriter(typ)
				if err != nil {
					report(err)
					return
				}
				for off, i := 0, 0; off < len(msg); i++ {
					n := min(len(msg)-off, []int{1, 5000, 3, 70000, 4096}[i%5])
					if _, err := w.Write(msg[off : off+n]); err != nil {
						report(err)
						return
					}
					off += n
				}
				if err := w.Close(); err != nil {
					report(err)
					return
				}
			}
		})
		ctx := testContext(t, time.Minute)
		var tp tap
		cl := dialDeflate(t, ctx, s, dc, serverTakeover, &tp)
		var sent []int
		for i, n := range []int{10, 5000, 100000, 1 << 20} {
			typ := []websocket.MessageType{textMsg, binaryMsg}[i%2]
			if err := roundTrip(ctx, cl, typ, payload(typ, n)); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, n)
		}
		closeCleanly(t, ctx, s, cl)
		fromServer, err := tp.received()
		if err != nil {
			t.Fatal(err)
		}
		checkCompressedWire(t, "server", fromServer)
		firsts, data := fromServerFirstFrames(fromServer), 0
		for _, f := range fromServer {
			if f.op < 0x8 {
				data++
			}
		}
		if len(firsts) != len(sent) {
			t.Fatalf("%d messages from the server, want %d", len(firsts), len(sent))
		}
		for i, f := range firsts {
			if (f.rsv == 4) != (sent[i] >= 128) {
				t.Errorf("message %d of %d bytes: RSV1 %v", i, sent[i], f.rsv == 4)
			}
		}
		if data < 2*len(sent) {
			t.Errorf("%d data frames for %d messages: the streamed messages were not fragmented", data, len(sent))
		}
		t.Logf("%d messages in %d data frames", len(sent), data)
	})
}

// TestDeflateConcurrentClients: many compressed connections at once, each
// with its own context, none disturbing another.
func TestDeflateConcurrentClients(t *testing.T) {
	for _, dc := range deflateClients {
		t.Run(dc.lib.name, func(t *testing.T) {
			s := deflateServer(t, true, echo)
			ctx := testContext(t, time.Minute)
			const clients, messages = 8, 50
			errs := make(chan error, clients)
			for c := range clients {
				go func() {
					cl, _, err := dc.lib.dial(ctx, s.url, dialOptions{compression: true})
					if err != nil {
						errs <- err
						return
					}
					defer cl.closeNow()
					for i := range messages {
						p := append(chatty(i*clients+c), fmt.Sprintf(" client %d", c)...)
						if err := roundTrip(ctx, cl, textMsg, p); err != nil {
							errs <- fmt.Errorf("client %d, message %d: %w", c, i, err)
							return
						}
					}
					errs <- cl.close(ctx, 1000, "")
				}()
			}
			for range clients {
				if err := <-errs; err != nil {
					t.Error(err)
				}
			}
			for range clients {
				if err := s.end(t); err != nil && websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					t.Errorf("server: %v", err)
				}
			}
		})
	}
}
