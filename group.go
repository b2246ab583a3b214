package websocket

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// SlowPolicy says what a Group does with a slow member: one whose queue
// has stayed full for the group's StallTimeout.
type SlowPolicy int

const (
	// DisconnectSlow drops the member's connection: its reads return
	// ErrSlowConsumer. Every member then receives every message, or nothing.
	DisconnectSlow SlowPolicy = iota
	// DropMessages skips the member for the messages that find it slow.
	DropMessages
)

// ErrSlowConsumer is what reads return on a connection that a Group
// disconnected because it could not keep up.
var ErrSlowConsumer = errors.New("websocket: disconnected from a group: too slow to keep up")

// Defaults of a Group's zero value.
const (
	// DefaultQueueBytes is what a member's queue holds before it is full:
	// room for the bursts of a busy chat room.
	DefaultQueueBytes = 1 << 20
	// DefaultStallTimeout is how long a member's queue may stay full
	// before the member is slow.
	DefaultStallTimeout = 5 * time.Second
)

// Group is a set of connections that receive the same messages, of any
// dialects. A broadcast is encoded once per wire form, not once per member
// (see PreparedMessage), and queued to each member; it never waits for a
// member's write. Every member receives the group's broadcasts in the same
// order, even when several goroutines broadcast at once.
//
// A member's queue is full once it holds QueueBytes. A member is slow
// only when its queue has stayed full for StallTimeout: it stopped
// reading, or reads slower than the room sends. A member that keeps up is
// never disconnected or skipped, however large the room's bursts: a full
// queue takes more messages while it is draining. So what a member that
// stopped reading holds is what the room sends in StallTimeout, beyond
// QueueBytes (the messages themselves are shared by every member). A slow
// member is dealt with as the Slow policy says.
//
// Queues are written by a few writers shared by all groups (one per
// processor): each takes a member with something queued, sends what it
// has queued in one vectored write (up to 1024 frames or 512 KiB), and
// moves on. So a broadcast to 10 000 members starts no goroutines, and a
// burst of messages costs a few system calls per member, not one per
// message. Idle groups and members hold no goroutine. A member whose
// socket is full (or whose connection another writer is using) gets a
// goroutine of its own until its queue is empty, so that it never holds up
// the others; so does a TLS member, and every member on systems other than
// Linux, whose writes cannot be tried without waiting.
//
// Binary broadcasts skip hixie members, which can receive text only. A
// Group's zero value is ready to use.
type Group struct {
	// QueueBytes is what a member's queue holds, in bytes of messages,
	// before it is full (0: DefaultQueueBytes).
	QueueBytes int
	// StallTimeout is how long a member's queue may stay full before the
	// member is slow (0: DefaultStallTimeout).
	StallTimeout time.Duration
	// Slow is the policy for a slow member.
	Slow SlowPolicy

	mu      sync.RWMutex
	members map[*Conn]*member

	dropped      atomic.Uint64
	disconnected atomic.Uint64
}

// member is a connection's queue in a group. While busy, exactly one
// writer has it: the shared writers' ready list, one of them, or the
// member's own goroutine.
type member struct {
	c         *Conn
	mu        sync.Mutex
	queue     []*PreparedMessage
	head      int
	bytes     int           // of queue[head:]
	busy      bool          // queued to a writer, or being written
	full      bool          // bytes reached the limit and have not fallen below since
	fullSince time.Duration // clock() when it became full
}

// GroupStats counts a Group's members and how slow members were handled.
type GroupStats struct {
	Members      int    `json:"members"`
	Dropped      uint64 `json:"dropped"`      // messages skipped for slow members (DropMessages)
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
	limit := g.QueueBytes
	if limit <= 0 {
		limit = DefaultQueueBytes
	}
	q := queuing{now: clock(), limit: limit, stall: orDefault(g.StallTimeout, DefaultStallTimeout), drop: g.Slow == DropMessages}
	ready := readyLists.Get().(*[]*member)
	var slow []*Conn
	// One broadcast at a time: every member gets a group's broadcasts in
	// the same order, and concurrent broadcasters do not contend for each
	// member's lock in turn.
	g.mu.Lock()
	for _, m := range g.members {
		if pm.typ == BinaryMessage && !m.c.dialect.hybi() {
			continue
		}
		switch q.enqueue(m, pm) {
		case started:
			if m.c.canTryWrite() {
				*ready = append(*ready, m)
			} else {
				go m.drain(nil)
			}
		case skipped:
			g.dropped.Add(1)
		case isSlow:
			slow = append(slow, m.c)
		}
	}
	g.mu.Unlock()
	writers.add(*ready)
	clear(*ready)
	*ready = (*ready)[:0]
	readyLists.Put(ready)
	// Closing removes the member, which takes the lock: so only now.
	for _, c := range slow {
		if c.setCause(ErrSlowConsumer) {
			g.disconnected.Add(1)
		}
		c.closeNow()
	}
}

// readyLists are the lists a broadcast collects its newly busy members in.
var readyLists = sync.Pool{New: func() any { return new([]*member) }}

// queuing is one broadcast's view of the group's limits.
type queuing struct {
	now, stall time.Duration
	limit      int
	drop       bool
}

type enqueued int

const (
	queued  enqueued = iota // behind what the member has waiting
	started                 // the member was idle: it needs a writer
	skipped                 // slow, and the policy drops messages
	isSlow                  // slow, and the policy disconnects
)

func (q *queuing) enqueue(m *member, pm *PreparedMessage) enqueued {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Only enqueuing raises bytes: the queue fell below the limit since
	// the last enqueue if it is below now.
	if m.bytes < q.limit {
		m.full = false
	}
	if m.full && q.now-m.fullSince >= q.stall {
		if q.drop {
			return skipped
		}
		return isSlow
	}
	m.queue = append(m.queue, pm)
	m.bytes += len(pm.data)
	if m.bytes >= q.limit && !m.full {
		m.full, m.fullSince = true, q.now
	}
	if m.busy {
		return queued
	}
	m.busy = true
	return started
}

// Bounds of one batch: the system's limit of a vectored write (IOV_MAX is
// 1024 on Linux), and what one write usually takes.
const (
	maxBatchFrames = 1024
	maxBatchBytes  = 512 << 10
)

// take moves the next batch of m's queue into b, or, if the queue is
// empty, ends m's busy spell and reports false.
func (m *member) take(b *frameBatch) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.head == len(m.queue) {
		if cap(m.queue) > 64 {
			m.queue = nil // let a burst's queue go
		}
		m.queue, m.head, m.busy = m.queue[:0], 0, false
		return false
	}
	size := 0
	for m.head < len(m.queue) && len(b.msgs) < maxBatchFrames && (size == 0 || size+len(m.queue[m.head].data) <= maxBatchBytes) {
		pm := m.queue[m.head]
		m.queue[m.head] = nil
		m.head++
		size += len(pm.data)
		b.msgs = append(b.msgs, pm)
	}
	m.bytes -= size
	if m.head >= 64 && 2*m.head >= len(m.queue) {
		// A member always a little behind never empties its queue: move
		// what waits to the front, or the slice would grow for good.
		n := copy(m.queue, m.queue[m.head:])
		clear(m.queue[n:])
		m.queue, m.head = m.queue[:n], 0
	}
	return true
}

// abandon drops what m has waiting: nothing more can be written to its
// connection, which is closing (and then leaves the group).
func (m *member) abandon() {
	m.mu.Lock()
	clear(m.queue)
	m.queue, m.head, m.bytes, m.busy, m.full = nil, 0, 0, false, false
	m.mu.Unlock()
}

// written is how a shared writer's turn with a member ended.
type written int

const (
	writtenDone    written = iota // its queue is empty, or cannot be written, or its own goroutine has it
	writtenMore                   // a batch went out: the member may have more
	writtenHandoff                // its own goroutine took over, with the batch
)

// tryWrite writes a batch of m's queue for a shared writer, which must not
// wait. If the connection is busy with another writer, or its socket
// cannot take the whole batch, m's own goroutine takes over.
func (m *member) tryWrite(b *frameBatch) written {
	c := m.c
	if !c.msgMu.TryLock() {
		go m.drain(nil)
		return writtenDone
	}
	if !c.wmu.TryLock() {
		c.msgMu.Unlock()
		go m.drain(nil)
		return writtenDone
	}
	if !m.take(b) {
		c.wmu.Unlock()
		c.msgMu.Unlock()
		return writtenDone
	}
	err := c.sendBatch(b, false)
	if err == errWouldBlock {
		// The rest of the batch, with both locks, goes to m's goroutine.
		go m.drain(b)
		return writtenHandoff
	}
	c.wmu.Unlock()
	c.msgMu.Unlock()
	b.reset()
	if err != nil {
		m.abandon()
		return writtenDone
	}
	return writtenMore
}

// drain writes m's queue, waiting for its socket as needed, until the queue
// is empty: the member's own goroutine. It first finishes partial, a batch
// that a shared writer started, whose locks it holds.
func (m *member) drain(partial *frameBatch) {
	c := m.c
	b := partial
	if b != nil {
		err := c.setWriteErr(c.finishBatch(b))
		c.wmu.Unlock()
		c.msgMu.Unlock()
		if err != nil {
			putBatch(b)
			m.abandon()
			return
		}
		b.reset()
	} else {
		b = getBatch()
	}
	defer putBatch(b)
	for {
		c.msgMu.Lock()
		c.wmu.Lock()
		if !m.take(b) {
			c.wmu.Unlock()
			c.msgMu.Unlock()
			return
		}
		err := c.sendBatch(b, true)
		c.wmu.Unlock()
		c.msgMu.Unlock()
		b.reset()
		if err != nil {
			m.abandon()
			return
		}
	}
}

// writerPool is the writers shared by every group: at most one per
// processor, each alive only while members wait for one.
type writerPool struct {
	mu      sync.Mutex
	ready   []*member
	head    int
	running int
}

var writers writerPool

// add hands busy members to the writers, starting writers as needed.
func (p *writerPool) add(ms []*member) {
	if len(ms) == 0 {
		return
	}
	p.mu.Lock()
	p.ready = append(p.ready, ms...)
	start := min(len(p.ready)-p.head, runtime.GOMAXPROCS(0)) - p.running
	if start > 0 {
		p.running += start
	}
	p.mu.Unlock()
	for range start {
		go p.run()
	}
}

// next is the member a writer serves next, nil if none: the writer then ends.
func (p *writerPool) next(requeue *member) *member {
	p.mu.Lock()
	defer p.mu.Unlock()
	if requeue != nil {
		p.ready = append(p.ready, requeue) // behind the others: each gets its turn
	}
	if p.head == len(p.ready) {
		if cap(p.ready) > 1024 {
			p.ready = nil
		}
		p.ready, p.head = p.ready[:0], 0
		p.running--
		return nil
	}
	m := p.ready[p.head]
	p.ready[p.head] = nil
	p.head++
	return m
}

func (p *writerPool) run() {
	b := getBatch()
	var again *member
	for {
		m := p.next(again)
		if m == nil {
			putBatch(b)
			return
		}
		again = nil
		switch m.tryWrite(b) {
		case writtenMore:
			again = m
		case writtenHandoff:
			b = getBatch()
		}
	}
}

// clockStart is the origin of clock.
var clockStart = time.Now()

// clock is a monotonic time, cheap to compare.
func clock() time.Duration { return time.Since(clockStart) }

// Tick broadcasts message(t) as text every interval until ctx ends: one
// timer for the whole group. A nil message sends the server's date and time.
func (g *Group) Tick(ctx context.Context, interval time.Duration, message func(time.Time) string) error {
	return tick(ctx, nil, interval, message, g.BroadcastText)
}
