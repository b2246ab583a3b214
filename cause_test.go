package websocket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Why a connection closed: one test per cause, over real sockets, each
// checking Conn.CloseCause, Stats.Closed (exactly one close, of the
// cause's kind) and the "connection closed" log line. Helpers are prefixed
// "cause".

// causeLog is a slog.Handler that records the message and attributes of
// each record. Handler logs through no With or WithGroup.
type causeLog struct {
	mu    sync.Mutex
	lines []causeLine
}

type causeLine struct {
	msg   string
	attrs map[string]string
}

func (l *causeLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *causeLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *causeLog) WithGroup(string) slog.Handler            { return l }

func (l *causeLog) Handle(_ context.Context, r slog.Record) error {
	line := causeLine{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	return nil
}

// find returns the attributes of the first line logged with msg, or nil.
func (l *causeLog) find(msg string) map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if line.msg == msg {
			return line.attrs
		}
	}
	return nil
}

// causeEnv is a server whose Handler logs to a causeLog and hands each
// Conn it serves to the test.
type causeEnv struct {
	h     *Handler
	srv   *httptest.Server
	log   *causeLog
	conns chan *Conn
}

// causeStart serves h (Serve nil: echo), cfg applied to the http.Server.
func causeStart(t *testing.T, h *Handler, cfg func(*http.Server)) *causeEnv {
	t.Helper()
	e := &causeEnv{h: h, log: &causeLog{}, conns: make(chan *Conn, 1)}
	serve := h.Serve
	if serve == nil {
		serve = echoMessages
	}
	h.Serve = func(c *Conn) {
		e.conns <- c
		serve(c)
	}
	h.Logger = slog.New(e.log)
	e.srv = hosStart(t, h, cfg, false)
	return e
}

// closed waits until the handler has logged the connection's close and
// returns the Conn and the attributes of that line.
func (e *causeEnv) closed(t *testing.T) (*Conn, map[string]string) {
	t.Helper()
	var c *Conn
	select {
	case c = <-e.conns:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve was not called")
	}
	var line map[string]string
	htPoll(t, "the connection closed line", func() bool {
		line = e.log.find("connection closed")
		return line != nil
	})
	return c, line
}

// check checks the counters (want: the one close, by its cause), and that
// the log line gives the cause's word, code (0: none), reason and error.
func (e *causeEnv) check(t *testing.T, c *Conn, line map[string]string, want Closes, word string, code StatusCode, reason string) {
	t.Helper()
	if got := e.h.Stats().Closed; got != want {
		t.Errorf("Stats().Closed %+v, want %+v", got, want)
	}
	wantLine := map[string]string{"cause": word, "error": c.CloseCause().Error()}
	if code != 0 {
		wantLine["code"] = strconv.Itoa(int(code))
	}
	if reason != "" {
		wantLine["reason"] = reason
	}
	for _, k := range []string{"cause", "code", "reason", "error"} {
		got, ok := line[k]
		if w, wok := wantLine[k]; got != w || ok != wok {
			t.Errorf("log line: %s=%q (present: %v), want %q (present: %v); line %v", k, got, ok, w, wok, line)
		}
	}
}

// causeTotal is the sum of c's counters.
func causeTotal(c Closes) uint64 {
	var n uint64
	v := reflect.ValueOf(c)
	for i := range v.NumField() {
		n += v.Field(i).Uint()
	}
	return n
}

// causeWantClose checks that cause is a *T (CloseError, ProtocolError or
// LocalCloseError) equal to want.
func causeWantClose[T comparable, P interface {
	*T
	error
}](t *testing.T, cause error, want T) {
	t.Helper()
	got, ok := cause.(P)
	if !ok {
		t.Fatalf("CloseCause %v (%T), want a %T: %+v", cause, cause, &want, want)
	}
	if *got != want {
		t.Errorf("CloseCause %+v, want %+v", *got, want)
	}
}

// The peer's close; context.Cause of Conn.Context is CloseCause, whether
// the context was made before the close (RFC 6455) or after (hixie-76).
func TestCausePeerClose(t *testing.T) {
	t.Run("RFC 6455", func(t *testing.T) {
		e := causeStart(t, &Handler{Serve: func(c *Conn) {
			c.Context()
			echoMessages(c)
		}}, nil)
		c := dialDialect(t, e.srv, RFC6455, "/")
		checkEcho(t, c, RFC6455, "x")
		c.write(clientFrame(true, 8, closePayload(4001, "bye")))
		if code := c.expectClose(); code != 4001 {
			t.Fatalf("the server answered with %v", code)
		}
		conn, line := e.closed(t)
		causeWantClose(t, conn.CloseCause(), CloseError{4001, "bye"})
		if cause := context.Cause(conn.Context()); cause != conn.CloseCause() {
			t.Errorf("context.Cause of Context: %v", cause)
		}
		e.check(t, conn, line, Closes{PeerClose: 1}, "peer_close", 4001, "bye")
	})
	t.Run("hixie-76", func(t *testing.T) {
		e := causeStart(t, &Handler{}, nil)
		c := dialDialect(t, e.srv, Hixie76, "/")
		checkEcho(t, c, Hixie76, "x")
		c.write([]byte{0xFF, 0x00})
		htExpectBytes(t, c, "\xff\x00")
		c.expectEOF()
		conn, line := e.closed(t)
		causeWantClose(t, conn.CloseCause(), CloseError{Code: StatusNoStatusRcvd})
		if cause := context.Cause(conn.Context()); cause != conn.CloseCause() {
			t.Errorf("context.Cause of Context: %v", cause)
		}
		e.check(t, conn, line, Closes{PeerClose: 1}, "peer_close", StatusNoStatusRcvd, "")
	})
}

func TestCauseDropped(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     Dialect
		reset bool
		under error // what the cause wraps besides ErrDropped
	}{
		{"TCP close", RFC6455, false, io.EOF},
		{"reset", RFC6455, true, syscall.ECONNRESET},
		{"hixie-75 hang-up", Hixie75, false, io.EOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := causeStart(t, &Handler{}, nil)
			c := dialDialect(t, e.srv, tc.d, "/")
			checkEcho(t, c, tc.d, "x") // the server waits for the next message
			if tc.reset {
				c.conn.(*net.TCPConn).SetLinger(0)
			}
			c.conn.Close()
			conn, line := e.closed(t)
			if cause := conn.CloseCause(); !errors.Is(cause, ErrDropped) || !errors.Is(cause, tc.under) {
				t.Fatalf("CloseCause %v, want ErrDropped wrapping %v", cause, tc.under)
			}
			e.check(t, conn, line, Closes{Dropped: 1}, "dropped", 0, "")
		})
	}
}

// causeFailed sends frame and checks that the server fails the connection
// with code, and that CloseCause is the *ProtocolError the read returned.
func causeFailed(t *testing.T, h *Handler, frame []byte, code StatusCode, reason string, want Closes, word string) {
	t.Helper()
	t.Parallel() // the server lingers up to a second after failing
	readErr := make(chan error, 1)
	h.Serve = func(c *Conn) {
		_, _, err := c.ReadMessage()
		readErr <- err
	}
	e := causeStart(t, h, nil)
	c := dialDialect(t, e.srv, RFC6455, "/")
	c.write(frame)
	if got := c.expectClose(); got != code {
		t.Fatalf("the server closed with %v, want %v", got, code)
	}
	conn, line := e.closed(t)
	causeWantClose(t, conn.CloseCause(), ProtocolError{code, reason})
	if err := <-readErr; err != conn.CloseCause() {
		t.Errorf("the read returned %v, not the cause", err)
	}
	e.check(t, conn, line, want, word, code, reason)
}

func TestCauseProtocolError(t *testing.T) {
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	causeFailed(t, &Handler{}, unmasked, StatusProtocolError, "unmasked client frame", Closes{ProtocolError: 1}, "protocol_error")
}

func TestCauseInvalidUTF8(t *testing.T) {
	frame := clientFrame(true, 1, []byte("ok\xff"))
	causeFailed(t, &Handler{}, frame, StatusInvalidPayload, "text message is not valid UTF-8", Closes{ProtocolError: 1}, "protocol_error")
}

func TestCauseReadLimit(t *testing.T) {
	frame := clientFrame(true, 2, make([]byte, 17))
	causeFailed(t, &Handler{ReadLimit: 16}, frame, StatusMessageTooBig, "message exceeds the read limit of 16 bytes", Closes{ReadLimit: 1}, "read_limit")
}

// A client that never reads: the write that times out returns
// ErrWriteTimeout and closes the connection at once, which ends the read
// in progress with ErrWriteTimeout too (the client sends nothing: without
// the close, the read would wait for ever).
func TestCauseWriteTimeout(t *testing.T) {
	type ended struct{ write, read error }
	done := make(chan ended, 1)
	h := &Handler{WriteTimeout: 200 * time.Millisecond, Serve: func(c *Conn) {
		writeErr := make(chan error, 1)
		go func() {
			msg := bytes.Repeat([]byte("w"), 64<<10)
			for {
				if err := c.WriteMessage(BinaryMessage, msg); err != nil {
					writeErr <- err
					return
				}
			}
		}()
		_, _, err := c.ReadMessage()
		done <- ended{<-writeErr, err}
	}}
	e := causeStart(t, h, hosSmallBuffers)
	c := dialDialect(t, e.srv, RFC6455, "/")
	c.conn.(*net.TCPConn).SetReadBuffer(8 << 10)
	conn, line := e.closed(t)
	end := <-done
	if !errors.Is(end.write, ErrWriteTimeout) || !errors.Is(end.write, os.ErrDeadlineExceeded) {
		t.Errorf("the write returned %v, want ErrWriteTimeout wrapping the deadline", end.write)
	}
	if !errors.Is(end.read, ErrWriteTimeout) {
		t.Errorf("the read returned %v, want ErrWriteTimeout", end.read)
	}
	if cause := conn.CloseCause(); cause != end.write {
		t.Errorf("CloseCause %v, want the write's error %v", cause, end.write)
	}
	e.check(t, conn, line, Closes{WriteTimeout: 1}, "write_timeout", 0, "")
}

// The idle close is the cause, though the client answers it with a close
// of its own, which ends the read.
func TestCauseIdleTimeout(t *testing.T) {
	e := causeStart(t, &Handler{IdleTimeout: 100 * time.Millisecond}, nil)
	c := dialDialect(t, e.srv, RFC6455, "/")
	if code := htAnswerClose(t, c, RFC6455); code != StatusGoingAway {
		t.Fatalf("the server closed with %v", code)
	}
	conn, line := e.closed(t)
	if cause := conn.CloseCause(); cause != ErrIdleTimeout {
		t.Fatalf("CloseCause %v, want ErrIdleTimeout", cause)
	}
	e.check(t, conn, line, Closes{IdleTimeout: 1}, "idle_timeout", StatusGoingAway, "idle timeout")
}

func TestCausePongTimeout(t *testing.T) {
	h := &Handler{PingInterval: 50 * time.Millisecond, PongTimeout: 100 * time.Millisecond}
	e := causeStart(t, h, nil)
	c := dialDialect(t, e.srv, RFC6455, "/")
	kaCheckPing(t, c.readFrame()) // and no pong
	hosExpectDrop(t, c.conn, c.br, 3*time.Second)
	conn, line := e.closed(t)
	if cause := conn.CloseCause(); cause != ErrPongTimeout {
		t.Fatalf("CloseCause %v, want ErrPongTimeout", cause)
	}
	e.check(t, conn, line, Closes{PongTimeout: 1}, "pong_timeout", 0, "")
}

func TestCauseSlowConsumer(t *testing.T) {
	g := &Group{QueueBytes: 64 << 10, StallTimeout: 50 * time.Millisecond}
	h := &Handler{Serve: func(c *Conn) {
		g.Add(c)
		c.ReadMessage()
	}}
	e := causeStart(t, h, hosSmallBuffers)
	c := dialDialect(t, e.srv, RFC6455, "/")
	c.conn.(*net.TCPConn).SetReadBuffer(8 << 10)
	waitLen(t, g, 1)
	msg := bytes.Repeat([]byte("s"), 64<<10)
	htPoll(t, "the member to be disconnected", func() bool {
		g.Broadcast(BinaryMessage, msg)
		return g.Stats().Disconnected == 1
	})
	conn, line := e.closed(t)
	if cause := conn.CloseCause(); cause != ErrSlowConsumer {
		t.Fatalf("CloseCause %v, want ErrSlowConsumer", cause)
	}
	e.check(t, conn, line, Closes{SlowConsumer: 1}, "slow_consumer", 0, "")
}

// A client that does not answer Shutdown's close: a read that no close of
// the peer's ended returns ErrShutdown, whether Serve was reading as the
// close went out or reads once the connection has closed (the close
// handshake then read, up to CloseTimeout).
func TestCauseShutdown(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(*Conn) error
	}{
		{"reading", func(c *Conn) error {
			_, _, err := c.ReadMessage()
			return err
		}},
		{"reading after the close", func(c *Conn) error {
			<-c.Context().Done()
			_, _, err := c.ReadMessage()
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			readErr := make(chan error, 1)
			h := &Handler{CloseTimeout: 200 * time.Millisecond, Serve: func(c *Conn) { readErr <- tc.serve(c) }}
			e := causeStart(t, h, nil)
			c := dialDialect(t, e.srv, RFC6455, "/")
			if err := h.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			f := c.readFrame()
			if f.op != 8 || string(f.payload) != string(closePayload(StatusGoingAway, "server shutting down")) {
				t.Fatalf("got opcode %d %q, want the 1001 close", f.op, f.payload)
			}
			c.expectEOF()
			conn, line := e.closed(t)
			if cause := conn.CloseCause(); cause != ErrShutdown {
				t.Fatalf("CloseCause %v, want ErrShutdown", cause)
			}
			if err := <-readErr; err != ErrShutdown {
				t.Errorf("the read returned %v, want ErrShutdown", err)
			}
			e.check(t, conn, line, Closes{Shutdown: 1}, "shutdown", StatusGoingAway, "server shutting down")
		})
	}
}

// The server's own close: Serve returning, Close, CloseNow.
func TestCauseServerClose(t *testing.T) {
	for _, tc := range []struct {
		name  string
		d     Dialect
		serve func(*Conn)
		want  LocalCloseError
	}{
		{"Serve returns", RFC6455, func(*Conn) {}, LocalCloseError{Code: StatusNormalClosure}},
		{"Serve returns, hixie-76", Hixie76, func(*Conn) {}, LocalCloseError{Code: StatusNormalClosure}},
		{"Close", RFC6455, func(c *Conn) { c.Close(4000, "done") }, LocalCloseError{Code: 4000, Reason: "done"}},
		{"CloseNow", RFC6455, func(c *Conn) { c.CloseNow() }, LocalCloseError{Code: StatusAbnormalClosure}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := causeStart(t, &Handler{Serve: tc.serve}, nil)
			c := dialDialect(t, e.srv, tc.d, "/")
			if tc.want.Code == StatusAbnormalClosure {
				c.expectEOF()
			} else if code := htAnswerClose(t, c, tc.d); tc.d.hybi() && code != tc.want.Code {
				t.Fatalf("the server closed with %v", code)
			}
			conn, line := e.closed(t)
			causeWantClose(t, conn.CloseCause(), tc.want)
			e.check(t, conn, line, Closes{ServerClose: 1}, "server_close", tc.want.Code, tc.want.Reason)
		})
	}
}

func TestCauseServePanic(t *testing.T) {
	e := causeStart(t, &Handler{Serve: func(*Conn) { panic("boom") }}, nil)
	c := dialDialect(t, e.srv, RFC6455, "/")
	if code := htAnswerClose(t, c, RFC6455); code != StatusInternalError {
		t.Fatalf("the server closed with %v", code)
	}
	conn, line := e.closed(t)
	causeWantClose(t, conn.CloseCause(), LocalCloseError{Code: StatusInternalError, Panic: "boom"})
	e.check(t, conn, line, Closes{Panic: 1}, "panic", StatusInternalError, "")
}
