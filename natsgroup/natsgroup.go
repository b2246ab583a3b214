// Package natsgroup spans a websocket.Group across server processes through
// NATS: a broadcast on any node reaches the members of every node.
//
// Each node keeps its own local websocket.Group of the connections it
// serves. Broadcast delivers to the local members at once, then publishes the
// message on a NATS subject; every node subscribes to that subject and hands
// what other nodes published to its own members. A message carries its
// origin in NATS headers (the publishing node's id, a per-node sequence
// number and the message type), so a node skips its own messages (each
// member gets a message exactly once), and a receiver notices messages lost
// between nodes as gaps in a sequence. Any NATS client may broadcast to the
// members too, by publishing a plain message on the subject.
//
// # Guarantees
//
// NATS core delivers at most once, in order per publishing connection. So:
//   - every member of every node connected to NATS receives a broadcast
//     once, never twice (a repeated sequence number is dropped);
//   - messages of one publishing node reach every node in the order that node
//     broadcast them, the same order its local members see;
//   - messages are not stored: a node that joins late receives what is
//     broadcast after its subscription is in place, nothing before.
//
// # When NATS is unreachable
//
// Local delivery never depends on NATS: Broadcast queues to the local members
// first. What happens to other nodes depends on the OutagePolicy:
//
//   - DropDuringOutage (the default): while the connection is not up, a
//     broadcast reaches this node's members only, Broadcast returns an error
//     wrapping ErrLocalOnly, and the other nodes never see the message. Chat
//     and live updates stay live: nobody gets a burst of stale messages after
//     the outage. (A broadcast racing with the loss of the connection may
//     still land in nats.go's reconnect buffer and arrive after reconnecting;
//     connect with nats.ReconnectBufSize(-1) to rule that out.)
//   - BufferDuringOutage: the message is written to nats.go's reconnect
//     buffer (nats.ReconnectBufSize, 8 MiB by default) and published once the
//     connection is back, to the nodes whose subscriptions are back by then;
//     Broadcast returns an error wrapping ErrLocalOnly only when that buffer
//     is full or the connection is closed for good.
//
// In both cases Err reports the outage while it lasts, and the OnError
// callback is told once when the connection goes down. nats.go notices a
// server that closed the connection at once, but a silent one (a network
// partition) only after its pings go unanswered (nats.PingInterval, 2 min
// by default, times nats.MaxPingsOutstanding): until then broadcasts are
// written to a dead connection. Messages lost that way, or dropped for a
// slow subscriber, are counted by the receiving nodes as Stats.Missed once
// the next message of their sequence arrives, and reported to OnError as a
// *GapError.
//
// A message is published with its headers: it must fit the server's
// max_payload (nc.MaxPayload(), 1 MiB by default), so keep the Handler's
// ReadLimit below it when members' messages are broadcast.
//
// The NATS connection belongs to the caller, with its options (reconnect
// wait, buffer size, handlers): Close unsubscribes but does not close it.
package natsgroup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/hybi/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// NATS header fields of a broadcast. A message without HeaderNode comes from
// a publisher outside any group (nats pub, a backend service) and is
// delivered as it is: text unless HeaderType says "binary".
const (
	HeaderNode = "Natsgroup-Node" // id of the publishing node
	HeaderSeq  = "Natsgroup-Seq"  // the node's sequence number, from 1
	HeaderType = "Natsgroup-Type" // "text" (or absent) or "binary"
)

var (
	// ErrLocalOnly is wrapped, with the reason, by the errors of broadcasts
	// that reached this node's members but not the other nodes (NATS
	// unreachable, a message over the server's max_payload), and by Err
	// while the NATS connection is down.
	ErrLocalOnly = errors.New("natsgroup: delivered to this node's members only")
	// ErrClosed is returned by Broadcast after Close (the local members
	// still receive the message).
	ErrClosed = errors.New("natsgroup: group closed")
)

var binaryType = []string{"binary"}

// OutagePolicy says what a broadcast made while the NATS connection is down
// does for the other nodes. The local members receive it in any case.
type OutagePolicy int

const (
	// DropDuringOutage publishes nothing while the connection is down:
	// Broadcast returns an error wrapping ErrLocalOnly.
	DropDuringOutage OutagePolicy = iota
	// BufferDuringOutage leaves the message in nats.go's reconnect buffer,
	// published once the connection is back.
	BufferDuringOutage
)

// Option configures a Group.
type Option func(*config)

type config struct {
	outage  OutagePolicy
	onError func(error)
}

// WithOutagePolicy sets what broadcasts do while NATS is unreachable
// (default DropDuringOutage).
func WithOutagePolicy(p OutagePolicy) Option { return func(c *config) { c.outage = p } }

// OnError sets a function told about trouble that no Broadcast call returns:
// the NATS connection going down (once per outage, wrapping ErrLocalOnly),
// messages lost between nodes (a *GapError), messages that cannot be
// delivered (bad headers, invalid UTF-8 text). It is called from NATS
// goroutines, possibly concurrently, and must not block for long.
func OnError(f func(error)) Option { return func(c *config) { c.onError = f } }

// GapError reports messages of another node that never arrived.
type GapError struct {
	Node    string // the publishing node
	Missing uint64 // how many messages of its sequence are missing
	Next    uint64 // the sequence number that arrived after the gap
}

func (e *GapError) Error() string {
	return fmt.Sprintf("natsgroup: %d message(s) from node %s lost before #%d", e.Missing, e.Node, e.Next)
}

// Group is a websocket.Group spanned across nodes through NATS. Add,
// Remove and Len act on the local members; Broadcast and BroadcastText reach
// every node's members.
type Group struct {
	nc      *nats.Conn
	subject string
	local   *websocket.Group
	nodeID  string // a NUID: unique to this Group, never reused
	cfg     config

	pubMu sync.Mutex  // orders local delivery, sequence numbers and publishes
	seq   uint64      // of the last message published
	hdrs  nats.Header // reused for each publish (under pubMu)

	sub    *nats.Subscription
	status chan nats.Status
	down   atomic.Bool       // an outage has been reported to OnError
	seen   map[string]uint64 // last sequence number per node (subscription goroutine only)
	closed atomic.Bool

	published, publishFailed     atomic.Uint64
	received, missed, duplicates atomic.Uint64
	rejected                     atomic.Uint64
}

// New joins the group on subject through nc, with local holding this node's
// members (nil: a new websocket.Group, reachable through Local). The subject
// must be a literal subject, without wildcards.
func New(nc *nats.Conn, subject string, local *websocket.Group, opts ...Option) (*Group, error) {
	if nc == nil {
		return nil, errors.New("natsgroup: nil NATS connection")
	}
	if subject == "" || strings.ContainsAny(subject, " \t\r\n") {
		return nil, fmt.Errorf("natsgroup: invalid subject %q", subject)
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return nil, fmt.Errorf("natsgroup: subject %q is not a literal subject", subject)
		}
	}
	if local == nil {
		local = new(websocket.Group)
	}
	g := &Group{nc: nc, subject: subject, local: local, nodeID: nuid.Next(), seen: make(map[string]uint64)}
	for _, o := range opts {
		o(&g.cfg)
	}
	if g.cfg.outage != DropDuringOutage && g.cfg.outage != BufferDuringOutage {
		return nil, fmt.Errorf("natsgroup: unknown outage policy %d", g.cfg.outage)
	}
	g.hdrs = nats.Header{HeaderNode: {g.nodeID}, HeaderSeq: {""}}

	g.status = nc.StatusChanged(nats.DISCONNECTED, nats.RECONNECTING, nats.CONNECTED, nats.CLOSED)
	sub, err := nc.Subscribe(subject, g.receive)
	if err != nil {
		nc.RemoveStatusListener(g.status)
		return nil, fmt.Errorf("natsgroup: subscribe to %q: %w", subject, err)
	}
	g.sub = sub
	go g.watch()
	if nc.IsConnected() {
		// Once the server has answered, it has our subscription: what
		// other nodes publish from now on reaches us.
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			g.report(fmt.Errorf("natsgroup: subscribe to %q: %w", subject, err))
		}
	} else {
		g.reportDown(nc.Status())
	}
	return g, nil
}

// Local returns the group of this node's members.
func (g *Group) Local() *websocket.Group { return g.local }

// NodeID returns this node's id, carried by its messages.
func (g *Group) NodeID() string { return g.nodeID }

// Subject returns the NATS subject the group spans.
func (g *Group) Subject() string { return g.subject }

// Add makes c a member on this node until it is removed or closes.
func (g *Group) Add(c *websocket.Conn) { g.local.Add(c) }

// Remove ends c's membership.
func (g *Group) Remove(c *websocket.Conn) { g.local.Remove(c) }

// Len is the number of members on this node.
func (g *Group) Len() int { return g.local.Len() }

// Broadcast queues a message to this node's members, then publishes it to
// the other nodes. It does not wait for any member's write nor for the other
// nodes. An error wrapping ErrLocalOnly (or ErrClosed) means the local
// members got the message and the other nodes did not; data must not change
// afterwards.
func (g *Group) Broadcast(typ websocket.MessageType, data []byte) error {
	pm, err := websocket.NewPreparedMessage(typ, data)
	if err != nil {
		return err
	}
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	g.local.BroadcastPrepared(pm)
	if g.closed.Load() {
		return ErrClosed
	}
	if g.cfg.outage == DropDuringOutage && !g.nc.IsConnected() {
		g.publishFailed.Add(1)
		return fmt.Errorf("%w: %w", ErrLocalOnly, statusErr(g.nc.Status()))
	}
	g.hdrs[HeaderSeq][0] = strconv.FormatUint(g.seq+1, 10)
	if typ == websocket.BinaryMessage {
		g.hdrs[HeaderType] = binaryType
	} else {
		delete(g.hdrs, HeaderType)
	}
	if err := g.nc.PublishMsg(&nats.Msg{Subject: g.subject, Header: g.hdrs, Data: data}); err != nil {
		g.publishFailed.Add(1)
		return fmt.Errorf("%w: %w", ErrLocalOnly, err)
	}
	g.seq++
	g.published.Add(1)
	return nil
}

// BroadcastText broadcasts a text message.
func (g *Group) BroadcastText(s string) error {
	// Only read, by the local members' writers and by the publish, as s is.
	return g.Broadcast(websocket.TextMessage, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// receive delivers another node's message to the local members.
func (g *Group) receive(m *nats.Msg) {
	node := m.Header.Get(HeaderNode)
	if node == g.nodeID {
		return // delivered locally when it was broadcast
	}
	if node != "" {
		seq, err := strconv.ParseUint(m.Header.Get(HeaderSeq), 10, 64)
		if err != nil || seq == 0 {
			g.reject(fmt.Errorf("natsgroup: message without a valid sequence number from node %q", node))
			return
		}
		last, ok := g.seen[node]
		switch {
		case ok && seq <= last:
			g.duplicates.Add(1)
			return
		case ok && seq > last+1:
			g.missed.Add(seq - last - 1)
			g.report(&GapError{Node: node, Missing: seq - last - 1, Next: seq})
		}
		g.seen[node] = seq
	}
	typ := websocket.TextMessage
	switch t := m.Header.Get(HeaderType); t {
	case "", "text":
	case "binary":
		typ = websocket.BinaryMessage
	default:
		g.reject(fmt.Errorf("natsgroup: message of unknown type %q from node %q", t, node))
		return
	}
	if typ == websocket.TextMessage && !utf8.Valid(m.Data) {
		g.reject(fmt.Errorf("natsgroup: text message from node %q is not valid UTF-8", node))
		return
	}
	g.received.Add(1)
	g.local.Broadcast(typ, m.Data) // typ is valid: no error
}

func (g *Group) reject(err error) {
	g.rejected.Add(1)
	g.report(err)
}

func (g *Group) report(err error) {
	if g.cfg.onError != nil && !g.closed.Load() {
		g.cfg.onError(err)
	}
}

// watch follows the connection's status until Close.
func (g *Group) watch() {
	for range g.status {
		// Events may have been dropped: the status now is what counts.
		if s := g.nc.Status(); s == nats.CONNECTED {
			g.down.Store(false)
		} else {
			g.reportDown(s)
		}
	}
}

func (g *Group) reportDown(s nats.Status) {
	if s == nats.CONNECTED || g.down.Swap(true) {
		return
	}
	g.report(fmt.Errorf("%w: %w", ErrLocalOnly, statusErr(s)))
}

func statusErr(s nats.Status) error {
	switch s {
	case nats.CLOSED:
		return nats.ErrConnectionClosed
	case nats.RECONNECTING:
		return nats.ErrConnectionReconnecting
	default:
		return fmt.Errorf("%w (%v)", nats.ErrDisconnected, s)
	}
}

// Err says why broadcasts do not reach the other nodes now: nil while the
// NATS connection is up, an error wrapping ErrLocalOnly while it is down,
// ErrClosed after Close.
func (g *Group) Err() error {
	if g.closed.Load() {
		return ErrClosed
	}
	if s := g.nc.Status(); !g.nc.IsConnected() {
		return fmt.Errorf("%w: %w", ErrLocalOnly, statusErr(s))
	}
	return nil
}

// Stats counts a Group's traffic.
type Stats struct {
	websocket.GroupStats        // this node's members
	NodeID               string `json:"node_id"`
	Connected            bool   `json:"connected"`      // the NATS connection is up
	Published            uint64 `json:"published"`      // broadcasts handed to NATS
	PublishFailed        uint64 `json:"publish_failed"` // broadcasts delivered to local members only
	Received             uint64 `json:"received"`       // messages of other nodes delivered here
	Missed               uint64 `json:"missed"`         // messages of other nodes lost on the way
	Duplicates           uint64 `json:"duplicates"`     // repeated messages dropped
	Rejected             uint64 `json:"rejected"`       // undeliverable messages: bad headers, invalid text
}

// Stats returns the group's counters.
func (g *Group) Stats() Stats {
	return Stats{
		GroupStats:    g.local.Stats(),
		NodeID:        g.nodeID,
		Connected:     g.nc.IsConnected(),
		Published:     g.published.Load(),
		PublishFailed: g.publishFailed.Load(),
		Received:      g.received.Load(),
		Missed:        g.missed.Load(),
		Duplicates:    g.duplicates.Load(),
		Rejected:      g.rejected.Load(),
	}
}

// Close leaves the NATS subject: other nodes' messages stop arriving, and
// Broadcast reaches local members only, returning ErrClosed. The local
// members and the NATS connection stay open: closing them is the caller's.
func (g *Group) Close() error {
	g.pubMu.Lock()
	already := g.closed.Swap(true)
	g.pubMu.Unlock()
	if already {
		return nil
	}
	g.nc.RemoveStatusListener(g.status)
	err := g.sub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil // gone with the connection
	}
	return err
}
