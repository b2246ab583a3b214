package websocket

import (
	"bufio"
	"context"
	"errors"
	"io"
	"iter"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Dialect is the protocol version a client spoke in its handshake.
type Dialect uint8

const (
	Hixie75 Dialect = iota + 1 // draft-hixie-75
	Hixie76                    // draft-hixie-76, also known as hybi-00
	Hybi07                     // Sec-WebSocket-Version: 7
	Hybi08                     // Sec-WebSocket-Version: 8 (drafts hybi-08 to -12)
	RFC6455                    // Sec-WebSocket-Version: 13
)

var dialectNames = [...]string{Hixie75: "draft-hixie-75", Hixie76: "draft-hixie-76", Hybi07: "hybi-07", Hybi08: "hybi-08", RFC6455: "RFC 6455"}

func (d Dialect) String() string {
	if d >= Hixie75 && d <= RFC6455 {
		return dialectNames[d]
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// hybi reports whether d uses RFC 6455 framing (binary, ping, close codes).
func (d Dialect) hybi() bool { return d >= Hybi07 }

// Defaults of the Handler's zero value.
const (
	DefaultReadLimit        = 1 << 20
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultCloseTimeout     = 5 * time.Second
	DefaultWriteTimeout     = 15 * time.Second
)

// Handler accepts WebSocket connections of every dialect on one endpoint
// and calls Serve with each. Its zero value with Serve set is ready to use;
// it must not be copied after first use.
type Handler struct {
	// Serve is called with each accepted connection, on a goroutine of its
	// own: ServeHTTP returns once the handshake is done, which frees what
	// net/http kept for the request. The request's context is then
	// canceled; Conn.Context lasts as long as the connection. Over HTTP/2
	// (RFC 8441) Serve runs on the stream's handler goroutine instead,
	// as the stream ends when its handler returns. When Serve
	// returns, the connection is closed with 1000 (or the hixie close); if
	// it panics, with 1011, and the panic is logged. Either is the close's
	// cause (Conn.CloseCause) unless another came first.
	Serve func(*Conn)

	// Events, when set, serves each connection through its callbacks
	// instead of Serve, which is then not called. On Linux, a plain TCP
	// connection then runs on the event engine: after the handshake it
	// holds no goroutine and no read buffer while idle, and the
	// callbacks run on the engine's pollers (see Events). Connections over
	// TLS or HTTP/2, and every connection elsewhere than on Linux, run the
	// same callbacks on a goroutine of their own.
	Events *Events

	// Origins lists the origins allowed to connect: full origins
	// ("https://example.com:8443") or host patterns matched with path.Match
	// ("*.example.com", "localhost:8080"); "*" allows any. When empty, an
	// origin must name the request's Host. A request with no origin (not
	// from a browser) is always allowed.
	Origins []string

	// Location, when set ("ws://example.com/chat"), is the only URL this
	// handler answers: a request for another host gets 400, for another
	// path 404. Hixie clients are answered with the URL they asked for.
	Location string

	// Subprotocols lists the subprotocols the server speaks, most preferred
	// first; the first one the client also offers is chosen.
	Subprotocols []string

	// Compression enables permessage-deflate (RFC 7692) for the clients
	// that offer it; nil disables it.
	Compression *CompressionOptions

	// ReadLimit is the largest message accepted, in bytes (0: DefaultReadLimit;
	// negative: no limit). Conn.SetReadLimit changes it per connection.
	ReadLimit int64

	// HandshakeTimeout bounds the part of the handshake after the hijack
	// that can wait: reading hixie-76's key3 and writing the answer (0:
	// DefaultHandshakeTimeout). An RFC 6455 answer always fits in a TCP
	// socket just accepted, so that write needs no bound.
	HandshakeTimeout time.Duration

	// CloseTimeout bounds the wait for the peer's answer to a close
	// (0: DefaultCloseTimeout).
	CloseTimeout time.Duration

	// WriteTimeout bounds each frame written, so that a client that stops
	// reading cannot block a writer forever. A write that times out cuts
	// its frame short, so the connection is closed at once, without a
	// close frame; the write and any read in progress return
	// ErrWriteTimeout (0: DefaultWriteTimeout; negative: none). On
	// a plain TCP connection under Linux it counts from when the write
	// finds the socket's buffer full: a write that goes out at once arms
	// no timer.
	WriteTimeout time.Duration

	// PingInterval, on RFC 6455 dialects, pings a peer silent for that
	// long; if it stays silent PongTimeout longer (0: PingInterval), the
	// connection is dropped and reads return ErrPongTimeout. This finds
	// peers gone behind a NAT or a dead link. 0: no pings.
	PingInterval time.Duration
	PongTimeout  time.Duration

	// IdleTimeout closes (1001, or the hixie close) a connection whose
	// peer has sent nothing for that long; reads return ErrIdleTimeout.
	// The hixie dialects have no ping: this is how to find their dead
	// peers. 0: none.
	IdleTimeout time.Duration

	// TrustProxyHeaders takes the client's scheme and host from the
	// Forwarded or X-Forwarded-Proto/-Host fields, for a server behind a
	// TLS-terminating proxy: hixie clients are then answered wss://
	// Locations. Set it only when such a proxy sets (or strips) them.
	TrustProxyHeaders bool

	// Fallback, if set, serves requests that are not WebSocket handshakes,
	// which otherwise get 400.
	Fallback http.Handler

	// Logger receives connection events; nil logs nothing.
	Logger *slog.Logger

	mu           sync.Mutex
	conns        connList
	listeners    map[net.Listener]struct{} // Serve's
	shuttingDown bool
	serving      sync.WaitGroup // handshakes and callbacks in progress
	accepted     atomic.Uint64
	engineConns  atomic.Int64
	refused      [numRefusals]atomic.Uint64
	closes       [numCauses]atomic.Uint64

	acceptedHTTP2 atomic.Uint64 // of accepted: over HTTP/2 (http2.go)
	activeHTTP2   atomic.Int64
}

// Stats is a snapshot of a Handler's counters, for a status page.
type Stats struct {
	Accepted uint64   `json:"accepted"` // handshakes completed
	Active   int      `json:"active"`   // connections open now
	Engine   int      `json:"engine"`   // of which on the event engine
	Refused  Refusals `json:"refused"`
	Closed   Closes   `json:"closed"`

	// Of Accepted and Active, the WebSockets carried by HTTP/2 streams
	// (RFC 8441).
	AcceptedHTTP2 uint64 `json:"accepted_http2"`
	ActiveHTTP2   int    `json:"active_http2"`
}

// Closes counts the connections that closed by cause (Conn.CloseCause),
// each once, when its Serve has returned and it has closed.
type Closes struct {
	PeerClose     uint64 `json:"peer_close"`     // the peer's close (*CloseError)
	Dropped       uint64 `json:"dropped"`        // the peer gone without a close (ErrDropped)
	ProtocolError uint64 `json:"protocol_error"` // failed with 1002 or 1007 (*ProtocolError)
	ReadLimit     uint64 `json:"read_limit"`     // failed with 1009: a message over the read limit (*ProtocolError)
	WriteTimeout  uint64 `json:"write_timeout"`  // ErrWriteTimeout
	IdleTimeout   uint64 `json:"idle_timeout"`   // ErrIdleTimeout
	PongTimeout   uint64 `json:"pong_timeout"`   // ErrPongTimeout
	SlowConsumer  uint64 `json:"slow_consumer"`  // a Group disconnected it (ErrSlowConsumer)
	Shutdown      uint64 `json:"shutdown"`       // ErrShutdown
	ServerClose   uint64 `json:"server_close"`   // Serve returned, Close, CloseNow (*LocalCloseError)
	Panic         uint64 `json:"panic"`          // Serve panicked (*LocalCloseError with Panic)
}

// Refusals counts refused handshakes by reason.
type Refusals struct {
	NotWebSocket uint64 `json:"not_websocket"` // not an upgrade request: 400 (not counted when Fallback serves it)
	BadHandshake uint64 `json:"bad_handshake"` // malformed handshake (method, keys, Host): 400 or 405
	Version      uint64 `json:"version"`       // unsupported Sec-WebSocket-Version: 426
	Origin       uint64 `json:"origin"`        // origin not allowed: 403
	Location     uint64 `json:"location"`      // not the configured Location: 400 or 404
	Timeout      uint64 `json:"timeout"`       // handshake not completed in time (hixie-76 key3): dropped
	ShuttingDown uint64 `json:"shutting_down"` // after Shutdown: 503
}

type refusalReason int

const (
	refNotWebSocket refusalReason = iota
	refBadHandshake
	refVersion
	refOrigin
	refLocation
	refTimeout
	refShuttingDown
	numRefusals
)

var refusalNames = [numRefusals]string{"not a websocket handshake", "bad handshake", "unsupported version", "origin not allowed", "wrong location", "handshake timeout", "shutting down"}

// refusal is a handshake refused before the hijack, with its HTTP answer.
type refusal struct {
	reason refusalReason
	status int
	msg    string
}

// handshake is what ServeHTTP learns from the request and answers with.
type handshake struct {
	dialect    Dialect
	origin     string   // as sent by the client
	location   string   // the URL the client asked for (hixie answers)
	offered    []string // subprotocols offered
	protocol   string   // subprotocol chosen
	accept     string   // RFC 6455 Sec-WebSocket-Accept
	extensions string   // Sec-WebSocket-Extensions answer
	deflate    *deflateParams
	key1, key2 uint32 // hixie-76 key numbers
}

// Stats returns the handler's counters.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	active := h.conns.n
	h.mu.Unlock()
	r, cl := &h.refused, &h.closes
	return Stats{
		Accepted:      h.accepted.Load(),
		Active:        active,
		AcceptedHTTP2: h.acceptedHTTP2.Load(),
		ActiveHTTP2:   int(h.activeHTTP2.Load()),
		Engine:        int(h.engineConns.Load()),
		Refused: Refusals{
			NotWebSocket: r[refNotWebSocket].Load(),
			BadHandshake: r[refBadHandshake].Load(),
			Version:      r[refVersion].Load(),
			Origin:       r[refOrigin].Load(),
			Location:     r[refLocation].Load(),
			Timeout:      r[refTimeout].Load(),
			ShuttingDown: r[refShuttingDown].Load(),
		},
		Closed: Closes{
			PeerClose:     cl[causePeerClose].Load(),
			Dropped:       cl[causeDropped].Load(),
			ProtocolError: cl[causeProtocolError].Load(),
			ReadLimit:     cl[causeReadLimit].Load(),
			WriteTimeout:  cl[causeWriteTimeout].Load(),
			IdleTimeout:   cl[causeIdleTimeout].Load(),
			PongTimeout:   cl[causePongTimeout].Load(),
			SlowConsumer:  cl[causeSlowConsumer].Load(),
			Shutdown:      cl[causeShutdown].Load(),
			ServerClose:   cl[causeServerClose].Load(),
			Panic:         cl[causePanic].Load(),
		},
	}
}

// ServeHTTP answers a WebSocket handshake of any dialect, hijacks the
// connection and calls Serve with it; over HTTP/2 it answers an extended
// CONNECT (RFC 8441) and serves the stream (see "HTTP/2" in the package
// documentation).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hs, ref := h.negotiate(r)
	if ref != nil && ref.reason == refNotWebSocket && h.Fallback != nil {
		h.Fallback.ServeHTTP(w, r)
		return
	}
	if ref == nil && h.Serve == nil && h.Events == nil {
		http.Error(w, "websocket: Handler.Serve and Handler.Events are nil", http.StatusInternalServerError)
		return
	}
	if ref == nil && !h.begin() {
		ref = &refusal{refShuttingDown, http.StatusServiceUnavailable, "server shutting down"}
	}
	if ref != nil {
		h.refuse(w, r, ref)
		return
	}
	if r.ProtoMajor == 2 {
		h.serveStream(w, r, hs)
		return
	}
	netConn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.serving.Done()
		h.log(slog.LevelError, "hijack failed", r, slog.String("error", err.Error()))
		http.Error(w, "websocket: cannot take over this connection", http.StatusInternalServerError)
		return
	}
	if err := h.answer(netConn, brw, hs); err != nil {
		reason := refBadHandshake
		if errors.Is(err, errTimeout) {
			reason = refTimeout
		}
		h.refused[reason].Add(1)
		h.log(slog.LevelInfo, "handshake dropped", r, slog.String("dialect", hs.dialect.String()), slog.String("error", err.Error()))
		netConn.Close()
		h.serving.Done()
		return
	}

	_, owned := w.(*response) // Serve's: r is no one else's
	c := newConn(h.engineConn(netConn), brw, hs, r, owned, h)
	onEngine := h.onEngine(c) // engineConn made its socket an engine one
	h.track(c)
	h.log(slog.LevelInfo, "connection open", r, slog.String("dialect", hs.dialect.String()), slog.String("subprotocol", hs.protocol))
	if onEngine {
		h.runEngine(c)
		return
	}
	// Serve runs on a goroutine of its own, so that this one returns and
	// net/http lets go of what it kept for the request (its buffers, a
	// stack grown by the parsing): an idle connection costs a few KB.
	go h.serve(c)
}

// serve runs the callback, then closes the connection properly: 1000, or
// 1011 if the callback panicked. The close is made from here, not from a
// deferred function, whose frame would be on the stack too: the close
// handshake then fits in the goroutine's smallest stack.
func (h *Handler) serve(c *Conn) {
	start := time.Now()
	c.closeHandshake(h.run(c))
	h.closed(c, start)
}

// run calls Serve and returns the cause of the close it earned: 1011 if it
// panicked (the panic is logged, not repeated).
func (h *Handler) run(c *Conn) (cause *LocalCloseError) {
	defer func() {
		if p := recover(); p != nil {
			cause = h.panicked(c, p)
		}
	}()
	if h.Events != nil {
		h.Events.run(c, true)
	} else {
		h.Serve(c)
	}
	return &LocalCloseError{Code: StatusNormalClosure}
}

// panicked logs the panic p of a callback serving c (called by the
// deferred recover) and returns the cause of the close it earns: 1011.
func (h *Handler) panicked(c *Conn, p any) *LocalCloseError {
	stack := make([]byte, 16<<10)
	stack = stack[:runtime.Stack(stack, false)]
	if h.Logger != nil {
		h.logConn(slog.LevelError, "panic in Serve", c, slog.Any("panic", p), slog.String("stack", string(stack)))
	} else {
		log.Printf("websocket: panic serving %s: %v\n%s", c.RemoteAddr(), p, stack)
	}
	return &LocalCloseError{Code: StatusInternalError, Panic: p}
}

// closed counts c's close by cause, forgets c and logs why it closed, after
// serving since start.
func (h *Handler) closed(c *Conn, start time.Time) {
	cause := c.CloseCause()
	kind, code, reason := causeOf(cause)
	h.closes[kind].Add(1)
	h.untrack(c)
	if h.Logger != nil {
		attrs := []slog.Attr{slog.String("dialect", c.dialect.String()), slog.Duration("duration", time.Since(start)),
			slog.String("cause", causeNames[kind])}
		if code != 0 {
			attrs = append(attrs, slog.Int("code", int(code)))
		}
		if reason != "" {
			attrs = append(attrs, slog.String("reason", reason))
		}
		attrs = append(attrs, slog.String("error", cause.Error()))
		h.logConn(slog.LevelInfo, "connection closed", c, attrs...)
	}
	h.serving.Done()
}

// negotiate picks the dialect and checks origin and location, before
// anything is hijacked.
func (h *Handler) negotiate(r *http.Request) (*handshake, *refusal) {
	if r.ProtoMajor == 2 {
		hs, ref := parseHTTP2(r)
		if ref != nil {
			return nil, ref
		}
		return h.agree(r, hs)
	}
	if !isUpgrade(r) {
		return nil, &refusal{refNotWebSocket, http.StatusBadRequest, "expected a WebSocket handshake"}
	}
	if r.Method != http.MethodGet {
		return nil, &refusal{refBadHandshake, http.StatusMethodNotAllowed, "a WebSocket handshake must use GET"}
	}
	if !r.ProtoAtLeast(1, 1) {
		return nil, &refusal{refBadHandshake, http.StatusBadRequest, "a WebSocket handshake needs HTTP/1.1"}
	}
	hs := &handshake{}
	var ref *refusal
	switch version, hasVersion := r.Header[headerVersion]; {
	case hasVersion || r.Header.Get(headerKey) != "":
		var ok bool
		if hs.dialect, ok = hybiDialect(strings.TrimSpace(strings.Join(version, ","))); !ok {
			return nil, &refusal{refVersion, http.StatusUpgradeRequired, "unsupported Sec-WebSocket-Version"}
		}
		ref = parseHybi(r, hs)
	case r.Header.Get("Sec-WebSocket-Key1") != "" || r.Header.Get("Sec-WebSocket-Key2") != "":
		hs.dialect = Hixie76
		ref = parseHixie76(r, hs)
	default:
		hs.dialect = Hixie75
		ref = parseHixie75(r, hs)
	}
	if ref != nil {
		return nil, ref
	}
	return h.agree(r, hs)
}

// agree applies what every transport and dialect shares to a parsed
// handshake: the Origin and Location checks, the subprotocol, deflate.
func (h *Handler) agree(r *http.Request, hs *handshake) (*handshake, *refusal) {
	scheme, host := h.clientURL(r)
	if !h.originAllowed(hs.origin, host) {
		return nil, &refusal{refOrigin, http.StatusForbidden, "origin not allowed"}
	}
	if ref := h.checkLocation(r, hs, scheme, host); ref != nil {
		return nil, ref
	}
	h.agreeOffers(hs, r.Header.Values(headerExtensions))
	return hs, nil
}

// agreeOffers chooses hs's subprotocol among those offered and answers the
// extensions offered (the fields' values): permessage-deflate.
func (h *Handler) agreeOffers(hs *handshake, extensions []string) {
	hs.protocol = h.chooseSubprotocol(hs.offered)
	if h.Compression != nil && hs.dialect.hybi() {
		if p, answer, ok := negotiateDeflate(parseExtensions(extensions), h.Compression); ok {
			hs.deflate, hs.extensions = &p, answer
		}
	}
}

// errTimeout marks a handshake that did not complete within HandshakeTimeout.
var errTimeout = errors.New("handshake timed out")

// answer completes the handshake on the hijacked connection: it reads
// hixie-76's key3 and writes the answer, within HandshakeTimeout where
// either can wait. An RFC 6455 answer is small (what it echoes, the server
// chose) and a TCP socket just accepted has room for it: writing it there
// cannot wait, and most handshakes set no deadline (two timers made and
// stopped otherwise). A hixie answer echoes the client's origin and URL,
// of any length. net/http cleared its own deadlines when it let go.
func (h *Handler) answer(netConn net.Conn, brw *bufio.ReadWriter, hs *handshake) error {
	_, isTCP := netConn.(*net.TCPConn)
	mayWait := !isTCP || !hs.dialect.hybi()
	if mayWait {
		netConn.SetDeadline(time.Now().Add(orDefault(h.HandshakeTimeout, DefaultHandshakeTimeout)))
	}
	switch hs.dialect {
	case Hixie75:
		writeHixieAnswer(brw.Writer, hs)
	case Hixie76:
		// Browsers send key3 with the headers: it is usually buffered already.
		var key3 [8]byte
		if _, err := io.ReadFull(brw.Reader, key3[:]); err != nil {
			if isTimeout(err) {
				return errTimeout
			}
			return errors.New("connection closed before the 8 bytes of key3")
		}
		writeHixieAnswer(brw.Writer, hs)
		challenge := hixieChallenge(hs.key1, hs.key2, key3)
		brw.Writer.Write(challenge[:])
	default:
		writeHybiAnswer(brw.Writer, hs)
	}
	if err := brw.Writer.Flush(); err != nil {
		if isTimeout(err) {
			return errTimeout
		}
		return err
	}
	if mayWait {
		return netConn.SetDeadline(time.Time{})
	}
	return nil
}

// isTimeout reports whether err is a deadline passing.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	h.refused[ref.reason].Add(1)
	if ref.reason == refVersion {
		versions := supportedVersions
		if r.ProtoMajor == 2 {
			versions = "13"
		}
		w.Header().Set("Sec-WebSocket-Version", versions)
	}
	if ref.reason == refBadHandshake && ref.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	h.log(slog.LevelInfo, "handshake refused", r, slog.String("reason", refusalNames[ref.reason]), slog.Int("status", ref.status), slog.String("detail", ref.msg))
	http.Error(w, "websocket: "+ref.msg, ref.status)
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	return hasToken(r.Header, "Connection", "upgrade") && hasToken(r.Header, "Upgrade", "websocket")
}

func hasToken(header http.Header, name, token string) bool {
	for t := range headerTokens(header, name) {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// headerTokens yields every token of a comma-separated header field's
// values, without collecting them.
func headerTokens(header http.Header, name string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, v := range header.Values(name) {
			for t := range strings.SplitSeq(v, ",") {
				if t = strings.TrimSpace(t); t != "" && !yield(t) {
					return
				}
			}
		}
	}
}

// originAllowed applies the Origins policy to the origin a client sent.
func (h *Handler) originAllowed(origin, host string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		// "null" (a file: page, a sandboxed frame) or garbage: only "*" admits it.
		return containsFold(h.Origins, "*") || containsFold(h.Origins, origin)
	}
	originHost := hostWithoutDefaultPort(u.Scheme, u.Host)
	if len(h.Origins) == 0 {
		return originHost == hostWithoutDefaultPort(u.Scheme, host)
	}
	for _, allowed := range h.Origins {
		if allowed == "*" {
			return true
		}
		if a, err := url.Parse(allowed); err == nil && a.Scheme != "" && a.Host != "" {
			if strings.EqualFold(a.Scheme, u.Scheme) && hostWithoutDefaultPort(a.Scheme, a.Host) == originHost {
				return true
			}
		} else if ok, _ := path.Match(strings.ToLower(allowed), originHost); ok {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// hostWithoutDefaultPort lower-cases host and drops the port when it is the
// scheme's default, the form browsers put in Origin and compare Locations by.
func hostWithoutDefaultPort(scheme, host string) string {
	host = strings.ToLower(host)
	switch strings.ToLower(scheme) {
	case "http", "ws":
		return strings.TrimSuffix(host, ":80")
	case "https", "wss":
		return strings.TrimSuffix(host, ":443")
	}
	return host
}

// clientURL is the scheme (ws or wss) and host the client connected to:
// the request's, or a trusted proxy's account of them.
func (h *Handler) clientURL(r *http.Request) (scheme, host string) {
	scheme, host = "ws", r.Host
	if r.TLS != nil {
		scheme = "wss"
	}
	if !h.TrustProxyHeaders {
		return scheme, host
	}
	proto, fhost := forwardedFields(r.Header)
	if proto != "" {
		scheme = "ws"
		if strings.EqualFold(proto, "https") || strings.EqualFold(proto, "wss") {
			scheme = "wss"
		}
	}
	if fhost != "" {
		host = fhost
	}
	return scheme, host
}

// forwardedFields reads proto and host from the first (client-side) element
// of Forwarded (RFC 7239), else from X-Forwarded-Proto and -Host.
func forwardedFields(header http.Header) (proto, host string) {
	if f := header.Get("Forwarded"); f != "" {
		first, _, _ := strings.Cut(f, ",")
		for pair := range strings.SplitSeq(first, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
			value = strings.Trim(value, `"`)
			switch strings.ToLower(name) {
			case "proto":
				proto = value
			case "host":
				host = value
			}
		}
		return proto, host
	}
	proto, _, _ = strings.Cut(header.Get("X-Forwarded-Proto"), ",")
	host, _, _ = strings.Cut(header.Get("X-Forwarded-Host"), ",")
	return strings.TrimSpace(proto), strings.TrimSpace(host)
}

// checkLocation works out the URL the client asked for and, when a
// Location is configured, refuses any other host or path. A wss:// Location
// makes the answer wss:// even over plain HTTP: a TLS terminator in front.
func (h *Handler) checkLocation(r *http.Request, hs *handshake, scheme, host string) *refusal {
	var want *url.URL
	if h.Location != "" {
		var err error
		if want, err = url.Parse(h.Location); err != nil {
			return &refusal{refLocation, http.StatusInternalServerError, "Handler.Location is not a URL"}
		}
		if strings.EqualFold(want.Scheme, "wss") {
			scheme = "wss"
		}
	}
	host = hostWithoutDefaultPort(scheme, host)
	if host == "" {
		return &refusal{refBadHandshake, http.StatusBadRequest, "missing Host"}
	}
	// The request as the client sent it, before any router (StripPrefix)
	// rewrote r.URL.
	resource := r.RequestURI
	if !strings.HasPrefix(resource, "/") {
		resource = r.URL.RequestURI() // absolute form
	}
	if !strings.HasPrefix(resource, "/") {
		return &refusal{refBadHandshake, http.StatusBadRequest, "the request target must be a path"}
	}
	hs.location = scheme + "://" + host + resource
	if want == nil {
		return nil
	}
	requested, err := url.ParseRequestURI(resource)
	if err != nil {
		requested = r.URL
	}
	wantPath := want.EscapedPath()
	if wantPath == "" {
		wantPath = "/"
	}
	switch {
	case hostWithoutDefaultPort(scheme, want.Host) != host:
		return &refusal{refLocation, http.StatusBadRequest, "this endpoint is " + h.Location}
	case wantPath != requested.EscapedPath():
		return &refusal{refLocation, http.StatusNotFound, "this endpoint is " + h.Location}
	}
	return nil
}

func (h *Handler) chooseSubprotocol(offered []string) string {
	for _, p := range h.Subprotocols {
		for _, o := range offered {
			if p == o {
				return p
			}
		}
	}
	return ""
}

func (h *Handler) connConfig() connConfig {
	return connConfig{h.ReadLimit, h.CloseTimeout, h.WriteTimeout, h.PingInterval, h.PongTimeout, h.IdleTimeout, h.Compression}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// begin counts a handshake in, unless the handler is shutting down.
func (h *Handler) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return false
	}
	h.serving.Add(1)
	return true
}

func (h *Handler) track(c *Conn) {
	h.accepted.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.conns.add(c)
	if h.shuttingDown {
		// Shutdown began during this handshake and did not see c.
		go c.closeHandshake(ErrShutdown)
	}
}

// connList is a Handler's open connections, linked through the Conns
// themselves: tracking one costs no allocation (Handler.mu).
type connList struct {
	head *Conn
	n    int
}

func (l *connList) add(c *Conn) {
	c.next = l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
	l.n++
}

func (l *connList) remove(c *Conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
	l.n--
}

func (h *Handler) untrack(c *Conn) {
	h.mu.Lock()
	h.conns.remove(c)
	h.mu.Unlock()
}

// Shutdown refuses new handshakes (503), closes every connection with its
// dialect's close (1001 Going Away for RFC 6455 dialects; the cause:
// ErrShutdown) and waits for the Serve callbacks to return. If ctx ends
// first, it drops the connections that remain and returns ctx's error.
// http.Server.Shutdown neither closes nor waits for hijacked connections,
// and waits for the handlers of HTTP/2 streams, which serve WebSockets
// until they close: call both, this one first.
//
//	err := errors.Join(ws.Shutdown(ctx), srv.Shutdown(ctx))
//
// Log lines carry no endpoint: give each Handler its own
// Logger.With("endpoint", ...) to tell them apart.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.shuttingDown = true
	for ln := range h.listeners {
		ln.Close()
	}
	conns := make([]*Conn, 0, h.conns.n)
	for c := h.conns.head; c != nil; c = c.next {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	h.log(slog.LevelInfo, "shutting down", nil, slog.Int("connections", len(conns)))
	for _, c := range conns {
		go c.closeHandshake(ErrShutdown)
	}
	done := make(chan struct{})
	go func() {
		h.serving.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.mu.Lock()
		for c := h.conns.head; c != nil; c = c.next {
			c.drop(ErrShutdown)
		}
		h.mu.Unlock()
		return ctx.Err()
	}
}

// logConn logs an event of c: with its request's remote address and path,
// or, once the request was released, the remote address alone.
func (h *Handler) logConn(level slog.Level, msg string, c *Conn, attrs ...slog.Attr) {
	if h.Logger == nil {
		return
	}
	r := c.Request()
	if r == nil {
		attrs = append(attrs, slog.String("remote", c.RemoteAddr().String()))
	}
	h.log(level, msg, r, attrs...)
}

func (h *Handler) log(level slog.Level, msg string, r *http.Request, attrs ...slog.Attr) {
	if h.Logger == nil {
		return
	}
	if r != nil {
		attrs = append(attrs, slog.String("remote", r.RemoteAddr), slog.String("path", r.URL.Path))
	}
	h.Logger.LogAttrs(context.Background(), level, msg, attrs...)
}
