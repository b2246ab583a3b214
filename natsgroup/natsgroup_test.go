package natsgroup

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hybi/websocket"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// wait bounds every wait of these tests.
const wait = 5 * time.Second

// waitFor polls cond until it holds, failing the test after wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startNATS starts a NATS server on 127.0.0.1:port (-1: a random port).
func startNATS(t *testing.T, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(wait) {
		t.Fatal("NATS server not ready")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func natsPort(s *server.Server) int { return s.Addr().(*net.TCPAddr).Port }

// gate is a dialer that can refuse connections, to decide when a node
// reconnects.
type gate struct {
	closed atomic.Bool
	d      net.Dialer
}

func (g *gate) Dial(network, addr string) (net.Conn, error) {
	if g.closed.Load() {
		return nil, errors.New("gate closed")
	}
	return g.d.Dial(network, addr)
}

// node is one app server: an httptest server whose websocket handler adds
// each connection to the node's Group and broadcasts what its client sends.
type node struct {
	t       *testing.T
	name    string
	nc      *nats.Conn
	g       *Group
	ws      *websocket.Handler
	srv     *httptest.Server
	gate    *gate
	errs    chan error // from OnError
	pubErrs chan error // from Broadcast
	stopped bool
}

func startNode(t *testing.T, name, url string, opts ...Option) *node {
	t.Helper()
	n := &node{t: t, name: name, gate: new(gate), errs: make(chan error, 1000), pubErrs: make(chan error, 1000)}
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(10*time.Millisecond),
		nats.ReconnectJitter(0, 0),
		nats.SetCustomDialer(n.gate),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if !n.stopped {
				t.Logf("%s: NATS connection closed: %v", name, nc.LastError())
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	n.nc = nc
	opts = append([]Option{OnError(func(err error) {
		select {
		case n.errs <- err:
		default:
		}
	})}, opts...)
	g, err := New(nc, "test.chat", &websocket.Group{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	n.g = g
	n.ws = &websocket.Handler{
		CloseTimeout: time.Second,
		Serve: func(c *websocket.Conn) {
			g.Add(c)
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := g.Broadcast(typ, msg); err != nil {
					n.pubErrs <- err
				}
			}
		},
	}
	n.srv = httptest.NewServer(n.ws)
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down: its websocket connections, its Group, its NATS
// connection and its HTTP server.
func (n *node) stop() {
	if n.stopped {
		return
	}
	n.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := n.ws.Shutdown(ctx); err != nil {
		n.t.Errorf("%s: websocket shutdown: %v", n.name, err)
	}
	n.srv.Close()
	if err := n.g.Close(); err != nil {
		n.t.Errorf("%s: group close: %v", n.name, err)
	}
	n.nc.Close()
}

// synced waits until the node is connected to NATS and the server has
// everything the node sent, its subscription included.
func (n *node) synced() {
	n.t.Helper()
	waitFor(n.t, n.name+" connected", func() bool { return n.g.Err() == nil })
	if err := n.nc.FlushTimeout(wait); err != nil {
		n.t.Fatalf("%s: flush: %v", n.name, err)
	}
}

// noErrors checks that nothing was reported by the node.
func (n *node) noErrors() {
	n.t.Helper()
	for {
		select {
		case err := <-n.errs:
			n.t.Errorf("%s: OnError: %v", n.name, err)
		case err := <-n.pubErrs:
			n.t.Errorf("%s: Broadcast: %v", n.name, err)
		default:
			return
		}
	}
}

// nextErr waits for the next error of ch.
func nextErr(t *testing.T, what string, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatalf("no error from %s", what)
		return nil
	}
}

// client is a minimal RFC 6455 client: masked frames out, unmasked frames in.
type client struct {
	t    *testing.T
	name string
	conn net.Conn
	wmu  sync.Mutex
	msgs chan message
	done chan struct{} // closed when the reader stops
}

type message struct {
	op   byte
	data string
}

func dial(t *testing.T, n *node, name string) *client {
	t.Helper()
	addr := n.srv.Listener.Addr().String()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, name: name, conn: conn, msgs: make(chan message, 10000), done: make(chan struct{})}
	t.Cleanup(func() { conn.Close(); <-c.done })
	conn.SetDeadline(time.Now().Add(wait))
	fmt.Fprintf(conn, "GET /chat HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %s %v", resp.Status, resp.Header)
	}
	conn.SetDeadline(time.Time{})
	go c.read(br)
	return c
}

// read passes data messages to c.msgs, answers pings and closes.
func (c *client) read(br *bufio.Reader) {
	defer close(c.done)
	for {
		var h [2]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return
		}
		if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
			c.t.Errorf("%s: unexpected fragment or masked frame: % x", c.name, h)
			return
		}
		n := uint64(h[1] & 0x7F)
		switch n {
		case 126:
			var b [2]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = uint64(binary.BigEndian.Uint16(b[:]))
		case 127:
			var b [8]byte
			if _, err := io.ReadFull(br, b[:]); err != nil {
				return
			}
			n = binary.BigEndian.Uint64(b[:])
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return
		}
		switch op := h[0] & 0x0F; op {
		case 1, 2:
			c.msgs <- message{op, string(p)}
		case 8:
			c.write(8, p)
			return
		case 9:
			c.write(10, p)
		}
	}
}

func (c *client) write(op byte, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b := []byte{0x80 | op}
	switch {
	case len(p) < 126:
		b = append(b, 0x80|byte(len(p)))
	case len(p) < 1<<16:
		b = append(b, 0x80|126, byte(len(p)>>8), byte(len(p)))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, x := range p {
		b = append(b, x^key[i%4])
	}
	_, err := c.conn.Write(b)
	return err
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.write(1, []byte(s)); err != nil {
		c.t.Fatalf("%s: send: %v", c.name, err)
	}
}

// next waits for the next data message.
func (c *client) next() message {
	c.t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-c.done:
		select {
		case m := <-c.msgs:
			return m
		default:
		}
		c.t.Fatalf("%s: connection closed", c.name)
	case <-time.After(wait):
		c.t.Fatalf("%s: no message in %v", c.name, wait)
	}
	return message{}
}

// expect checks that the next text messages are want, in order.
func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if m := c.next(); m.op != 1 || m.data != w {
			c.t.Fatalf("%s: got %d %q, want text %q", c.name, m.op, m.data, w)
		}
	}
}

// members waits until each node has its number of members.
func members(t *testing.T, want map[*node]int) {
	t.Helper()
	for n, k := range want {
		waitFor(t, fmt.Sprintf("%d members on %s", k, n.name), func() bool { return n.g.Len() == k })
	}
}

// A broadcast from any client reaches every client on every node exactly
// once, in the order its publisher sent it.
func TestBroadcastSpansNodes(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	c := startNode(t, "C", ns.ClientURL())
	clients := []*client{dial(t, a, "a1"), dial(t, a, "a2"), dial(t, b, "b1"), dial(t, c, "c1")}
	members(t, map[*node]int{a: 2, b: 1, c: 1})

	const perClient = 200
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			for i := 1; i <= perClient; i++ {
				cl.send(fmt.Sprintf("%s %d", cl.name, i))
			}
			cl.send(cl.name + " done")
		})
	}
	wg.Wait()

	for _, cl := range clients {
		last := map[string]int{}
		done := map[string]bool{}
		for len(done) < len(clients) {
			m := cl.next()
			from, what, _ := strings.Cut(m.data, " ")
			if done[from] {
				t.Fatalf("%s: %q after %s's last message", cl.name, m.data, from)
			}
			if what == "done" {
				if last[from] != perClient {
					t.Fatalf("%s: %s done after its message %d of %d", cl.name, from, last[from], perClient)
				}
				done[from] = true
				continue
			}
			seq, err := strconv.Atoi(what)
			if err != nil || seq != last[from]+1 {
				t.Fatalf("%s: got %q after %s's message %d", cl.name, m.data, from, last[from])
			}
			last[from] = seq
		}
	}
	// Each node published its clients' messages and received the others'.
	total := uint64(len(clients) * (perClient + 1))
	for n, local := range map[*node]uint64{a: 2, b: 1, c: 1} {
		pub := local * (perClient + 1)
		n.stats(func(st Stats) bool {
			return st.Published == pub && st.Received == total-pub && st.Missed == 0 &&
				st.Duplicates == 0 && st.Rejected == 0 && st.Disconnected == 0 && st.Dropped == 0
		})
		n.noErrors()
	}
}

// Binary messages keep their type, and BroadcastText from the server side
// spans the nodes too.
func TestBinaryAndServerBroadcast(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	ca, cb := dial(t, a, "a"), dial(t, b, "b")
	members(t, map[*node]int{a: 1, b: 1})

	bin := string([]byte{0, 1, 2, 0xFF, 0xFE})
	if err := ca.write(2, []byte(bin)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{ca, cb} {
		if m := cl.next(); m.op != 2 || m.data != bin {
			t.Fatalf("%s: got %d %q", cl.name, m.op, m.data)
		}
	}
	if err := b.g.BroadcastText("from the server of B"); err != nil {
		t.Fatal(err)
	}
	ca.expect("from the server of B")
	cb.expect("from the server of B")
	a.noErrors()
	b.noErrors()
}

// A node that joins late receives what is broadcast after it joined.
func TestLateJoiner(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	ca, cb := dial(t, a, "a"), dial(t, b, "b")
	members(t, map[*node]int{a: 1, b: 1})
	ca.send("before C")
	ca.expect("before C")
	cb.expect("before C")

	c := startNode(t, "C", ns.ClientURL())
	cc := dial(t, c, "c")
	members(t, map[*node]int{c: 1})
	ca.send("after C")
	cc.send("from C")
	for _, cl := range []*client{ca, cb, cc} {
		got := map[string]bool{cl.next().data: true, cl.next().data: true}
		if !got["after C"] || !got["from C"] {
			t.Fatalf("%s: got %v", cl.name, got)
		}
	}
	for _, n := range []*node{a, b, c} {
		n.noErrors()
	}
}

// A node that stops does not disturb the others.
func TestNodeStops(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	c := startNode(t, "C", ns.ClientURL())
	ca, cb, cc := dial(t, a, "a"), dial(t, b, "b"), dial(t, c, "c")
	members(t, map[*node]int{a: 1, b: 1, c: 1})
	cc.send("C here")
	for _, cl := range []*client{ca, cb, cc} {
		cl.expect("C here")
	}

	c.stop()
	select {
	case <-cc.done: // closed by C's shutdown
	case <-time.After(wait):
		t.Fatal("c still open after C stopped")
	}
	if err := c.g.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("C: Err after Close = %v", err)
	}
	ca.send("C gone")
	cb.send("still here")
	for _, cl := range []*client{ca, cb} {
		got := map[string]bool{cl.next().data: true, cl.next().data: true}
		if !got["C gone"] || !got["still here"] {
			t.Fatalf("%s: got %v", cl.name, got)
		}
	}
	for _, n := range []*node{a, b} {
		if err := n.g.Err(); err != nil {
			t.Errorf("%s: Err = %v", n.name, err)
		}
		n.noErrors()
	}
}

// With the default policy, during a NATS outage every node keeps delivering
// to its own clients, reports the outage, and publishes nothing; after NATS
// is back, cross-node delivery resumes without the outage's messages.
func TestOutageDrop(t *testing.T) {
	ns := startNATS(t, -1)
	port := natsPort(ns)
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	ca, cb := dial(t, a, "a"), dial(t, b, "b")
	members(t, map[*node]int{a: 1, b: 1})
	ca.send("before")
	ca.expect("before")
	cb.expect("before")

	ns.Shutdown()
	for _, n := range []*node{a, b} {
		n.nextOutage()
		if err := n.g.Err(); !errors.Is(err, ErrLocalOnly) {
			t.Errorf("%s: Err = %v, want ErrLocalOnly", n.name, err)
		}
	}
	ca.send("during, from a")
	cb.send("during, from b")
	ca.expect("during, from a")
	cb.expect("during, from b")
	for _, n := range []*node{a, b} {
		if err := nextErr(t, n.name+" Broadcast", n.pubErrs); !errors.Is(err, ErrLocalOnly) {
			t.Errorf("%s: Broadcast = %v, want ErrLocalOnly", n.name, err)
		}
		n.stats(func(st Stats) bool { return !st.Connected && st.PublishFailed == 1 })
	}

	startNATS(t, port)
	a.synced()
	b.synced()
	ca.send("after, from a")
	cb.send("after, from b")
	// Each client's next messages are the two "after" ones: the other
	// node's "during" message never arrives.
	for _, cl := range []*client{ca, cb} {
		got := map[string]bool{cl.next().data: true, cl.next().data: true}
		if !got["after, from a"] || !got["after, from b"] {
			t.Fatalf("%s: got %v", cl.name, got)
		}
	}
	for n, want := range map[*node][2]uint64{a: {2, 1}, b: {1, 2}} {
		n.stats(func(st Stats) bool {
			return st.Connected && st.Missed == 0 && st.Published == want[0] && st.Received == want[1]
		})
		n.noErrors()
	}
}

// With BufferDuringOutage, what a node broadcasts during the outage reaches
// the nodes that are back before it, once it is back.
func TestOutageBuffer(t *testing.T) {
	ns := startNATS(t, -1)
	port := natsPort(ns)
	a := startNode(t, "A", ns.ClientURL(), WithOutagePolicy(BufferDuringOutage))
	b := startNode(t, "B", ns.ClientURL(), WithOutagePolicy(BufferDuringOutage))
	ca, cb := dial(t, a, "a"), dial(t, b, "b")
	members(t, map[*node]int{a: 1, b: 1})

	a.gate.closed.Store(true) // A will stay disconnected until the test says
	ns.Shutdown()
	a.nextOutage()
	b.nextOutage()
	ca.send("buffered 1")
	ca.send("buffered 2")
	ca.expect("buffered 1", "buffered 2")
	if err := a.g.Err(); !errors.Is(err, ErrLocalOnly) {
		t.Errorf("A: Err = %v, want ErrLocalOnly", err)
	}

	startNATS(t, port)
	b.synced()
	a.gate.closed.Store(false)
	a.synced()
	cb.expect("buffered 1", "buffered 2")
	ca.send("after")
	ca.expect("after")
	cb.expect("after")
	a.stats(func(st Stats) bool { return st.Published == 3 && st.PublishFailed == 0 })
	b.stats(func(st Stats) bool { return st.Received == 3 && st.Missed == 0 })
	a.noErrors()
	b.noErrors()
}

// stats waits until the node's counters satisfy cond.
func (n *node) stats(cond func(Stats) bool) {
	n.t.Helper()
	deadline := time.Now().Add(wait)
	for st := n.g.Stats(); !cond(st); st = n.g.Stats() {
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: unexpected stats %+v", n.name, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nextOutage consumes the report of an outage.
func (n *node) nextOutage() {
	n.t.Helper()
	if err := nextErr(n.t, n.name+" OnError", n.errs); !errors.Is(err, ErrLocalOnly) {
		n.t.Errorf("%s: OnError(%v), want ErrLocalOnly", n.name, err)
	}
}

// Messages from publishers outside the groups are delivered; gaps in a
// node's sequence are reported, repeats dropped, invalid text rejected.
func TestForeignMessages(t *testing.T) {
	ns := startNATS(t, -1)
	a := startNode(t, "A", ns.ClientURL())
	ca := dial(t, a, "a")
	members(t, map[*node]int{a: 1})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	pub := func(node, seq, typ, data string) {
		t.Helper()
		m := nats.NewMsg("test.chat")
		m.Data = []byte(data)
		for k, v := range map[string]string{HeaderNode: node, HeaderSeq: seq, HeaderType: typ} {
			if v != "" {
				m.Header.Set(k, v)
			}
		}
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish("test.chat", []byte("plain")); err != nil {
		t.Fatal(err)
	}
	pub("X", "1", "", "x1")
	pub("X", "1", "", "x1 again")
	pub("X", "4", "text", "x4")
	pub("X", "3", "", "x3 late")
	pub("X", "", "", "no seq")
	pub("X", "5", "video", "bad type")
	pub("", "", "", "\xff invalid")
	pub(a.g.NodeID(), "99", "", "own id")
	pub("X", "6", "binary", "\xff binary")
	ca.expect("plain", "x1", "x4")
	if m := ca.next(); m.op != 2 || m.data != "\xff binary" {
		t.Fatalf("got %d %q", m.op, m.data)
	}
	var gap *GapError
	if err := nextErr(t, "OnError", a.errs); !errors.As(err, &gap) || *gap != (GapError{Node: "X", Missing: 2, Next: 4}) {
		t.Errorf("OnError(%v), want a gap of 2 before 4", err)
	}
	for range 3 { // no seq, bad type, invalid text
		if err := nextErr(t, "OnError", a.errs); errors.As(err, &gap) {
			t.Errorf("OnError(%v)", err)
		}
	}
	a.noErrors()
	a.stats(func(st Stats) bool {
		return st.Received == 4 && st.Missed == 2 && st.Duplicates == 2 && st.Rejected == 3
	})
}

func TestNewErrors(t *testing.T) {
	ns := startNATS(t, -1)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, subj := range []string{"", "a b", "chat.*", "chat.>", "a..b"} {
		if _, err := New(nc, subj, nil); err == nil {
			t.Errorf("New(%q) succeeded", subj)
		}
	}
	if _, err := New(nil, "chat", nil); err == nil {
		t.Error("New(nil conn) succeeded")
	}
	g, err := New(nc, "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.Local() == nil || g.NodeID() == "" || g.Err() != nil {
		t.Errorf("Local %v, NodeID %q, Err %v", g.Local(), g.NodeID(), g.Err())
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.BroadcastText("x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Broadcast after Close = %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// A message over the server's max_payload reaches the local members only,
// and Broadcast says why.
func TestMaxPayload(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 1024})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(wait) {
		t.Fatal("NATS server not ready")
	}
	a := startNode(t, "A", ns.ClientURL())
	b := startNode(t, "B", ns.ClientURL())
	ca, cb := dial(t, a, "a"), dial(t, b, "b")
	members(t, map[*node]int{a: 1, b: 1})
	big := strings.Repeat("x", 2000)
	ca.send(big)
	ca.expect(big)
	if err := nextErr(t, "A Broadcast", a.pubErrs); !errors.Is(err, ErrLocalOnly) || !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("Broadcast = %v, want ErrLocalOnly and nats.ErrMaxPayload", err)
	}
	ca.send("small")
	ca.expect("small")
	cb.expect("small")
	a.noErrors()
	b.noErrors()
}
