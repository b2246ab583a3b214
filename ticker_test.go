package websocket

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestTickPushesUntilClosed(t *testing.T) {
	tickErr := make(chan error, 1)
	srv, done := serveOne(t, nil, func(c *Conn) {
		go func() { tickErr <- Tick(context.Background(), c, 20*time.Millisecond, nil) }()
		c.ReadMessage()
	})
	for _, d := range []Dialect{Hixie76, RFC6455} {
		c := dialDialect(t, srv, d, "/")
		var last time.Time
		for i := range 3 {
			_, msg := c.readMessage(d)
			stamp, ok := strings.CutPrefix(string(msg), "Time at the server: ")
			at, err := time.Parse(time.RFC1123, stamp)
			if !ok || err != nil {
				t.Fatalf("push %d: %q (%v)", i, msg, err)
			}
			if d := time.Since(at); d < -time.Second || d > 5*time.Second {
				t.Fatalf("push %d: time %v is %v away from now", i, at, d)
			}
			if at.Before(last) {
				t.Fatalf("push %d went back in time", i)
			}
			last = at
		}
		if d == RFC6455 {
			c.write(clientFrame(true, 8, closePayload(1000, "")))
		} else {
			c.write([]byte{0xFF, 0x00})
		}
		select {
		case err := <-tickErr:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("Tick returned %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Tick did not stop when the connection closed")
		}
		waitDone(t, done)
		srv, done = serveOne(t, nil, func(c *Conn) {
			go func() { tickErr <- Tick(context.Background(), c, 20*time.Millisecond, nil) }()
			c.ReadMessage()
		})
	}
}

func TestTickStopsWithContext(t *testing.T) {
	tickErr := make(chan error, 1)
	srv, _ := serveOne(t, nil, func(c *Conn) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { tickErr <- Tick(ctx, c, 10*time.Millisecond, func(time.Time) string { return "tick" }) }()
		_, msg, _ := c.ReadMessage() // "stop"
		if string(msg) == "stop" {
			cancel()
		}
		c.ReadMessage()
	})
	c := dialDialect(t, srv, RFC6455, "/")
	if _, msg := c.readMessage(RFC6455); string(msg) != "tick" {
		t.Fatalf("custom message %q", msg)
	}
	c.writeText(RFC6455, "stop")
	select {
	case err := <-tickErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Tick returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Tick did not stop with its context")
	}
}

// A message function that panics panics in Tick's caller, as it would if
// Tick formatted on its own goroutine: called from Serve, the connection
// closes with 1011 and the server goes on.
func TestTickPanicReachesItsCaller(t *testing.T) {
	h := &Handler{Serve: func(c *Conn) {
		Tick(context.Background(), c, 10*time.Millisecond, func(time.Time) string { panic("boom") })
	}, Logger: slog.New(slog.DiscardHandler)}
	srv, _ := htServer(t, h)
	for range 2 {
		c := dialDialect(t, srv, RFC6455, "/")
		if code := htAnswerClose(t, c, RFC6455); code != StatusInternalError {
			t.Fatalf("closed with %v, want %v", code, StatusInternalError)
		}
	}
}
