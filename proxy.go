package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// ErrProxyAuth is wrapped by the errors of a proxy that wants credentials
// it did not get or that it rejected: an HTTP proxy's 407 (or 401, which
// tinyproxy answers to wrong ones), a SOCKS5 proxy that accepts none of
// the offered methods or fails the username/password.
var ErrProxyAuth = errors.New("websocket: proxy authentication required or failed")

// ProxyError is an HTTP proxy's refusal to open a CONNECT tunnel: its
// answer had a status other than 2xx.
type ProxyError struct {
	Status int
	Header http.Header
	// Body holds the first bytes of the answer's body (at most 512), which
	// often say why.
	Body []byte
}

func (e *ProxyError) Error() string {
	msg := "websocket: proxy refused the tunnel: " + strconv.Itoa(e.Status)
	if text := http.StatusText(e.Status); text != "" {
		msg += " " + text
	}
	if e.isAuth() {
		msg += " (proxy credentials missing or wrong)"
	}
	return msg
}

// Unwrap gives ErrProxyAuth for a 407 or 401, so that errors.Is finds it
// whatever the proxy's kind.
func (e *ProxyError) Unwrap() error {
	if e.isAuth() {
		return ErrProxyAuth
	}
	return nil
}

// isAuth tells a refusal for credentials. A 401 to CONNECT comes from the
// proxy too, as the target is not reached before a 2xx.
func (e *ProxyError) isAuth() bool {
	return e.Status == http.StatusProxyAuthRequired || e.Status == http.StatusUnauthorized
}

// SOCKSError is a SOCKS5 proxy's refusal of a CONNECT: the reply code of
// RFC 1928 section 6.
type SOCKSError struct {
	Reply byte
}

var socksReplies = [...]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

func (e *SOCKSError) Error() string {
	if int(e.Reply) < len(socksReplies) && socksReplies[e.Reply] != "" {
		return "websocket: socks5 proxy refused the connection: " + socksReplies[e.Reply]
	}
	return fmt.Sprintf("websocket: socks5 proxy refused the connection: reply code 0x%02x", e.Reply)
}

// A refusal's body is kept up to proxyBodyLimit bytes, as much as arrives
// within proxyBodyWait: it only explains, and a proxy may send no length
// and hold the connection open after it.
const (
	proxyBodyLimit = 512
	proxyBodyWait  = 250 * time.Millisecond
)

// dialProxy returns a connection to addr (host:port) tunnelled through proxy.
//
// Schemes: http (CONNECT), https (CONNECT inside TLS to the proxy), socks5
// (the name resolved here) and socks5h (the name resolved by the proxy).
// The proxy URL's user info is the credentials: Basic for HTTP,
// username/password (RFC 1929) for SOCKS5. dial opens the TCP connection
// to the proxy (nil: a plain net.Dialer); tlsConfig is the client's, whose
// roots and settings also verify an https proxy.
//
// ctx bounds the whole exchange, not only the dial: a proxy that accepts
// the connection and never answers must not hold the caller forever. On
// any failure the connection to the proxy is closed.
func dialProxy(ctx context.Context, proxy *url.URL, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConfig *tls.Config) (net.Conn, error) {
	if proxy == nil {
		return nil, errors.New("websocket: proxy: no proxy URL")
	}
	var defaultPort string
	switch proxy.Scheme {
	case "http":
		defaultPort = "80"
	case "https":
		defaultPort = "443"
	case "socks5", "socks5h":
		defaultPort = "1080"
	default:
		return nil, fmt.Errorf("websocket: proxy: unsupported scheme %q (want http, https, socks5 or socks5h)", proxy.Scheme)
	}
	host := proxy.Hostname()
	if host == "" {
		return nil, errors.New("websocket: proxy: URL has no host")
	}
	port := proxy.Port()
	if port == "" {
		port = defaultPort
	}
	proxyAddr := net.JoinHostPort(host, port)
	targetHost, targetPort, err := splitTarget(addr)
	if err != nil {
		return nil, err
	}
	// Errors name the proxy by scheme and address: never the URL, whose
	// user info may hold a password.
	prefix := "websocket: proxy " + proxy.Scheme + "://" + proxyAddr + ": "

	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, fmt.Errorf("%s%w", prefix, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// Closing the socket is what unblocks a read or write in progress when
	// ctx is cancelled without a deadline.
	stop := context.AfterFunc(ctx, func() { conn.Close() })

	tunnel, err := proxyHandshake(ctx, conn, proxy, host, targetHost, targetPort, tlsConfig)
	if err == nil && !stop() {
		err = ctx.Err() // ctx ended as the handshake did: conn is closed
	}
	if err != nil {
		stop()
		conn.Close()
		switch err.(type) {
		case *ProxyError, *SOCKSError:
			return nil, err // the proxy's own word, complete as it is
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			// The failure is the closed socket or the expired deadline:
			// say what closed it.
			err = ctxErr
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			// The deadline set from ctx expired a moment before ctx did.
			err = context.DeadlineExceeded
		}
		return nil, fmt.Errorf("%s%w", prefix, err)
	}
	tunnel.SetDeadline(time.Time{})
	return tunnel, nil
}

// splitTarget checks the address to tunnel to before any byte is sent: a
// host and a numeric port, and nothing that could end a line or a field
// of the CONNECT request (req.Write would only blank a bad Host field,
// and the request line carries addr too).
func splitTarget(addr string) (host string, port uint16, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("websocket: proxy: bad target address: %w", err)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || host == "" || strings.ContainsFunc(addr, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return "", 0, fmt.Errorf("websocket: proxy: bad target address %q: want host:port", addr)
	}
	return host, uint16(p), nil
}

// proxyHandshake opens the tunnel to host:port over conn, the connection
// to the proxy. It returns the connection to use, which may wrap conn;
// conn is closed by the caller on error.
func proxyHandshake(ctx context.Context, conn net.Conn, proxy *url.URL, proxyHost, host string, port uint16, tlsConfig *tls.Config) (net.Conn, error) {
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proxy.Scheme {
	case "https":
		// Like net/http: the client's TLS settings, but the proxy's name
		// and no ALPN, as the proxy speaks HTTP/1.1 CONNECT whatever the
		// target speaks.
		cfg := tlsConfig.Clone()
		if cfg == nil {
			cfg = &tls.Config{}
		}
		cfg.ServerName = proxyHost
		cfg.NextProtos = nil
		tlsConn := tls.Client(conn, cfg)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		return httpConnect(ctx, tlsConn, proxy.User, addr)
	case "socks5", "socks5h":
		return conn, socks5Connect(ctx, conn, proxy.User, host, port, proxy.Scheme == "socks5h")
	}
	return httpConnect(ctx, conn, proxy.User, addr)
}

// basicAuth is the value of an Authorization field carrying user's name
// and password (RFC 7617).
func basicAuth(user *url.Userinfo) string {
	pass, _ := user.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user.Username()+":"+pass))
}

// httpConnect asks an HTTP proxy for a tunnel to addr with CONNECT.
func httpConnect(ctx context.Context, conn net.Conn, user *url.Userinfo, addr string) (net.Conn, error) {
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: addr},
		Host:   addr,
		Header: make(http.Header),
	}
	if user != nil {
		req.Header.Set("Proxy-Authorization", basicAuth(user))
	}
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("reading the answer to CONNECT: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		deadline := time.Now().Add(proxyBodyWait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		body, _ := io.ReadAll(io.LimitReader(resp.Body, proxyBodyLimit))
		return nil, &ProxyError{Status: resp.StatusCode, Header: resp.Header, Body: body}
	}
	// The proxy may have sent the server's first bytes right behind its
	// answer, and they sit in br. Without them, hand back conn itself: the
	// Conn reads a bare *net.TCPConn with raw socket I/O.
	if n := br.Buffered(); n > 0 {
		early, _ := br.Peek(n)
		return &prefixConn{Conn: conn, prefix: append([]byte(nil), early...)}, nil
	}
	return conn, nil
}

// prefixConn is a connection whose first reads return bytes that were
// read from it before.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// SOCKS5 constants of RFC 1928 and RFC 1929.
const (
	socks5Version      = 5
	socks5NoAuth       = 0x00
	socks5UserPass     = 0x02
	socks5NoAcceptable = 0xff
	socks5CmdConnect   = 1
	socks5IPv4         = 1
	socks5Domain       = 3
	socks5IPv6         = 4
	socksUserPassVer   = 1
)

// socks5Connect asks a SOCKS5 proxy for a connection to host:port. With
// remote (socks5h) a name goes to the proxy as it is; otherwise it is
// resolved here and the proxy gets an address. Reads take exactly the
// reply's bytes, so what follows it stays in conn.
func socks5Connect(ctx context.Context, conn net.Conn, user *url.Userinfo, host string, port uint16, remote bool) error {
	// The messages are built before anything is sent, so bad credentials
	// or a bad address fail without a word to the proxy.
	methods := []byte{socks5Version, 1, socks5NoAuth}
	var auth []byte
	if user != nil {
		methods = []byte{socks5Version, 2, socks5NoAuth, socks5UserPass}
		name := user.Username()
		pass, _ := user.Password()
		if len(name) == 0 || len(name) > 255 || len(pass) > 255 {
			return errors.New("SOCKS5 username must be 1 to 255 bytes, the password at most 255")
		}
		// RFC 1929: version 1, then the name and the password, each
		// after its length.
		auth = append(auth, socksUserPassVer, byte(len(name)))
		auth = append(auth, name...)
		auth = append(auth, byte(len(pass)))
		auth = append(auth, pass...)
	}
	req := []byte{socks5Version, socks5CmdConnect, 0}
	ip, err := netip.ParseAddr(host)
	switch {
	case err == nil:
		req = appendSOCKSAddr(req, ip.Unmap())
	case remote:
		if len(host) > 255 {
			return fmt.Errorf("host name of %d bytes: SOCKS5 carries at most 255", len(host))
		}
		req = append(req, socks5Domain, byte(len(host)))
		req = append(req, host...)
	default:
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return err
		}
		if len(ips) == 0 {
			return fmt.Errorf("lookup %s: no address", host)
		}
		req = appendSOCKSAddr(req, ips[0].Unmap())
	}
	req = binary.BigEndian.AppendUint16(req, port)

	if _, err := conn.Write(methods); err != nil {
		return err
	}
	var b [255 + 2]byte // the largest part of a reply: a name and a port
	if _, err := io.ReadFull(conn, b[:2]); err != nil {
		return fmt.Errorf("reading the method choice: %w", err)
	}
	if b[0] != socks5Version {
		return fmt.Errorf("not a SOCKS5 proxy: version %d in its answer", b[0])
	}
	switch b[1] {
	case socks5NoAuth:
	case socks5UserPass:
		if auth == nil {
			return errors.New("proxy chose username/password authentication, which was not offered")
		}
		if _, err := conn.Write(auth); err != nil {
			return err
		}
		if _, err := io.ReadFull(conn, b[:2]); err != nil {
			return fmt.Errorf("reading the authentication status: %w", err)
		}
		if b[1] != 0 {
			return fmt.Errorf("username/password rejected (status %d): %w", b[1], ErrProxyAuth)
		}
	case socks5NoAcceptable:
		return fmt.Errorf("accepts none of the offered authentication methods: %w", ErrProxyAuth)
	default:
		return fmt.Errorf("proxy chose authentication method 0x%02x, which was not offered", b[1])
	}

	if _, err := conn.Write(req); err != nil {
		return err
	}
	if _, err := io.ReadFull(conn, b[:4]); err != nil {
		return fmt.Errorf("reading the reply to CONNECT: %w", err)
	}
	if b[0] != socks5Version {
		return fmt.Errorf("version %d in the reply to CONNECT", b[0])
	}
	if b[1] != 0 {
		return &SOCKSError{Reply: b[1]}
	}
	var rest int // the bound address and port, which a client does not need
	switch b[3] {
	case socks5IPv4:
		rest = 4 + 2
	case socks5IPv6:
		rest = 16 + 2
	case socks5Domain:
		if _, err := io.ReadFull(conn, b[:1]); err != nil {
			return fmt.Errorf("reading the reply to CONNECT: %w", err)
		}
		rest = int(b[0]) + 2
	default:
		return fmt.Errorf("address type 0x%02x in the reply to CONNECT", b[3])
	}
	if _, err := io.ReadFull(conn, b[:rest]); err != nil {
		return fmt.Errorf("reading the reply to CONNECT: %w", err)
	}
	return nil
}

func appendSOCKSAddr(b []byte, ip netip.Addr) []byte {
	if ip.Is4() {
		b = append(b, socks5IPv4)
	} else {
		b = append(b, socks5IPv6)
	}
	return append(b, ip.AsSlice()...)
}
