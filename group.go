package websocket

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// SlowPolicy says what a Group does with a member whose send queue is full.
type SlowPolicy int

const (
	// DisconnectSlow drops the member's connection: its reads return
	// ErrSlowConsumer. Every member then receives every message, or nothing.
	DisconnectSlow SlowPolicy = iota
	// DropMessages skips the member for the messages that find its queue full.
	DropMessages
)

// ErrSlowConsumer is what reads return on a connection that a Group
// disconnected because it could not keep up.
var ErrSlowConsumer = errors.New("websocket: disconnected from a group: too slow to keep up")

// DefaultQueueSize is how many messages a Group member may have waiting.
const DefaultQueueSize = 64

// Group is a set of connections that receive the same messages, of any
// dialects. A broadcast is encoded once per wire form, not once per member
// (see PreparedMessage), and queued to each member; each member's queue is
// written by a goroutine that exists only while the queue is not empty, so
// one slow member never delays the others, and idle members cost no
// goroutine. Binary broadcasts skip hixie members, which can receive text
// only. A Group's zero value is ready to use.
type Group struct {
	// QueueSize bounds each member's queue (0: DefaultQueueSize).
	QueueSize int
	// Slow is the policy for a member whose queue is full.
	Slow SlowPolicy

	mu      sync.RWMutex
	members map[*Conn]*member

	dropped      atomic.Uint64
	disconnected atomic.Uint64
}

type member struct {
	c       *Conn
	mu      sync.Mutex
	queue   []*PreparedMessage
	head    int
	sending bool
}

// GroupStats counts a Group's members and how slow members were handled.
type GroupStats struct {
	Members      int    `json:"members"`
	Dropped      uint64 `json:"dropped"`      // messages skipped for full queues (DropMessages)
	Disconnected uint64 `json:"disconnected"` // members disconnected (DisconnectSlow)
}

// Stats returns the group's counters.
func (g *Group) Stats() GroupStats {
	return GroupStats{Members: g.Len(), Dropped: g.dropped.Load(), Disconnected: g.disconnected.Load()}
}

// Add makes c a member until it is removed or closes.
func (g *Group) Add(c *Conn) {
	g.mu.Lock()
	if g.members == nil {
		g.members = make(map[*Conn]*member)
	}
	if _, ok := g.members[c]; ok {
		g.mu.Unlock()
		return
	}
	g.members[c] = &member{c: c}
	g.mu.Unlock()
	c.afterClose(func() { g.Remove(c) })
}

// Remove ends c's membership; messages already queued to it are still sent.
func (g *Group) Remove(c *Conn) {
	g.mu.Lock()
	delete(g.members, c)
	g.mu.Unlock()
}

// Len is the number of members.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.members)
}

// Broadcast queues a message to every member. It does not wait for any
// member's write.
func (g *Group) Broadcast(typ MessageType, data []byte) error {
	pm, err := NewPreparedMessage(typ, data)
	if err != nil {
		return err
	}
	g.BroadcastPrepared(pm)
	return nil
}

// BroadcastText queues a text message to every member.
func (g *Group) BroadcastText(s string) error {
	// The bytes are only read: the message is immutable, as s is.
	return g.Broadcast(TextMessage, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// BroadcastPrepared queues pm to every member.
func (g *Group) BroadcastPrepared(pm *PreparedMessage) {
	size := g.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	var slow []*Conn
	g.mu.RLock()
	for _, m := range g.members {
		if pm.typ == BinaryMessage && !m.c.dialect.hybi() {
			continue
		}
		if !g.enqueue(m, pm, size) {
			slow = append(slow, m.c)
		}
	}
	g.mu.RUnlock()
	// Closing removes the member, which takes the lock: so only now.
	for _, c := range slow {
		if c.cause.CompareAndSwap(nil, &ErrSlowConsumer) {
			g.disconnected.Add(1)
		}
		c.closeNow()
	}
}

// enqueue queues pm to m; it reports false if m is to be disconnected.
func (g *Group) enqueue(m *member, pm *PreparedMessage, size int) bool {
	m.mu.Lock()
	if len(m.queue)-m.head >= size {
		m.mu.Unlock()
		if g.Slow == DropMessages {
			g.dropped.Add(1)
			return true
		}
		return false
	}
	m.queue = append(m.queue, pm)
	start := !m.sending
	m.sending = true
	m.mu.Unlock()
	if start {
		go m.send()
	}
	return true
}

// send writes the member's queue until it is empty.
func (m *member) send() {
	for {
		m.mu.Lock()
		if m.head == len(m.queue) {
			if cap(m.queue) > 8 {
				m.queue = nil // let a burst's queue go
			}
			m.queue, m.head, m.sending = m.queue[:0], 0, false
			m.mu.Unlock()
			return
		}
		pm := m.queue[m.head]
		m.queue[m.head] = nil
		m.head++
		m.mu.Unlock()
		if err := m.c.WritePreparedMessage(pm); err != nil && !errors.Is(err, errInvalidHixieText) {
			m.mu.Lock()
			clear(m.queue)
			m.queue, m.head, m.sending = nil, 0, false
			m.mu.Unlock()
			return // the connection is broken: its close removes it
		}
	}
}

// Tick broadcasts message(t) as text every interval until ctx ends: one
// timer for the whole group. A nil message sends the server's date and time.
func (g *Group) Tick(ctx context.Context, interval time.Duration, message func(time.Time) string) error {
	return tick(ctx, nil, interval, message, g.BroadcastText)
}
