package websocket

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DialOptions configure Dial. The zero value (or nil) dials RFC 6455 with
// the Handler's defaults. The fields shared with Handler (ReadLimit and
// the timeouts) mean the same on the client's side.
type DialOptions struct {
	// Dialect is the dialect to speak (0: RFC6455). The older ones are for
	// testing servers that must still serve old browsers: each handshake
	// is sent and verified as a browser of its time did.
	Dialect Dialect

	// Header holds fields to send with the handshake: Origin (sent as
	// Sec-WebSocket-Origin by hybi-07/08), Cookie, Authorization,
	// User-Agent. The fields the handshake sets itself (Host, Upgrade,
	// Connection and the Sec-WebSocket- ones) are refused: use Host,
	// Subprotocols and Compression.
	Header http.Header

	// Host, when set, is sent as the Host field instead of the URL's host,
	// which is still the address dialed and the TLS server name.
	Host string

	// Subprotocols are offered in order of preference; Conn.Subprotocol
	// is the server's choice, or "". The hixie dialects offer one only.
	Subprotocols []string

	// Compression offers permessage-deflate (RFC 7692, RFC 6455 framing
	// only), with its MaxWindowBits and ContextTakeover as limits the
	// server must accept: an answer that exceeds them fails the handshake.
	// Threshold and Level apply to what the client sends. nil: no
	// compression.
	Compression *CompressionOptions

	// TLSConfig configures the TLS of wss:// URLs (nil: the defaults, with
	// the URL's host as the server name).
	TLSConfig *tls.Config

	// Proxy returns the proxy for a request, nil for none
	// (nil: http.ProxyFromEnvironment, as net/http's clients do).
	// The request's URL is http:// or https:// for ws:// and wss://.
	Proxy func(*http.Request) (*url.URL, error)

	// NetDialContext dials the server or the proxy (nil: a net.Dialer).
	NetDialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// Jar, when set, supplies the cookies of each request (redirects
	// included) and stores those of each answer.
	Jar http.CookieJar

	// ReadLimit, CloseTimeout, WriteTimeout, PingInterval, PongTimeout
	// and IdleTimeout are as on Handler, with the same defaults.
	ReadLimit    int64
	CloseTimeout time.Duration
	WriteTimeout time.Duration
	PingInterval time.Duration
	PongTimeout  time.Duration
	IdleTimeout  time.Duration

	// HandshakeTimeout bounds the whole handshake, redirects included,
	// within ctx (0: DefaultHandshakeTimeout).
	HandshakeTimeout time.Duration

	// HTTP2 opens a wss:// WebSocket as a stream of HTTP/2 (RFC 8441's
	// extended CONNECT, RFC 6455 framing) through net/http's HTTP/2
	// client, on a TLS connection of its own. A server that does not
	// agree to h2, or does not offer extended CONNECT, fails the Dial
	// (ErrNoHTTP2). See "HTTP/2" in the package documentation.
	HTTP2 bool
}

func (o *DialOptions) connConfig() connConfig {
	return connConfig{o.ReadLimit, o.CloseTimeout, o.WriteTimeout, o.PingInterval, o.PongTimeout, o.IdleTimeout, o.Compression}
}

// maxRedirects is how many redirects Dial follows, as net/http's client.
const maxRedirects = 10

// HandshakeError is a handshake the server refused or answered wrongly:
// its status (101 for a bad answer to the upgrade), fields and the start
// of its body, and what was wrong.
type HandshakeError struct {
	Status int
	Header http.Header
	Body   []byte // at most the first 1 KiB
	Reason string
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("websocket: handshake failed: %d %s: %s", e.Status, http.StatusText(e.Status), e.Reason)
}

// ErrNoHTTP2 is Dial's error, with DialOptions.HTTP2, when the server does
// not serve WebSockets over HTTP/2: it did not agree to h2, or does not
// offer extended CONNECT. Dial again without HTTP2 to use HTTP/1.1.
var ErrNoHTTP2 = errors.New("websocket: no WebSocket over HTTP/2 here")

// maxErrorBody is how much of a refusal's body a HandshakeError keeps.
const maxErrorBody = 1 << 10

// Dial opens a WebSocket connection to url (ws://, wss://; http:// and
// https:// too) and returns the Conn, the same type Handler gives Serve,
// and the server's answer, also when it refused (a *HandshakeError then).
// ctx bounds the handshake only: once Dial returns, ctx no longer matters.
// A ctx that ends first closes the socket and Dial returns ctx's error.
//
// The client's frames are masked as RFC 6455 wants, each with a fresh key,
// without changing the caller's buffers. Redirects (301, 302, 303, 307,
// 308) are followed up to 10 times, to ws(s):// or http(s):// Locations.
// A URL's user info (ws://user:pass@host/) is sent as Basic credentials,
// unless opts.Header has an Authorization field. After the closing
// handshake the client waits for the server to close TCP first, as RFC
// 6455 asks, up to CloseTimeout (at most a second).
//
// Built for GOOS=js, Dial uses the browser's WebSocket: see the package
// documentation's "In the browser" for what works there and what returns
// errors.ErrUnsupported.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	return dial(ctx, url, opts)
}

func dialURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("websocket: cannot dial %q: the scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("websocket: cannot dial %q: no host", rawURL)
	}
	u.Fragment = ""
	return u, nil
}

// httpURL is u with the scheme of HTTP, which cookies and proxies know.
func httpURL(u *url.URL) *url.URL {
	h := *u
	h.Scheme = "http"
	if u.Scheme == "wss" {
		h.Scheme = "https"
	}
	return &h
}

// clientRequest is a handshake request and what its answer must match.
type clientRequest struct {
	dialect     Dialect
	host        string // the Host field
	resource    string // the request target
	location    string // the URL asked for, as the hixie answers echo it
	origin      string
	protocols   []string
	compression *CompressionOptions // offered when set

	key        string // Sec-WebSocket-Key
	key1, key2 string // hixie-76's keys, their numbers, and key3
	n1, n2     uint32
	key3       [8]byte
}

// reservedFields are the fields of a request that Dial sets itself.
var reservedFields = []string{"Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Key1", "Sec-Websocket-Key2",
	"Sec-Websocket-Version", headerProtocol, headerExtensions, headerOrigin8, "Websocket-Protocol"}

// newRequest makes the handshake request for u.
func (o *DialOptions) newRequest(u *url.URL) (*clientRequest, error) {
	for _, name := range reservedFields {
		if _, ok := o.Header[name]; ok {
			return nil, fmt.Errorf("websocket: DialOptions.Header may not set %s", name)
		}
	}
	r := &clientRequest{
		dialect:     o.Dialect,
		host:        cmpOr(o.Host, u.Host),
		resource:    u.RequestURI(),
		origin:      o.Header.Get("Origin"),
		protocols:   o.Subprotocols,
		compression: o.Compression,
	}
	r.location = u.Scheme + "://" + r.host + r.resource
	switch r.dialect {
	case 0:
		r.dialect = RFC6455
		fallthrough
	case RFC6455, Hybi08, Hybi07:
		r.key = newHybiKey()
	case Hixie76:
		r.key1, r.n1 = newHixieKey()
		r.key2, r.n2 = newHixieKey()
		crand.Read(r.key3[:])
		fallthrough
	case Hixie75:
		r.compression = nil
		if len(r.protocols) > 1 {
			return nil, fmt.Errorf("websocket: %s offers one subprotocol, not %d", r.dialect, len(r.protocols))
		}
	default:
		return nil, fmt.Errorf("websocket: cannot dial %s", r.dialect)
	}
	return r, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// encode is the request on the wire: the dialect's fields, the caller's,
// the cookies of jar for u, and hixie-76's key3.
func (r *clientRequest) encode(header http.Header, jar http.CookieJar, u *url.URL) []byte {
	var b []byte
	if r.dialect.hybi() {
		b = appendHybiRequest(b, r)
	} else {
		b = appendHixieRequest(b, r)
	}
	var buf bytes.Buffer
	header.WriteSubset(&buf, map[string]bool{"Origin": true, "Cookie": true})
	b = append(b, buf.Bytes()...)
	cookie, auth := credentials(header, jar, u)
	if cookie != "" {
		b = append(b, "Cookie: "+cookie+"\r\n"...)
	}
	if auth != "" {
		b = append(b, "Authorization: "+auth+"\r\n"...)
	}
	b = append(b, "\r\n"...)
	if r.dialect == Hixie76 {
		b = append(b, r.key3[:]...)
	}
	return b
}

// credentials are the Cookie field of a handshake to u (header's cookies,
// then jar's) and its Authorization from u's user info, unless header has
// one: "" for none.
func credentials(header http.Header, jar http.CookieJar, u *url.URL) (cookie, auth string) {
	cookies := header.Values("Cookie")
	if jar != nil {
		for _, c := range jar.Cookies(httpURL(u)) {
			cookies = append(cookies, c.String())
		}
	}
	if u.User != nil && header.Get("Authorization") == "" {
		auth = basicAuth(u.User)
	}
	return strings.Join(cookies, "; "), auth
}

// dialOnce makes one handshake with u: it returns the Conn, or the next
// URL of a redirect, or the error.
func (o *DialOptions) dialOnce(ctx context.Context, u *url.URL) (c *Conn, resp *http.Response, next *url.URL, err error) {
	req, err := o.newRequest(u)
	if err != nil {
		return nil, nil, nil, err
	}
	netConn, err := o.connect(ctx, u, o.HTTP2)
	if err != nil {
		return nil, nil, nil, err
	}
	// An ending ctx closes the socket, which ends whatever waits on it.
	stop := context.AfterFunc(ctx, func() { netConn.Close() })
	defer func() {
		if resp != nil && o.Jar != nil { // an answer's cookies, even a refusal's
			o.Jar.SetCookies(httpURL(u), resp.Cookies())
		}
		if !stop() && err == nil { // too late: ctx closed the socket
			c.CloseNow()
			c, err = nil, ctx.Err()
		}
		if err != nil {
			netConn.Close()
			if ctx.Err() != nil {
				err, next = fmt.Errorf("websocket: dial %s: %w", u.Redacted(), ctx.Err()), nil
			}
		}
	}()
	if o.HTTP2 {
		c, resp, err = o.openStream(netConn, u, req)
		if err != nil && resp != nil {
			next = redirect(resp, u)
		}
		return c, resp, next, err
	}
	if _, err := netConn.Write(req.encode(o.Header, o.Jar, u)); err != nil {
		return nil, nil, nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	br := bufio.NewReader(netConn)
	resp, hs, err := req.readAnswer(br, u)
	if err != nil {
		if resp != nil {
			next = redirect(resp, u)
		}
		return nil, resp, next, err
	}
	// What the server sent after its answer (a first message) is buffered.
	buffered, _ := br.Peek(br.Buffered())
	return openConn(netConn, buffered, hs, o.connConfig(), true), resp, nil, nil
}

// readAnswer reads the server's answer to r from br and verifies it. It
// returns the answer and the handshake agreed, or the error: a
// *HandshakeError for an answer read (resp then set).
func (r *clientRequest) readAnswer(br *bufio.Reader, u *url.URL) (*http.Response, *handshake, error) {
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: httpURL(u)})
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial %s: reading the answer: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return resp, nil, refused(resp)
	}
	hs, problem := r.verify(resp, br)
	if problem != "" {
		return resp, nil, &HandshakeError{Status: resp.StatusCode, Header: resp.Header, Reason: problem}
	}
	resp.Body = http.NoBody
	return resp, hs, nil
}

// verify checks a 101 answer to r, reading hixie-76's challenge from br.
func (r *clientRequest) verify(resp *http.Response, br *bufio.Reader) (*handshake, string) {
	if r.dialect.hybi() {
		return checkHybiAnswer(resp, r)
	}
	hs, problem := checkHixieAnswer(resp, r)
	if problem != "" || r.dialect == Hixie75 {
		return hs, problem
	}
	var answer [16]byte
	if _, err := io.ReadFull(br, answer[:]); err != nil {
		return nil, "the answer ends before its 16-byte challenge: " + err.Error()
	}
	if answer != hixieChallenge(r.n1, r.n2, r.key3) {
		return nil, "the challenge answered is not MD5 of the keys sent"
	}
	return hs, ""
}

// refused is the error of an answer other than 101, with the start of
// its body, which it leaves in resp.Body for the caller too.
func refused(resp *http.Response) *HandshakeError {
	// Not resp.Body.Close, which would read the rest: the socket closes.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body = io.NopCloser(bytes.NewReader(body))
	e := &HandshakeError{Status: resp.StatusCode, Header: resp.Header, Body: body, Reason: "the server did not switch protocols"}
	if resp.StatusCode == http.StatusUpgradeRequired {
		e.Reason = "the server speaks Sec-WebSocket-Version " + strings.Join(resp.Header.Values("Sec-Websocket-Version"), ", ")
	}
	return e
}

// redirect is the URL a redirect answer sends to, or nil.
func redirect(resp *http.Response, u *url.URL) *url.URL {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil
	}
	loc, err := httpURL(u).Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return nil
	}
	next, err := dialURL(loc.String())
	if err != nil {
		return nil
	}
	return next
}

// connect opens the connection to u's server, through the proxy if any,
// with TLS for wss: agreeing to HTTP/2 by ALPN if h2, else HTTP/1.1.
func (o *DialOptions) connect(ctx context.Context, u *url.URL, h2 bool) (net.Conn, error) {
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "wss" {
			port = "443"
		}
	}
	addr := net.JoinHostPort(u.Hostname(), port)
	dial := o.NetDialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	proxy := o.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	proxyURL, err := proxy(&http.Request{Method: http.MethodGet, URL: httpURL(u), Header: o.Header})
	if err != nil {
		return nil, fmt.Errorf("websocket: dial %s: proxy: %w", u.Redacted(), err)
	}
	var netConn net.Conn
	if proxyURL != nil {
		netConn, err = dialProxy(ctx, proxyURL, addr, dial, o.TLSConfig)
	} else {
		netConn, err = dial(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	if u.Scheme != "wss" {
		return netConn, nil
	}
	cfg := &tls.Config{}
	if o.TLSConfig != nil {
		cfg = o.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	cfg.NextProtos = []string{"http/1.1"} // the upgrade is HTTP/1.1's
	if h2 {
		cfg.NextProtos = []string{"h2", "http/1.1"} // a server without h2 is then told apart from a failed handshake
	}
	tc := tls.Client(netConn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		netConn.Close()
		return nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	return tc, nil
}
