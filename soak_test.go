package websocket

// A bounded soak test: thousands of concurrent loopback connections of
// every dialect, each echoing messages whose content is checked end to end,
// with clients that drop mid-handshake or mid-message mixed in; then every
// connection, goroutine and byte of heap must be given back.

import (
	"bufio"
	"bytes"
	stdflate "compress/flate"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

var soakConns = flag.Int("soak.conns", 0, "connections of TestSoak (0: 2000 under -race, 5000 without)")

// soakRaceEnabled reports whether the test binary was built with -race.
func soakRaceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

// soakKind is a client's dialect (and, for RFC 6455, its compression).
type soakKind int

const (
	soakHixie75 soakKind = iota
	soakHixie76
	soakHybi07
	soakHybi08
	soakRFC6455
	soakDeflate      // RFC 6455, permessage-deflate with context takeover
	soakDeflateNoCtx // RFC 6455, permessage-deflate without context takeover
	numSoakKinds
)

var soakKindNames = [numSoakKinds]string{"hixie-75", "hixie-76", "hybi-07", "hybi-08", "RFC 6455", "RFC 6455 + deflate", "RFC 6455 + deflate, no context takeover"}

func (k soakKind) hybi() bool { return k >= soakHybi07 }

// soakBehavior is what a client does.
type soakBehavior int

const (
	soakNormal        soakBehavior = iota // echoes, then closes with the dialect's handshake
	soakDropHandshake                     // sends part of its handshake and hangs up
	soakDropMessage                       // hangs up in the middle of a message
	soakDropSilently                      // hangs up between messages, without a close
)

// soakResult is what a client reports.
type soakResult struct {
	accepted    bool // the handshake completed
	partialKey3 bool // hixie-76 headers sent with part of key3 only
	msgs        int  // messages echoed and checked
	err         error
}

type soakClient struct {
	id       int
	kind     soakKind
	behavior soakBehavior
	addr     string
	rng      *rand.Rand
	conn     net.Conn
	br       *bufio.Reader

	// permessage-deflate
	deflate        bool
	clientTakeover bool   // our compressor keeps its context
	serverTakeover bool   // the server's messages may refer to earlier ones
	sent           []byte // what we sent compressed, the last 32 KiB
	history        []byte // what the server sent compressed, the last 32 KiB
}

func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test skipped in -short mode")
	}
	n := *soakConns
	if n <= 0 {
		n = 5000
		if soakRaceEnabled() {
			n = 2000
		}
	}
	soakRaiseFileLimit(t, uint64(3*n+1000))

	// The runtime keeps the descriptor of every goroutine that ever ran, for
	// reuse: have as many as the test will run exist already, so that the
	// heap's base includes them.
	soakWarmGoroutines(2*n + 200)
	runtime.GC()
	runtime.GC()
	baseGoroutines := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeap := ms.HeapInuse
	start := time.Now()

	h := &Handler{
		Serve:            echoMessages,
		Compression:      &CompressionOptions{ContextTakeover: true},
		HandshakeTimeout: 10 * time.Second,
		CloseTimeout:     10 * time.Second,
	}
	inMode(t, h, &echoEvents)
	srv := httptest.NewServer(h)
	serverClosed := false
	defer func() {
		if !serverClosed {
			srv.Close()
		}
	}()
	addr := srv.Listener.Addr().String()

	// Every client connects (a bounded number handshaking at a time, not
	// to overflow the listen backlog), echoes a first message and waits
	// until all are connected; then all echo the rest at once and close.
	dialing := make(chan struct{}, 64)
	var connected sync.WaitGroup
	release := make(chan struct{})
	results := make([]soakResult, n)
	var done sync.WaitGroup
	var kinds [numSoakKinds]int
	var behaviors [4]int
	seed := uint64(time.Now().UnixNano())
	for i := range n {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		c := &soakClient{id: i, kind: soakKind(rng.IntN(int(numSoakKinds))), addr: addr, rng: rng}
		switch r := rng.IntN(100); {
		case r < 4:
			c.behavior = soakDropHandshake
		case r < 8:
			c.behavior = soakDropMessage
		case r < 12:
			c.behavior = soakDropSilently
		}
		kinds[c.kind]++
		behaviors[c.behavior]++
		connected.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			results[i] = c.run(dialing, &connected, release)
		}()
	}
	connected.Wait()
	held := h.Stats().Active
	runtime.ReadMemStats(&ms)
	peakHeap := ms.HeapInuse
	peakGoroutines := runtime.NumGoroutine()
	close(release)
	done.Wait()
	elapsed := time.Since(start)

	var accepted, partialKey3, msgs, failed int
	for _, r := range results {
		if r.accepted {
			accepted++
		}
		if r.partialKey3 {
			partialKey3++
		}
		msgs += r.msgs
		if r.err != nil {
			if failed++; failed <= 10 {
				t.Error(r.err)
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d clients failed (seed %d)", failed, n, seed)
	}

	// Every server connection ends.
	soakPoll(t, "server connections to end", 20*time.Second, func() bool { return h.Stats().Active == 0 })
	stats := h.Stats()
	if stats.Accepted != uint64(accepted) {
		t.Errorf("server accepted %d handshakes, clients completed %d", stats.Accepted, accepted)
	}
	if closed := causeTotal(stats.Closed); closed != stats.Accepted {
		t.Errorf("%d closes counted by cause, %d connections accepted: %+v", closed, stats.Accepted, stats.Closed)
	}
	if refused := stats.Refused.BadHandshake; refused != uint64(partialKey3) {
		t.Errorf("server refused %d handshakes as bad, %d clients sent part of key3", refused, partialKey3)
	}
	srv.Close()
	serverClosed = true

	// And gives back its goroutines and its memory.
	var goroutines int
	soakPoll(t, "goroutines to return to their base", 20*time.Second, func() bool {
		goroutines = runtime.NumGoroutine()
		return goroutines <= baseGoroutines
	})
	var heap uint64
	// Leeway for what the runtime and the pools keep: a leak of 256 bytes
	// per connection stands out.
	heapSlack := uint64(2<<20 + 256*n)
	soakPoll(t, "heap to return near its base", 10*time.Second, func() bool {
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = ms.HeapInuse
		return heap <= baseHeap+heapSlack
	})
	t.Logf("%d connections in %v, %d held at once, %d messages echoed, race %v, seed %d; kinds %v, behaviors %v",
		n, elapsed.Round(time.Millisecond), held, msgs, soakRaceEnabled(), seed, kinds, behaviors)
	t.Logf("server stats %+v", stats)
	t.Logf("goroutines: base %d, peak %d, end %d; heap in use: base %.1f MiB, peak %.1f MiB, end %.1f MiB",
		baseGoroutines, peakGoroutines, goroutines, soakMiB(baseHeap), soakMiB(peakHeap), soakMiB(heap))
}

func soakMiB(n uint64) float64 { return float64(n) / (1 << 20) }

// soakWarmGoroutines runs n goroutines at once, then lets them end.
func soakWarmGoroutines(n int) {
	var started, ended sync.WaitGroup
	stop := make(chan struct{})
	started.Add(n)
	ended.Add(n)
	for range n {
		go func() {
			started.Done()
			<-stop
			ended.Done()
		}()
	}
	started.Wait()
	close(stop)
	ended.Wait()
}

// soakPoll waits until cond holds, failing t after d.
func soakPoll(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			buf := make([]byte, 64<<10)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("timed out after %v waiting for %s; goroutines:\n%s", d, what, buf)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run plays the client; connected is signalled once it is connected and
// has echoed its first message (or has given up), and release lets it go on.
func (c *soakClient) run(dialing chan struct{}, connected *sync.WaitGroup, release chan struct{}) (res soakResult) {
	signalled := false
	signal := func() {
		if !signalled {
			signalled = true
			connected.Done()
		}
	}
	defer signal()
	defer func() {
		if c.conn != nil {
			c.conn.Close()
		}
		if res.err != nil {
			res.err = fmt.Errorf("client %d, %s, behavior %d, after %d messages: %w", c.id, soakKindNames[c.kind], c.behavior, res.msgs, res.err)
		}
	}()

	dialing <- struct{}{}
	conn, err := net.DialTimeout("tcp", c.addr, 20*time.Second)
	if err != nil {
		<-dialing
		return soakResult{err: err}
	}
	c.conn, c.br = conn, bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	req, check := c.handshake()
	if c.behavior == soakDropHandshake {
		<-dialing
		cut := 1 + c.rng.IntN(len(req)-1)
		if c.kind == soakHixie76 && c.rng.IntN(2) == 0 {
			cut = len(req) - 1 - c.rng.IntN(8) // the headers, part of key3
		}
		res.partialKey3 = c.kind == soakHixie76 && cut >= len(req)-8
		if _, err := conn.Write(req[:cut]); err == nil && c.rng.IntN(2) == 0 {
			// Let the server wait for the rest a little.
			time.Sleep(time.Duration(c.rng.IntN(2000)) * time.Microsecond)
		}
		return res
	}
	if _, err := conn.Write(req); err != nil {
		<-dialing
		return soakResult{err: err}
	}
	err = check()
	<-dialing
	if err != nil {
		return soakResult{err: fmt.Errorf("handshake: %w", err)}
	}
	res.accepted = true

	count := 3 + c.rng.IntN(4)
	for j := range count {
		if j == 1 {
			signal()
			<-release
		}
		last := j == count-1
		if last && c.behavior == soakDropMessage {
			c.sendPartial()
			return res
		}
		if last && c.behavior == soakDropSilently {
			return res
		}
		if err := c.echo(j); err != nil {
			res.err = fmt.Errorf("message %d: %w", j, err)
			return res
		}
		res.msgs++
	}
	if err := c.close(); err != nil {
		res.err = fmt.Errorf("close: %w", err)
	}
	return res
}

// handshake returns the client's request and a function that reads and
// checks the server's answer.
func (c *soakClient) handshake() ([]byte, func() error) {
	resource := fmt.Sprintf("/soak/%d?kind=%d", c.id, c.kind)
	lines := []string{"GET " + resource + " HTTP/1.1", "Host: " + c.addr}
	var key, key3 string
	var n1, n2 uint32
	switch c.kind {
	case soakHixie75:
		lines = append(lines, "Upgrade: WebSocket", "Connection: Upgrade", "Origin: http://"+c.addr)
	case soakHixie76:
		var k1, k2 string
		k1, n1 = soakHixieKey(c.rng)
		k2, n2 = soakHixieKey(c.rng)
		b := make([]byte, 8)
		for i := range b {
			b[i] = byte(c.rng.Uint32())
		}
		key3 = string(b)
		lines = append(lines, "Upgrade: WebSocket", "Connection: Upgrade", "Origin: http://"+c.addr,
			"Sec-WebSocket-Key1: "+k1, "Sec-WebSocket-Key2: "+k2)
	default:
		raw := make([]byte, 16)
		for i := range raw {
			raw[i] = byte(c.rng.Uint32())
		}
		key = base64.StdEncoding.EncodeToString(raw)
		version, origin := "13", "Origin"
		switch c.kind {
		case soakHybi07:
			version, origin = "7", "Sec-WebSocket-Origin"
		case soakHybi08:
			version, origin = "8", "Sec-WebSocket-Origin"
		}
		lines = append(lines, "Upgrade: websocket", "Connection: Upgrade", origin+": http://"+c.addr,
			"Sec-WebSocket-Key: "+key, "Sec-WebSocket-Version: "+version)
		switch c.kind {
		case soakDeflate:
			lines = append(lines, "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
		case soakDeflateNoCtx:
			lines = append(lines, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover")
		}
	}
	req := []byte(strings.Join(lines, "\r\n") + "\r\n\r\n" + key3)
	check := func() error {
		status, fields, err := c.readHead()
		if err != nil {
			return err
		}
		location := "ws://" + c.addr + resource
		switch c.kind {
		case soakHixie75:
			if status != "HTTP/1.1 101 Web Socket Protocol Handshake" || fields["websocket-location"] != location || fields["websocket-origin"] != "http://"+c.addr {
				return fmt.Errorf("hixie-75 answer %q %v", status, fields)
			}
		case soakHixie76:
			if status != "HTTP/1.1 101 WebSocket Protocol Handshake" || fields["sec-websocket-location"] != location || fields["sec-websocket-origin"] != "http://"+c.addr {
				return fmt.Errorf("hixie-76 answer %q %v", status, fields)
			}
			var got [16]byte
			if _, err := io.ReadFull(c.br, got[:]); err != nil {
				return err
			}
			var b [16]byte
			binary.BigEndian.PutUint32(b[0:], n1)
			binary.BigEndian.PutUint32(b[4:], n2)
			copy(b[8:], key3)
			if want := md5.Sum(b[:]); got != want {
				return fmt.Errorf("hixie-76 challenge answer %x, want %x", got, want)
			}
		default:
			sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
			if !strings.HasPrefix(status, "HTTP/1.1 101 ") || fields["sec-websocket-accept"] != base64.StdEncoding.EncodeToString(sum[:]) {
				return fmt.Errorf("answer %q %v", status, fields)
			}
			ext := fields["sec-websocket-extensions"]
			switch c.kind {
			case soakDeflate, soakDeflateNoCtx:
				if !strings.HasPrefix(ext, "permessage-deflate") {
					return fmt.Errorf("deflate offered, answer %q", ext)
				}
				c.deflate = true
				c.clientTakeover = !strings.Contains(ext, "client_no_context_takeover")
				c.serverTakeover = !strings.Contains(ext, "server_no_context_takeover")
				if c.kind == soakDeflateNoCtx && (c.clientTakeover || c.serverTakeover) {
					return fmt.Errorf("no context takeover asked, answer %q", ext)
				}
				if m := strings.Index(ext, "client_max_window_bits="); m >= 0 && ext[m+len("client_max_window_bits="):] != "15" {
					return fmt.Errorf("answer %q bounds the client window", ext)
				}
			default:
				if ext != "" {
					return fmt.Errorf("extensions %q answered, none offered", ext)
				}
			}
		}
		return nil
	}
	return req, check
}

// soakHixieKey makes a Sec-WebSocket-Key1/2 value as a browser did, and
// returns the number it stands for.
func soakHixieKey(rng *rand.Rand) (string, uint32) {
	spaces := 1 + rng.IntN(12)
	n := uint32(rng.Uint64N(uint64(math.MaxUint32/uint32(spaces)) + 1))
	key := []byte(strconv.FormatUint(uint64(n)*uint64(spaces), 10))
	for range 1 + rng.IntN(12) {
		const others = "!\"#$%&'()*+,-./:;<=>?@ABCXYZ[]^_`abcxyz{|}~"
		ch := others[rng.IntN(len(others))]
		i := rng.IntN(len(key) + 1)
		key = append(key[:i], append([]byte{ch}, key[i:]...)...)
	}
	for range spaces {
		i := 1 + rng.IntN(len(key)-1)
		key = append(key[:i], append([]byte{' '}, key[i:]...)...)
	}
	return string(key), n
}

// readHead reads a response head: its status line and fields (names
// lower-cased).
func (c *soakClient) readHead() (string, map[string]string, error) {
	fields := map[string]string{}
	status := ""
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return "", nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return status, fields, nil
		}
		if status == "" {
			status = line
			continue
		}
		name, value, _ := strings.Cut(line, ": ")
		fields[strings.ToLower(name)] = value
	}
}

var soakRunes = []rune("abcdefghijklmnopqrstuvwxyz0123456789 \x00éß✓€中文🎉😀")

// message makes the content of message j: unique, of a random size up to
// 4 KiB, text (always for hixie) or binary.
func (c *soakClient) message(j int) (MessageType, []byte) {
	size := c.rng.IntN(1 + c.rng.IntN(4096))
	b := fmt.Appendf(nil, "c%d m%d:", c.id, j)
	if c.kind.hybi() && c.rng.IntN(3) == 0 {
		for len(b) < size {
			b = append(b, byte(c.rng.Uint32()))
		}
		return BinaryMessage, b
	}
	repeat := c.rng.IntN(3) == 0 // compressible
	r := soakRunes[c.rng.IntN(len(soakRunes))]
	for len(b) < size {
		if !repeat {
			r = soakRunes[c.rng.IntN(len(soakRunes))]
		}
		b = utf8.AppendRune(b, r)
	}
	return TextMessage, b
}

// frameBytes is a masked client frame.
func (c *soakClient) frameBytes(fin bool, rsv1 bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], c.rng.Uint32())
	return maskedFrame(b0, payload, key)
}

// soakCompressors pools compressors: each weighs most of a MiB.
var soakCompressors = sync.Pool{New: func() any {
	w, _ := stdflate.NewWriter(nil, stdflate.BestSpeed)
	return w
}}

// compress deflates a message as RFC 7692 says, without the final 4
// bytes. With context takeover some messages refer to the ones sent
// before, as the server's decompressor must allow.
func (c *soakClient) compress(p []byte) []byte {
	var buf bytes.Buffer
	if c.clientTakeover && len(c.sent) > 0 && c.rng.IntN(2) == 0 {
		w, _ := stdflate.NewWriterDict(&buf, stdflate.BestSpeed, c.sent)
		w.Write(p)
		w.Flush()
	} else {
		w := soakCompressors.Get().(*stdflate.Writer)
		w.Reset(&buf)
		w.Write(p)
		w.Flush()
		w.Reset(nil)
		soakCompressors.Put(w)
	}
	if c.clientTakeover {
		c.sent = soakWindow(append(c.sent, p...))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// soakWindow keeps the last 32 KiB of a history, the LZ77 window.
func soakWindow(b []byte) []byte {
	if len(b) > 32<<10 {
		return bytes.Clone(b[len(b)-32<<10:])
	}
	return b
}

// wire encodes a message in the client's framing: hybi messages are
// compressed at random (when negotiated), cut in up to 3 frames and may
// have a ping between the frames.
func (c *soakClient) wire(typ MessageType, msg []byte) []byte {
	if !c.kind.hybi() {
		return append(append([]byte{0x00}, msg...), 0xFF)
	}
	payload, compressed := msg, false
	if c.deflate && c.rng.IntN(3) != 0 {
		payload, compressed = c.compress(msg), true
	}
	parts := 1 + c.rng.IntN(3)
	var out []byte
	for i := range parts {
		chunk := payload[len(payload)*i/parts : len(payload)*(i+1)/parts]
		op := byte(0)
		if i == 0 {
			op = byte(typ)
		}
		out = append(out, c.frameBytes(i == parts-1, compressed && i == 0, op, chunk)...)
		if i < parts-1 && c.rng.IntN(2) == 0 {
			out = append(out, c.frameBytes(true, false, 0x9, []byte("ping"))...)
		}
	}
	return out
}

// echo sends message j and checks the server's echo of it.
func (c *soakClient) echo(j int) error {
	typ, msg := c.message(j)
	if _, err := c.conn.Write(c.wire(typ, msg)); err != nil {
		return err
	}
	gotType, got, err := c.read()
	if err != nil {
		return err
	}
	if gotType != typ || !bytes.Equal(got, msg) {
		return fmt.Errorf("sent %v of %d bytes %.40q, echoed %v of %d bytes %.40q", typ, len(msg), msg, gotType, len(got), got)
	}
	return nil
}

// sendPartial sends part of a message and no more.
func (c *soakClient) sendPartial() {
	typ, msg := c.message(99)
	wire := c.wire(typ, append(msg, "...and more"...))
	c.conn.Write(wire[:len(wire)-1-c.rng.IntN(min(len(wire)-1, 8))])
}

// read reads a server message, skipping pongs.
func (c *soakClient) read() (MessageType, []byte, error) {
	if !c.kind.hybi() {
		b, err := c.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		if b != 0x00 {
			return 0, nil, fmt.Errorf("hixie frame type %#x", b)
		}
		msg, err := c.br.ReadBytes(0xFF)
		if err != nil {
			return 0, nil, err
		}
		return TextMessage, msg[:len(msg)-1], nil
	}
	var typ MessageType
	var msg []byte
	compressed, started := false, false
	for {
		fin, rsv, op, payload, err := c.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch {
		case op == 0xA:
			continue
		case op >= 0x8:
			return 0, nil, fmt.Errorf("control frame %#x %q while reading a message", op, payload)
		case rsv&^4 != 0 || rsv != 0 && (!c.deflate || op == 0):
			return 0, nil, fmt.Errorf("server frame with RSV %#x, op %#x", rsv, op)
		case started != (op == 0):
			return 0, nil, fmt.Errorf("server frame of op %#x, in a message %v", op, started)
		}
		if !started {
			typ, compressed, started = MessageType(op), rsv != 0, true
		}
		msg = append(msg, payload...)
		if fin {
			break
		}
	}
	if !compressed {
		return typ, msg, nil
	}
	var dict []byte
	if c.serverTakeover {
		dict = c.history
	}
	r := stdflate.NewReaderDict(io.MultiReader(bytes.NewReader(msg), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff})), dict)
	out, err := io.ReadAll(r)
	if err != nil {
		return 0, nil, fmt.Errorf("inflating the server's message: %w", err)
	}
	if c.serverTakeover {
		c.history = soakWindow(append(c.history, out...))
	}
	return typ, out, nil
}

func (c *soakClient) readFrame() (fin bool, rsv, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(c.br, h[:]); err != nil {
		return
	}
	fin, rsv, op = h[0]&0x80 != 0, h[0]>>4&7, h[0]&0xF
	if h[1]&0x80 != 0 {
		return fin, rsv, op, nil, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err = io.ReadFull(c.br, b[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 16<<20 {
		return fin, rsv, op, nil, fmt.Errorf("server frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return
}

// close runs the dialect's closing handshake, as the client that starts it.
func (c *soakClient) close() error {
	switch c.kind {
	case soakHixie75:
		return nil // no closing handshake: the deferred TCP close
	case soakHixie76:
		if _, err := c.conn.Write([]byte{0xFF, 0x00}); err != nil {
			return err
		}
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return err
		}
		if b != [2]byte{0xFF, 0x00} {
			return fmt.Errorf("answered the close with %x", b)
		}
	default:
		if _, err := c.conn.Write(c.frameBytes(true, false, 0x8, append([]byte{0x03, 0xE8}, "bye"...))); err != nil {
			return err
		}
		for {
			_, _, op, payload, err := c.readFrame()
			if err != nil {
				return err
			}
			if op == 0xA {
				continue
			}
			if op != 0x8 || string(payload) != "\x03\xe8bye" {
				return fmt.Errorf("answered the close with op %#x %q", op, payload)
			}
			break
		}
	}
	// The server closes TCP first, with nothing more.
	rest, err := io.ReadAll(c.br)
	if err != nil {
		return fmt.Errorf("waiting for the server to close TCP: %w", err)
	}
	if len(rest) > 0 {
		return fmt.Errorf("%d bytes after the close", len(rest))
	}
	return nil
}
