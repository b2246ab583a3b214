package websocket

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a read returns when the server closed a connection whose peer
// went silent.
var (
	ErrPongTimeout = errors.New("websocket: peer did not answer a ping in time")
	ErrIdleTimeout = errors.New("websocket: peer was silent for longer than the idle timeout")
)

// keepalive watches a connection for a silent peer, with one timer and no
// goroutine: the timer notices whether frames arrived (heard) since it
// last fired.
type keepalive struct {
	c                     *Conn
	interval, pongTimeout time.Duration // RFC 6455 dialects only
	idle                  time.Duration
	heard                 atomic.Uint64 // frames received

	mu        sync.Mutex
	timer     keepaliveTimer
	seen      uint64    // heard when last looked at
	lastHeard time.Time // when a change of heard was noticed
	pingSent  time.Time // zero when no ping awaits its answer
}

// heardFrame counts a frame (or part of one) received, for keepalive.
func (c *Conn) heardFrame() {
	if k := c.keepalive; k != nil {
		k.heard.Add(1)
	}
}

// startKeepalive arms the timer if cfg asks for keepalive.
func startKeepalive(c *Conn, cfg connConfig) {
	pings := c.dialect.hybi() && cfg.pingInterval > 0
	if !pings && cfg.idleTimeout <= 0 {
		return
	}
	k := &keepalive{c: c, idle: cfg.idleTimeout, lastHeard: time.Now()}
	if pings {
		k.interval = cfg.pingInterval
		k.pongTimeout = orDefault(cfg.pongTimeout, cfg.pingInterval)
	}
	c.keepalive = k // before the timer can fire and read it
	k.mu.Lock()
	defer k.mu.Unlock()
	if ts, ok := c.br.conn.(timerSource); ok {
		k.timer = ts.afterFunc(k.next(0), k.fire)
	} else {
		k.timer = time.AfterFunc(k.next(0), k.fire)
	}
}

// keepaliveTimer is a *time.Timer, or a timer of the event engine's.
type keepaliveTimer interface {
	Reset(time.Duration) bool
	Stop() bool
}

// timerSource is a transport with timers of its own: the event engine's
// share its poller's wait, where a time.Timer each would cost a runtime
// timer per connection.
type timerSource interface {
	afterFunc(time.Duration, func()) keepaliveTimer
}

// minCheck keeps a misconfigured tiny interval from spinning.
const minCheck = 10 * time.Millisecond

// next is how long until something may be due, given how long the peer
// has been silent.
func (k *keepalive) next(silent time.Duration) time.Duration {
	d := time.Duration(1<<63 - 1)
	if k.idle > 0 {
		d = k.idle - silent
	}
	if k.interval > 0 {
		if k.pingSent.IsZero() {
			d = min(d, k.interval-silent)
		} else {
			d = min(d, k.pongTimeout-time.Since(k.pingSent))
		}
	}
	return max(d, minCheck)
}

func (k *keepalive) fire() {
	c := k.c
	k.mu.Lock()
	defer k.mu.Unlock()
	if c.closed.Load() {
		return
	}
	now := time.Now()
	if heard := k.heard.Load(); heard != k.seen {
		k.seen, k.lastHeard, k.pingSent = heard, now, time.Time{}
	}
	silent := now.Sub(k.lastHeard)
	switch {
	case k.idle > 0 && silent >= k.idle:
		go c.closeHandshake(ErrIdleTimeout)
		return
	case !k.pingSent.IsZero() && now.Sub(k.pingSent) >= k.pongTimeout:
		// A dead peer will not answer a close either.
		c.drop(ErrPongTimeout)
		return
	case k.interval > 0 && k.pingSent.IsZero() && silent >= k.interval:
		k.pingSent = now
		go c.writeControl(opPing, nil) // may block up to the write timeout
	}
	k.timer.Reset(k.next(silent))
}

func (k *keepalive) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.timer.Stop()
}
