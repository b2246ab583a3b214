package websocket

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// ListenAndServe listens on the TCP address addr and serves h there
// (Serve).
func ListenAndServe(addr string, h *Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ln, h)
}

// Serve accepts connections on ln and answers their handshakes with h
// itself, without net/http's server, in buffers it reuses: net/http's
// hijack leaves two 4 KiB buffers behind per handshake, which a server
// holding many idle connections on the event engine pays for in memory
// (its heap grows to twice what stays live between collections). Each
// connection carries one request: a request that is not a WebSocket
// handshake gets h's refusal, or h.Fallback's answer, and the connection
// closes after it. It speaks HTTP/1.x only: serve HTTP/2 (RFC 8441),
// keep-alive and other traffic with net/http's server and h as its
// handler.
//
// Serve returns ln's Accept error, or ErrShutdown once h.Shutdown has
// closed ln.
func Serve(ln net.Listener, h *Handler) error {
	if !h.addListener(ln) {
		ln.Close()
		return ErrShutdown
	}
	defer h.removeListener(ln)
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if h.isShuttingDown() {
				return ErrShutdown
			}
			if isTimeout(err) || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of descriptors: wait, then go on, as net/http's server does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		go h.serveConn(conn)
	}
}

// maxHeaderBytes bounds a request's line and headers, as
// http.DefaultMaxHeaderBytes does net/http's.
const maxHeaderBytes = http.DefaultMaxHeaderBytes

// serveConn reads conn's request within HandshakeTimeout and serves it.
func (h *Handler) serveConn(conn net.Conn) {
	w := responses.Get().(*response)
	w.conn = conn
	w.limit.R, w.limit.N = conn, maxHeaderBytes
	w.br.Reset(&w.limit)
	w.bw.Reset(conn)
	defer w.release()
	conn.SetDeadline(time.Now().Add(orDefault(h.HandshakeTimeout, DefaultHandshakeTimeout)))
	r, err := h.readRequest(w)
	if err != nil {
		status := http.StatusBadRequest
		if w.limit.N <= 0 {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		if errors.Is(err, io.EOF) || isTimeout(err) {
			conn.Close()
			return
		}
		io.WriteString(conn, "HTTP/1.1 "+strconv.Itoa(status)+" "+http.StatusText(status)+"\r\nConnection: close\r\n\r\n")
		w.lingerClose()
		return
	}
	w.limit.N = 1 << 62 // what follows the headers: hixie-76's key3, a body
	w.req = r
	h.ServeHTTP(w, r)
	if !w.hijacked {
		w.WriteHeader(http.StatusOK)
		w.bw.Flush()
		w.lingerClose()
	}
}

// readRequest reads the request, with what net/http's server would have
// set of it.
func (h *Handler) readRequest(w *response) (*http.Request, error) {
	var state *tls.ConnectionState
	if tc, ok := w.conn.(*tls.Conn); ok {
		if err := tc.Handshake(); err != nil {
			return nil, io.EOF // nothing to answer in plain HTTP
		}
		s := tc.ConnectionState()
		state = &s
	}
	r, err := http.ReadRequest(w.br)
	if err != nil {
		return nil, err
	}
	r.RemoteAddr, r.TLS = w.conn.RemoteAddr().String(), state
	return r, nil
}

// response is Serve's http.ResponseWriter: its headers, status line and
// body go out as written, followed by the connection's close.
type response struct {
	conn     net.Conn
	limit    io.LimitedReader
	br       *bufio.Reader
	bw       *bufio.Writer
	req      *http.Request
	header   http.Header
	status   int
	hijacked bool
}

var responses = sync.Pool{New: func() any {
	return &response{br: bufio.NewReaderSize(nil, 4<<10), bw: bufio.NewWriterSize(nil, 4<<10)}
}}

func (w *response) release() {
	w.br.Reset(nil)
	w.bw.Reset(nil)
	*w = response{br: w.br, bw: w.bw}
	responses.Put(w)
}

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

func (w *response) WriteHeader(status int) {
	if w.status != 0 || w.hijacked {
		return
	}
	w.status = status
	w.bw.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	w.header.Del("Connection")
	w.header.Write(w.bw)
	w.bw.WriteString("Connection: close\r\n\r\n")
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	w.WriteHeader(http.StatusOK)
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	return w.bw.Write(p)
}

// Flush sends what is buffered (http.Flusher).
func (w *response) Flush() {
	if !w.hijacked {
		w.WriteHeader(http.StatusOK)
		w.bw.Flush()
	}
}

// Hijack gives the handshake the connection (http.Hijacker): the buffers
// stay Serve's, which takes them back once the handshake is answered.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked || w.status != 0 {
		return nil, nil, http.ErrHijacked
	}
	w.hijacked = true
	w.conn.SetDeadline(time.Time{})
	return w.conn, bufio.NewReadWriter(w.br, w.bw), nil
}

// lingerClose closes the connection once the client has had the chance
// to read the response: closing with input unread makes the kernel send a
// reset, which can destroy the response before the client reads it. As
// Conn.lingerClose does, it ends the sending side, then discards what the
// client sends for a bounded time and amount.
func (w *response) lingerClose() {
	if cw, ok := w.conn.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		w.conn.SetReadDeadline(time.Now().Add(lingerTime))
		w.limit.N = lingerBytes
		io.Copy(io.Discard, w.br)
	}
	w.conn.Close()
}

// Serve's listeners, which Shutdown closes.

func (h *Handler) addListener(ln net.Listener) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shuttingDown {
		return false
	}
	if h.listeners == nil {
		h.listeners = make(map[net.Listener]struct{})
	}
	h.listeners[ln] = struct{}{}
	return true
}

func (h *Handler) removeListener(ln net.Listener) {
	h.mu.Lock()
	delete(h.listeners, ln)
	h.mu.Unlock()
}

func (h *Handler) isShuttingDown() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.shuttingDown
}
