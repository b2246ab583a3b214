package websocket

import (
	"context"
	"time"
)

// Tick writes message(t) to c as a text message every interval, the classic
// demo's push of the server's time, until c closes, ctx ends or a write
// fails; it returns why it stopped (ErrClosed once c has closed). A nil
// message sends the server's date and time.
func Tick(ctx context.Context, c *Conn, interval time.Duration, message func(time.Time) string) error {
	return tick(ctx, c.Context().Done(), interval, message, c.WriteText)
}

// tick sends message(t) every interval until ctx ends, closed is closed
// (ErrClosed) or send fails.
func tick(ctx context.Context, closed <-chan struct{}, interval time.Duration, message func(time.Time) string, send func(string) error) error {
	if message == nil {
		message = ServerTime
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	pushed := make(chan push, 1)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-closed:
			return ErrClosed
		case now := <-t.C:
			// Formatted and written on a goroutine that ends with the push:
			// this one, which waits nearly all the time, keeps the smallest
			// stack instead of the larger one formatting and writing grow.
			go func() {
				defer func() {
					if p := recover(); p != nil {
						pushed <- push{panicked: p}
					}
				}()
				pushed <- push{err: send(message(now))}
			}()
			p := <-pushed
			if p.panicked != nil {
				panic(p.panicked) // message's panic, where Tick was called
			}
			if p.err != nil {
				return p.err
			}
		}
	}
}

// push is how one push of tick ended: with an error, or a panic's value
// (never nil: a nil panic recovers as *runtime.PanicNilError).
type push struct {
	err      error
	panicked any
}

// ServerTime formats t as the time push of the classic demo does:
// "Time at the server: Tue, 24 Nov 2026 05:16:33 UTC".
func ServerTime(t time.Time) string {
	return "Time at the server: " + t.Format(time.RFC1123)
}
