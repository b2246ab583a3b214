package websocket

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// Pipe connects a client to h in memory, without a socket, and returns
// the client's end: h.Serve (or h.Events' callbacks) runs on the server's
// end, on a goroutine of its own, as for a connection ServeHTTP accepted
// (closed with 1000 when Serve returns, 1011 if it panics; counted in
// h.Stats, closed by h.Shutdown). So a test drives the Serve it tests as
// a client would.
//
// The two ends speak the protocol in full: opts.Dialect's framing (the
// client masks), fragmentation, control frames and the close handshake,
// the subprotocol h chooses among opts.Subprotocols, and permessage-deflate
// when both h.Compression and opts.Compression are set, agreed as over a
// socket. Each end takes its limits and timeouts from its side's options
// (h's, or opts'). There is no HTTP exchange: Origins, Location and the
// dialing options (Header aside) play no part. The server's Request is a
// GET of "/" with Host opts.Host (or "pipe") and the fields of opts.Header.
//
// Each direction buffers up to 4 MiB, about what a loopback TCP connection
// holds: a test may write several messages before it reads their echoes.
func Pipe(h *Handler, opts *DialOptions) (*Conn, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u := &url.URL{Scheme: "ws", Host: cmpOr(opts.Host, "pipe"), Path: "/"}
	creq, err := opts.newRequest(u)
	switch {
	case err != nil:
		return nil, err
	case h == nil || h.Serve == nil && h.Events == nil:
		return nil, errors.New("websocket: Pipe: Handler.Serve and Handler.Events are nil")
	case !h.begin():
		return nil, fmt.Errorf("websocket: Pipe: %w", ErrShutdown)
	}
	server, client := pipeHandshakes(h, creq)
	req := &http.Request{Method: http.MethodGet, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: opts.Header.Clone(), Host: u.Host, RemoteAddr: pipeAddr{}.String(), RequestURI: "/"}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	return openConn(h.servePipe(server, req), nil, client, opts.connConfig(), true), nil
}

// servePipe serves the server's end of a memory pipe, whose handshake
// agreed hs, as ServeHTTP serves a socket (begin was called), and
// returns the client's end.
func (h *Handler) servePipe(hs *handshake, req *http.Request) net.Conn {
	serverEnd, clientEnd := memPipe()
	c := openConn(serverEnd, nil, hs, h.connConfig(), false)
	c.req.Store(keptRequest(req))
	h.track(c)
	h.log(slog.LevelInfo, "connection open", req, slog.String("dialect", hs.dialect.String()), slog.String("subprotocol", hs.protocol))
	go h.serve(c)
	return clientEnd
}

// pipeHandshakes is what a handshake of creq with h agrees, as each side
// sees it: h chooses the subprotocol and answers the deflate offer, which
// the client checks as it would an answer read from a socket.
func pipeHandshakes(h *Handler, creq *clientRequest) (server, client *handshake) {
	server = &handshake{dialect: creq.dialect, offered: creq.protocols}
	var offers []string
	if creq.compression != nil { // nil for hixie (newRequest)
		offers = []string{deflateOffer(creq.compression)}
	}
	h.agreeOffers(server, offers)
	client = &handshake{dialect: creq.dialect, protocol: server.protocol}
	if server.deflate != nil {
		// The client's view, as it takes the answer (which never fails it).
		cp, problem := acceptDeflate([]string{server.extensions}, creq.compression)
		if problem == "" {
			client.deflate, client.extensions = &cp, server.extensions
		} else {
			server.deflate, server.extensions = nil, ""
		}
	}
	return server, client
}

// pipeBuffer is the size at which a direction of a memory pipe is full.
const pipeBuffer = 4 << 20

// memPipe returns the two ends of a connection in memory, which behave as
// TCP sockets do: each direction buffered, deadlines, CloseWrite, and
// Close, after which the peer reads what was sent, then io.EOF.
func memPipe() (a, b *memConn) {
	ab, ba := newMemStream(), newMemStream()
	return &memConn{in: ba, out: ab, closed: make(chan struct{})},
		&memConn{in: ab, out: ba, closed: make(chan struct{})}
}

// memStream is one direction of a memory pipe.
type memStream struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	eof      bool          // the writer's end is closed
	broken   bool          // the reader's end is closed: writes fail
	readable chan struct{} // signalled when data, eof or broken arrive
	writable chan struct{} // signalled when room frees or broken
}

func newMemStream() *memStream {
	return &memStream{readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

type memConn struct {
	in, out   *memStream
	rd, wd    deadline
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *memConn) Read(p []byte) (int, error) {
	for {
		s := c.in
		s.mu.Lock()
		switch {
		case s.broken:
			s.mu.Unlock()
			return 0, c.opError("read", net.ErrClosed)
		case s.buf.Len() > 0:
			n, _ := s.buf.Read(p)
			s.mu.Unlock()
			signal(s.writable)
			return n, nil
		case s.eof:
			s.mu.Unlock()
			return 0, io.EOF
		}
		s.mu.Unlock()
		select {
		case <-s.readable:
		case <-c.rd.expired():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case <-c.closed:
		}
	}
}

func (c *memConn) Write(p []byte) (int, error) {
	written := 0
	for {
		s := c.out
		s.mu.Lock()
		switch {
		case s.eof:
			s.mu.Unlock()
			return written, c.opError("write", net.ErrClosed)
		case s.broken:
			s.mu.Unlock()
			return written, c.opError("write", io.ErrClosedPipe)
		}
		if n := min(len(p)-written, pipeBuffer-s.buf.Len()); n > 0 {
			s.buf.Write(p[written : written+n])
			written += n
			signal(s.readable)
		}
		s.mu.Unlock()
		if written == len(p) {
			return written, nil
		}
		select {
		case <-s.writable:
		case <-c.wd.expired():
			return written, c.opError("write", os.ErrDeadlineExceeded)
		case <-c.closed:
		}
	}
}

// CloseWrite ends what c sends: the peer reads io.EOF once it has read it all.
func (c *memConn) CloseWrite() error {
	s := c.out
	s.mu.Lock()
	s.eof = true
	s.mu.Unlock()
	signal(s.readable)
	return nil
}

// Close closes both directions: the peer's writes fail, its reads return
// what c sent, then io.EOF.
func (c *memConn) Close() error {
	err := c.opError("close", net.ErrClosed)
	c.closeOnce.Do(func() {
		close(c.closed)
		c.CloseWrite()
		s := c.in
		s.mu.Lock()
		s.broken = true
		s.buf = bytes.Buffer{}
		s.mu.Unlock()
		signal(s.writable)
		err = nil
	})
	return err
}

func (c *memConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "pipe", Source: pipeAddr{}, Addr: pipeAddr{}, Err: err}
}

func (c *memConn) LocalAddr() net.Addr  { return pipeAddr{} }
func (c *memConn) RemoteAddr() net.Addr { return pipeAddr{} }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// pipeAddr is the address of either end of a Pipe.
type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
