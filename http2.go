package websocket

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The server's side of RFC 8441: a WebSocket as an HTTP/2 stream, opened by
// an extended CONNECT. net/http hands such a request to the handler, with
// :protocol in r.Header, once GODEBUG=http2xconnect=1 has made its server
// advertise SETTINGS_ENABLE_CONNECT_PROTOCOL.

// headerPseudoProtocol is where net/http's HTTP/2 server puts :protocol,
// and where its client takes it from.
const headerPseudoProtocol = ":protocol"

// parseHTTP2 checks an HTTP/2 request for RFC 8441's fields into a new
// handshake. RFC 6455 is the only dialect there: a GET with Upgrade, or a
// CONNECT without :protocol, is not a WebSocket handshake over HTTP/2.
func parseHTTP2(r *http.Request) (*handshake, *refusal) {
	protocol := r.Header.Get(headerPseudoProtocol)
	switch {
	case r.Method != http.MethodConnect || protocol == "":
		msg := "over HTTP/2 a WebSocket handshake is a CONNECT with :protocol websocket (RFC 8441)"
		if !xconnectEnabled() {
			msg += ", which this server does not offer: start it with GODEBUG=http2xconnect=1"
		}
		return nil, &refusal{refNotWebSocket, http.StatusBadRequest, msg}
	case !strings.EqualFold(protocol, "websocket"):
		return nil, &refusal{refNotWebSocket, http.StatusBadRequest, "unknown :protocol " + protocol + "; this endpoint speaks websocket"}
	case strings.TrimSpace(strings.Join(r.Header[headerVersion], ",")) != "13":
		return nil, &refusal{refVersion, http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version: RFC 8441 carries 13"}
	}
	return &handshake{
		dialect: RFC6455,
		origin:  r.Header.Get("Origin"),
		offered: slices.Collect(headerTokens(r.Header, headerProtocol)),
	}, nil
}

// xconnectEnabled reports whether net/http's HTTP/2 server was told to
// offer extended CONNECT: it reads GODEBUG once, as it starts.
var xconnectEnabled = sync.OnceValue(func() bool { return strings.Contains(os.Getenv("GODEBUG"), "http2xconnect=1") })

// serveStream answers an RFC 8441 handshake with 200 and serves the stream
// as a Conn, on this goroutine: the stream lives as long as its handler.
func (h *Handler) serveStream(w http.ResponseWriter, r *http.Request, hs *handshake) {
	rc := http.NewResponseController(w)
	// http.Server's ReadTimeout and WriteTimeout bound each stream from its
	// start, as they would a request: the Conn's own bounds take over.
	rc.SetReadDeadline(time.Time{})
	rc.SetWriteDeadline(time.Time{})
	if hs.protocol != "" {
		w.Header().Set(headerProtocol, hs.protocol)
	}
	if hs.extensions != "" {
		w.Header().Set(headerExtensions, hs.extensions)
	}
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		h.refused[refBadHandshake].Add(1)
		h.log(slog.LevelInfo, "handshake dropped", r, slog.String("dialect", hs.dialect.String()), slog.String("error", err.Error()))
		h.serving.Done()
		return
	}
	s := newStreamConn(w, rc, r)
	c := openConn(s, nil, hs, h.connConfig(), false)
	c.req.Store(keptRequest(r))
	h.acceptedHTTP2.Add(1)
	h.activeHTTP2.Add(1)
	c.afterClose(func() { h.activeHTTP2.Add(-1) }) // before it leaves Active: never more than Active
	h.track(c)
	h.log(slog.LevelInfo, "connection open", r, slog.String("dialect", hs.dialect.String()), slog.String("subprotocol", hs.protocol), slog.String("transport", "HTTP/2"))
	h.serve(c)
	s.end()
}

// streamConn is an HTTP/2 stream as the net.Conn of a Conn: it reads the
// request's body and writes the response, each write flushed as it goes.
// Closing it ends the stream, not the connection that carries it: the
// handler returns (END_STREAM, and RST_STREAM(NO_ERROR) if the client has
// not ended its side).
type streamConn struct {
	body          io.ReadCloser
	w             http.ResponseWriter
	rc            *http.ResponseController
	local, remote net.Addr

	// live is read-held while w or rc is in use, and held by end: once the
	// handler has returned, net/http's writer is gone.
	live  sync.RWMutex
	ended bool // live

	closeOnce sync.Once
	closed    atomic.Bool
	rb, wb    bound
}

func newStreamConn(w http.ResponseWriter, rc *http.ResponseController, r *http.Request) *streamConn {
	s := &streamConn{body: r.Body, w: w, rc: rc, remote: streamAddr(r.RemoteAddr)}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		s.local = a
	} else {
		s.local = streamAddr("")
	}
	s.rb.abort = func() { s.withWriter(func() { s.rc.SetReadDeadline(time.Unix(1, 0)) }) } // at once, no timer
	s.wb.abort = s.reset
	return s
}

// streamAddr is the TCP address of the connection that carries a stream,
// from the request's RemoteAddr.
func streamAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

func (s *streamConn) Read(p []byte) (int, error) {
	if err := s.rb.begin(&s.closed); err != nil {
		return 0, err
	}
	defer s.rb.end()
	n, err := s.body.Read(p)
	if err != nil {
		err = s.rb.why(err, &s.closed)
	}
	return n, err
}

// Write writes p as DATA frames, flushed: the caller writes whole frames.
func (s *streamConn) Write(p []byte) (int, error) {
	s.live.RLock()
	defer s.live.RUnlock()
	if err := s.wb.begin(&s.closed); err != nil {
		return 0, err
	}
	defer s.wb.end()
	if s.ended {
		return 0, net.ErrClosed
	}
	n, err := s.w.Write(p)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		err = s.wb.why(err, &s.closed)
	}
	return n, err
}

// reset ends a write waiting for the peer's flow-control window by
// resetting the stream, as net/http does for a passed write deadline.
func (s *streamConn) reset() {
	s.withWriter(func() { s.rc.SetWriteDeadline(time.Unix(1, 0)) })
}

// Close ends the stream: a read waiting returns, and so does a write
// waiting for the peer's window (the stream is reset), as closing a socket
// ends a write blocked on it.
func (s *streamConn) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.body.Close()
		s.rb.stop()
		s.wb.stop()
		err = nil
	})
	return err
}

// end is called by the handler before it returns: it closes the stream,
// waits for a write in progress to give up the writer, and lets no other
// start.
func (s *streamConn) end() {
	s.Close()
	s.live.Lock()
	s.ended = true
	s.live.Unlock()
}

// withWriter calls f unless the handler has returned.
func (s *streamConn) withWriter(f func()) {
	s.live.RLock()
	if !s.ended {
		f()
	}
	s.live.RUnlock()
}

func (s *streamConn) LocalAddr() net.Addr  { return s.local }
func (s *streamConn) RemoteAddr() net.Addr { return s.remote }

func (s *streamConn) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline bounds reads; one that passes while a read waits ends
// the stream's reading for good, as net/http's HTTP/2 server does.
func (s *streamConn) SetReadDeadline(t time.Time) error { return s.rb.set(t) }

func (s *streamConn) SetWriteDeadline(t time.Time) error { return s.wb.set(t) }

// bound is a deadline of a stream, either end's, for reads or for
// writes: an operation that starts after it fails at once, and one in
// progress when it passes is ended by abort, which ends the stream (for
// reads, its reading). It is kept apart from net/http's own deadlines: a
// passed write deadline of net/http's ends the stream even with no write
// in progress (a Conn leaves its write timeout armed between writes), and
// a read deadline it is asked for once the stream has closed keeps the
// connection's state alive until it fires.
type bound struct {
	abort    func()
	deadline atomic.Int64 // Unix ns; 0: none
	busy     atomic.Bool  // an operation is in progress
	mu       sync.Mutex
	timer    *time.Timer // calls expire at the deadline (mu)
	stopped  bool        // the stream has closed: no timer any more (mu)
}

func (b *bound) set(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	b.deadline.Store(ns)
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.stopped:
	case ns == 0:
		if b.timer != nil {
			b.timer.Stop()
		}
	case b.timer == nil:
		b.timer = time.AfterFunc(time.Until(t), b.expire)
	default:
		b.timer.Reset(time.Until(t))
	}
	return nil
}

// expire aborts the operation in progress, if any, once the deadline has
// passed (the timer may have been reset meanwhile).
func (b *bound) expire() {
	if d := b.deadline.Load(); b.busy.Load() && d != 0 && time.Now().UnixNano() >= d {
		b.abort()
	}
}

// begin starts an operation, unless closed or the deadline has passed.
// busy is set before either is checked, and Close and the timer set
// theirs before they check busy: one of the two sides sees the other.
func (b *bound) begin(closed *atomic.Bool) error {
	b.busy.Store(true)
	if closed.Load() {
		b.busy.Store(false)
		return net.ErrClosed
	}
	if d := b.deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
		b.busy.Store(false)
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (b *bound) end() { b.busy.Store(false) }

// why is what a failed operation reports: net.ErrClosed once closed,
// os.ErrDeadlineExceeded once the deadline has passed, else err.
func (b *bound) why(err error, closed *atomic.Bool) error {
	switch d := b.deadline.Load(); {
	case closed.Load():
		return net.ErrClosed
	case d != 0 && time.Now().UnixNano() >= d:
		return os.ErrDeadlineExceeded
	}
	return err
}

// stop stops the timer for good and aborts an operation in progress: the
// stream is closing (closed is set).
func (b *bound) stop() {
	b.mu.Lock()
	b.stopped = true
	if b.timer != nil {
		b.timer.Stop()
	}
	b.mu.Unlock()
	if b.busy.Load() {
		b.abort()
	}
}
