package interop

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	coder "github.com/coder/websocket"
	gorilla "github.com/gorilla/websocket"
	"github.com/lxzan/gws"
)

// Echo servers of other libraries, each written as its documentation
// shows, for our client (Dial) to talk to: client_test.go.

// peerOptions configures a peer's server.
type peerOptions struct {
	subprotocols []string
	compression  bool
	// takeover keeps the compression context across messages, where the
	// library lets a server choose (gorilla's server never does).
	takeover bool
	// closeWith, if set, makes the server close each connection at once
	// with this code and reason instead of echoing.
	closeWith *closeFrame
}

type closeFrame struct {
	code   int
	reason string
}

// peer is a running echo server of another library.
type peer struct {
	url string
	// closes receives the close frame that each connection got from the
	// client, or the error that ended it otherwise.
	closes chan peerEnd
}

type peerEnd struct {
	close closeFrame
	err   error // nil if a close frame arrived
}

// awaitEnd waits for the server to report how its connection ended.
func (p *peer) awaitEnd(t *testing.T) peerEnd {
	t.Helper()
	select {
	case e := <-p.closes:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the server's connection to end")
		return peerEnd{}
	}
}

type peerLib struct {
	name string
	// deflate is the server's permessage-deflate answer, its parameters
	// in any order, when it has compression on with o and we offer
	// permessage-deflate with or without context takeover.
	deflate func(o peerOptions, ourTakeover bool) string
	serve   func(o peerOptions, p *peer) http.Handler
}

const noTakeover = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

var peerLibs = []peerLib{
	// gorilla's server never takes over a context.
	{"gorilla", func(peerOptions, bool) string { return noTakeover }, gorillaServer},
	{"coder", func(o peerOptions, ours bool) string {
		if o.takeover && ours {
			return "permessage-deflate"
		}
		return noTakeover
	}, coderServer},
	// gws's server with context takeover shrinks both windows to 4 KiB.
	{"gws", func(o peerOptions, ours bool) string {
		switch {
		case !o.takeover:
			return noTakeover
		case ours:
			return "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
		}
		return noTakeover + "; server_max_window_bits=12; client_max_window_bits=12"
	}, gwsServer},
}

// startPeer serves lib's echo on httptest until the test ends, and checks
// that no goroutine is left behind.
func startPeer(t *testing.T, lib peerLib, o peerOptions) *peer {
	t.Helper()
	checkLeaks(t)
	p := &peer{closes: make(chan peerEnd, 16)}
	s := httptest.NewServer(lib.serve(o, p))
	t.Cleanup(s.Close)
	p.url = "ws" + strings.TrimPrefix(s.URL, "http") + "/"
	return p
}

func (p *peer) report(e peerEnd) {
	select {
	case p.closes <- e:
	default:
	}
}

// gorillaServer: Upgrader.Upgrade, then ReadMessage and WriteMessage in a
// loop; the default handlers answer pings and closes.
func gorillaServer(o peerOptions, p *peer) http.Handler {
	up := gorilla.Upgrader{Subprotocols: o.subprotocols, EnableCompression: o.compression}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadLimit(largeLimit)
		if cw := o.closeWith; cw != nil {
			msg := gorilla.FormatCloseMessage(cw.code, cw.reason)
			if err := c.WriteControl(gorilla.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
				p.report(peerEnd{err: err})
				return
			}
		}
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				var ce *gorilla.CloseError
				if errors.As(err, &ce) {
					p.report(peerEnd{close: closeFrame{ce.Code, ce.Text}})
				} else {
					p.report(peerEnd{err: err})
				}
				return
			}
			if o.closeWith != nil {
				continue
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				p.report(peerEnd{err: err})
				return
			}
		}
	})
}

// coderServer: Accept, then Reader and Writer with io.Copy, as coder's echo
// example does; Close performs the closing handshake.
func coderServer(o peerOptions, p *peer) http.Handler {
	mode := coder.CompressionDisabled
	if o.compression {
		mode = coder.CompressionNoContextTakeover
		if o.takeover {
			mode = coder.CompressionContextTakeover
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := coder.Accept(w, r, &coder.AcceptOptions{Subprotocols: o.subprotocols, CompressionMode: mode})
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(largeLimit)
		ctx := r.Context()
		if cw := o.closeWith; cw != nil {
			p.report(peerEnd{err: c.Close(coder.StatusCode(cw.code), cw.reason)})
			return
		}
		for {
			err := coderEcho(ctx, c)
			var ce coder.CloseError
			if errors.As(err, &ce) {
				p.report(peerEnd{close: closeFrame{int(ce.Code), ce.Reason}})
				return
			}
			if err != nil {
				p.report(peerEnd{err: err})
				return
			}
		}
	})
}

func coderEcho(ctx context.Context, c *coder.Conn) error {
	typ, r, err := c.Reader(ctx)
	if err != nil {
		return err
	}
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, r); err != nil {
		return err
	}
	return w.Close()
}

// gwsServer: an Upgrader with an event handler whose OnMessage echoes, and
// ReadLoop on a goroutine of its own, as gws's README shows.
func gwsServer(o peerOptions, p *peer) http.Handler {
	up := gws.NewUpgrader(&gwsEcho{o: o, p: p}, &gws.ServerOption{
		SubProtocols:       o.subprotocols,
		ReadMaxPayloadSize: largeLimit,
		PermessageDeflate: gws.PermessageDeflate{
			Enabled:               o.compression,
			ServerContextTakeover: o.takeover,
			ClientContextTakeover: o.takeover,
		},
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go c.ReadLoop()
	})
}

type gwsEcho struct {
	o peerOptions
	p *peer
}

func (h *gwsEcho) OnOpen(c *gws.Conn) {
	if cw := h.o.closeWith; cw != nil {
		c.WriteClose(uint16(cw.code), []byte(cw.reason))
	}
}

func (h *gwsEcho) OnClose(c *gws.Conn, err error) {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		h.p.report(peerEnd{close: closeFrame{int(ce.Code), string(ce.Reason)}})
		return
	}
	h.p.report(peerEnd{err: err})
}

// OnPing answers with the ping's payload (RFC 6455 section 5.5.3); the
// README's handler, like gws.BuiltinEventHandler, answers with none.
func (h *gwsEcho) OnPing(c *gws.Conn, payload []byte) { c.WritePong(payload) }

func (h *gwsEcho) OnPong(c *gws.Conn, payload []byte) {}

func (h *gwsEcho) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	c.WriteMessage(m.Opcode, m.Bytes())
}
