package websocket

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// openStream makes the RFC 8441 handshake of r on netConn, a TLS
// connection that agreed to h2: an extended CONNECT sent by net/http's
// HTTP/2 client, whose request body is what the Conn writes and whose
// response body is what it reads.
func (o *DialOptions) openStream(netConn net.Conn, u *url.URL, r *clientRequest) (*Conn, *http.Response, error) {
	tc, ok := netConn.(*tls.Conn)
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("websocket: dial %s: %w: over HTTP/2 the URL is wss://", u.Redacted(), ErrNoHTTP2)
	case tc.ConnectionState().NegotiatedProtocol != "h2":
		return nil, nil, fmt.Errorf("websocket: dial %s: %w: the server did not agree to h2", u.Redacted(), ErrNoHTTP2)
	}
	if r.dialect != RFC6455 {
		return nil, nil, fmt.Errorf("websocket: dial %s: over HTTP/2 the dialect is RFC 6455, not %s", u.Redacted(), r.dialect)
	}
	resp, s, err := sendConnect(tc, u, r.host, o.streamHeader(r, u))
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: dial %s: %w", u.Redacted(), err)
	}
	if resp.StatusCode != http.StatusOK {
		he := refused(resp)
		if resp.StatusCode != http.StatusUpgradeRequired {
			he.Reason = "the server did not accept the extended CONNECT"
		}
		return nil, resp, he
	}
	hs, problem := checkAgreed(resp, r)
	if problem != "" {
		s.Close()
		return nil, resp, &HandshakeError{Status: resp.StatusCode, Header: resp.Header, Reason: problem}
	}
	return openConn(s, nil, hs, o.connConfig(), true), resp, nil
}

// sendConnect sends an extended CONNECT for u with header (:protocol
// included) on tc, through net/http's HTTP/2 client, and returns the
// answer and, for a 200, the stream (the answer's Body is then NoBody);
// any other answer keeps its body, and tc is left to the caller.
func sendConnect(tc *tls.Conn, u *url.URL, host string, header http.Header) (*http.Response, *clientStream, error) {
	return connectOn(h2Client(tc, u.Host), tc, u, host, header)
}

// h2Client is net/http's HTTP/2 client on tc, for authority. It takes a
// connection through the function it registers in TLSNextProto, set up by
// the Transport's first use; its RoundTrip lets :protocol through, which
// http.Transport's refuses as a field name.
func h2Client(tc *tls.Conn, authority string) http.RoundTripper {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetHTTP2(true)
	tr.CloseIdleConnections()
	return tr.TLSNextProto["h2"](authority, tc)
}

// connectOn is sendConnect through rt, an HTTP/2 client on tc: a stream
// more on its connection.
func connectOn(rt http.RoundTripper, tc *tls.Conn, u *url.URL, host string, header http.Header) (*http.Response, *clientStream, error) {
	body, bodyWriter := io.Pipe()
	resp, err := rt.RoundTrip(&http.Request{
		Method:        http.MethodConnect,
		URL:           httpURL(u),
		Host:          host,
		Header:        header,
		Body:          body,
		ContentLength: -1,
	})
	if err != nil {
		bodyWriter.Close()
		if strings.Contains(err.Error(), "extended connect not supported") { // net/http's errExtendedConnectNotSupported
			err = fmt.Errorf("%w: the server does not offer extended CONNECT (a Go server needs GODEBUG=http2xconnect=1)", ErrNoHTTP2)
		}
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		bodyWriter.Close()
		return resp, nil, nil
	}
	s := &clientStream{tc: tc, body: resp.Body, w: bodyWriter}
	s.wb.abort = func() { bodyWriter.CloseWithError(os.ErrDeadlineExceeded) }
	resp.Body = http.NoBody
	return resp, s, nil
}

// streamHeader is the fields of r's extended CONNECT: RFC 6455's, less
// Upgrade, Connection and the key, with the caller's, the jar's cookies and
// the URL's credentials.
func (o *DialOptions) streamHeader(r *clientRequest, u *url.URL) http.Header {
	h := o.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h[headerPseudoProtocol] = []string{"websocket"}
	h.Set(headerVersion, "13")
	if len(r.protocols) > 0 {
		h.Set(headerProtocol, strings.Join(r.protocols, ", "))
	}
	if r.compression != nil {
		h.Set(headerExtensions, deflateOffer(r.compression))
	}
	h.Del("Cookie")
	cookie, auth := credentials(o.Header, o.Jar, u)
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return h
}

// clientStream is the client's HTTP/2 stream as the net.Conn of a Conn:
// it writes into the request's body, which net/http's client sends as
// DATA frames, and reads the response's. The TLS connection under it is
// its own, closed with it.
type clientStream struct {
	tc     *tls.Conn
	body   io.ReadCloser
	w      *io.PipeWriter
	closed atomic.Bool
	wb     bound // its abort ends the request's body, and so the stream
}

func (s *clientStream) Read(p []byte) (int, error) {
	n, err := s.body.Read(p)
	if err != nil && s.closed.Load() {
		err = net.ErrClosed
	}
	return n, err
}

// Write returns once net/http's client has taken p to send.
func (s *clientStream) Write(p []byte) (int, error) {
	if err := s.wb.begin(&s.closed); err != nil {
		return 0, err
	}
	defer s.wb.end()
	n, err := s.w.Write(p)
	if err != nil {
		err = s.wb.why(err, &s.closed)
	}
	return n, err
}

// Close ends the stream and the connection under it.
func (s *clientStream) Close() error {
	if s.closed.Swap(true) {
		return net.ErrClosed
	}
	s.wb.stop()
	s.w.Close()
	s.body.Close()
	return s.tc.Close()
}

func (s *clientStream) LocalAddr() net.Addr  { return s.tc.LocalAddr() }
func (s *clientStream) RemoteAddr() net.Addr { return s.tc.RemoteAddr() }

func (s *clientStream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline bounds reads through the connection's: one that passes
// ends the connection, and so the stream.
func (s *clientStream) SetReadDeadline(t time.Time) error { return s.tc.SetReadDeadline(t) }

func (s *clientStream) SetWriteDeadline(t time.Time) error { return s.wb.set(t) }
