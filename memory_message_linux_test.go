package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/klauspost/compress/flate"
)

// The ways a large message arrives: in 1-byte RFC 6455 fragments, as one
// hixie-76 text frame, deflated with permessage-deflate.
var largeKinds = []string{"fragments", "hixie", "deflate"}

// largeClient sends large messages from a raw socket, generating them as
// it goes, so that the process holds no copy of them: binary in masked
// 1-byte fragments, printable ASCII in a hixie-76 frame, or text of words
// from a small vocabulary (which deflates about 4 to 1) as deflated frames
// of about 64 KiB.
type largeClient struct {
	*rawClient
	kind    string
	rng     *rand.ChaCha8
	crc     uint32 // of the message so far
	first   bool   // the next frame starts the message
	data    []byte // the message's next bytes
	words   []byte
	wire    []byte
	fw      *flate.Writer
	pending []byte // deflated, not yet framed
}

const largeBatch = 64 << 10

var (
	largeKey   = [4]byte{0x5a, 0x13, 0xc7, 0x88}
	largeWords = strings.Fields("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi")
)

// largeDial starts a server whose connections run serve, with read limit
// limit, and connects a largeClient of kind to it.
func largeDial(t *testing.T, kind string, limit int64, serve func(*Conn)) *largeClient {
	t.Helper()
	h := &Handler{Serve: serve, ReadLimit: limit, CloseTimeout: 100 * time.Millisecond}
	if kind == "deflate" {
		h.Compression = &CompressionOptions{}
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c := &largeClient{kind: kind, rng: rand.NewChaCha8([32]byte{1}),
		data: make([]byte, largeBatch), words: make([]byte, 0, largeBatch+16), wire: make([]byte, 0, 7*largeBatch)}
	switch kind {
	case "fragments":
		c.rawClient = dialDialect(t, srv, RFC6455, "/")
	case "hixie":
		c.rawClient = dialDialect(t, srv, Hixie76, "/")
	case "deflate":
		var ext string
		if c.rawClient, ext = dflDial(t, srv, "permessage-deflate"); ext == "" {
			t.Fatal("permessage-deflate refused")
		}
		c.fw, _ = flate.NewWriter(dflFramer{c}, flate.BestSpeed)
		c.pending = make([]byte, 0, 4*largeBatch)
	}
	c.conn.SetDeadline(time.Now().Add(5 * time.Minute))
	return c
}

// message sends a whole message of n bytes and returns its checksum.
func (c *largeClient) message(n int) uint32 {
	c.begin()
	c.send(n)
	c.end()
	return c.crc
}

func (c *largeClient) begin() {
	c.crc, c.first = 0, true
	switch c.kind {
	case "hixie":
		c.write([]byte{0x00})
	case "deflate":
		c.fw.Reset(dflFramer{c}) // no context takeover: a stream of its own
	}
}

// send sends the message's next n bytes.
func (c *largeClient) send(n int) {
	for n > 0 {
		d := c.next(min(n, largeBatch))
		n -= len(d)
		switch c.kind {
		case "fragments":
			w := c.wire[:0]
			for _, b := range d {
				w = append(w, c.b0(2), 0x81, largeKey[0], largeKey[1], largeKey[2], largeKey[3], b^largeKey[0])
			}
			c.write(w)
		case "hixie":
			c.write(d)
		case "deflate":
			c.fw.Write(d)
		}
	}
}

// b0 is the opcode of the next frame: op if it starts the message, else
// continuation.
func (c *largeClient) b0(op byte) byte {
	if c.first {
		c.first = false
		return op
	}
	return 0
}

// next generates the message's next n bytes.
func (c *largeClient) next(n int) []byte {
	d := c.data[:n]
	c.rng.Read(d)
	switch c.kind {
	case "hixie":
		for i, b := range d {
			d[i] = ' ' + b%95
		}
	case "deflate":
		w := c.words[:0]
		for i := 0; len(w) < n; i++ {
			w = append(append(w, largeWords[d[i]&15]...), ' ')
		}
		copy(d, w)
	}
	c.crc = crc32.Update(c.crc, crc32.IEEETable, d)
	return d
}

// flush puts on the wire all that was sent of a deflated message but the
// 4 bytes that may end it.
func (c *largeClient) flush() {
	if c.fw != nil {
		c.fw.Flush()
		c.emit()
	}
}

func (c *largeClient) end() {
	switch c.kind {
	case "fragments":
		c.write([]byte{0x80 | c.b0(2), 0x80, largeKey[0], largeKey[1], largeKey[2], largeKey[3]})
	case "hixie":
		c.write([]byte{0xFF})
	case "deflate":
		c.fw.Flush()
		if !bytes.HasSuffix(c.pending, syncTail) {
			c.t.Fatalf("deflated message ends with %x", c.pending[max(0, len(c.pending)-4):])
		}
		c.frame(c.pending[:len(c.pending)-4], true)
		c.pending = c.pending[:0]
	}
}

// dflFramer frames what the compressor writes, keeping back the last 4
// bytes: the sync tail the message's last frame goes without.
type dflFramer struct{ c *largeClient }

func (f dflFramer) Write(p []byte) (int, error) {
	c := f.c
	if c.pending = append(c.pending, p...); len(c.pending) > largeBatch {
		c.emit()
	}
	return len(p), nil
}

func (c *largeClient) emit() {
	n := len(c.pending) - 4
	if n > 0 {
		c.frame(c.pending[:n], false)
		c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	}
}

// frame sends p as a masked frame of a compressed text message.
func (c *largeClient) frame(p []byte, fin bool) {
	b0 := c.b0(1 | 0x40)
	if fin {
		b0 |= 0x80
	}
	w := append(c.wire[:0], b0, 0x80|127)
	w = append(append(w, make([]byte, 8)...), largeKey[:]...)
	for i := range 8 {
		w[2+i] = byte(uint64(len(p)) >> (56 - 8*i))
	}
	for i, b := range p {
		w = append(w, b^largeKey[i&3])
	}
	c.write(w)
}

// largeRead is what the server read of a message.
type largeRead struct {
	n    int
	crc  uint32
	same bool  // read into the buffer of the message before
	peak int64 // VmHWM once it was read
	err  error
}

func awaitRead(t *testing.T, reads chan largeRead) largeRead {
	t.Helper()
	select {
	case r := <-reads:
		return r
	case <-time.After(3 * time.Minute):
		t.Fatal("the server read no message")
	}
	return largeRead{}
}

// A message of 2.5 MiB (its first MiB read into a growing slice, the rest
// into chunks) arrives byte-exact through ReadMessage; the next one, read
// with AppendMessage into the buffer that returned, fills it without
// another allocation. No chunk is held afterwards.
func TestLargeMessage(t *testing.T) {
	const size = 5 << 19
	for _, kind := range largeKinds {
		t.Run(kind, func(t *testing.T) {
			reads := make(chan largeRead, 2)
			c := largeDial(t, kind, -1, func(conn *Conn) {
				_, msg, err := conn.ReadMessage()
				reads <- largeRead{n: len(msg), crc: crc32.ChecksumIEEE(msg), err: err}
				if err != nil {
					return
				}
				_, again, err := conn.AppendMessage(msg[:0])
				reads <- largeRead{n: len(again), crc: crc32.ChecksumIEEE(again), same: unsafe.SliceData(again) == unsafe.SliceData(msg), err: err}
			})
			for i := range 2 {
				crc := c.message(size)
				r := awaitRead(t, reads)
				if r.err != nil || r.n != size || r.crc != crc {
					t.Fatalf("message %d: read %d bytes of checksum %08x, %v; want %d bytes of checksum %08x", i, r.n, r.crc, r.err, size, crc)
				}
				if i == 1 && !r.same {
					t.Error("AppendMessage into a buffer with room for the message allocated another")
				}
			}
			if n := chunksHeld.Load(); n != 0 {
				t.Errorf("%d chunks held after the messages were read", n)
			}
		})
	}
}

// A large message that ends badly once its rest is in chunks (the client
// vanishes, exceeds the read limit, sends invalid UTF-8 or deflate data)
// fails the read and leaves no chunk held.
func TestLargeMessageInterrupted(t *testing.T) {
	drop := func(c *largeClient) { c.conn.Close() }
	for _, tc := range []struct {
		name, kind string
		limit      int64
		cut        func(c *largeClient) // what follows the first 1.5 MiB
		code       StatusCode           // 0: io.ErrUnexpectedEOF
	}{
		{"fragments dropped", "fragments", -1, drop, 0},
		// The header of a frame of 1 MiB, which the limit refuses.
		{"fragments over the limit", "fragments", 2 << 20, func(c *largeClient) {
			c.write(append(binary.BigEndian.AppendUint64([]byte{0x80, 0x80 | 127}, 1<<20), largeKey[:]...))
		}, StatusMessageTooBig},
		{"hixie dropped", "hixie", -1, drop, 0},
		{"hixie invalid UTF-8", "hixie", -1, func(c *largeClient) { c.write([]byte("\xc3\x28")) }, StatusInvalidPayload},
		{"deflate dropped", "deflate", -1, drop, 0},
		// After a sync flush, a block of the reserved type 3.
		{"deflate corrupt", "deflate", -1, func(c *largeClient) { c.frame(append(c.pending, 0x06), true) }, StatusInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 1)
			c := largeDial(t, tc.kind, tc.limit, func(conn *Conn) {
				_, _, err := conn.ReadMessage()
				errs <- err
			})
			c.begin()
			c.send(3 << 19)
			c.flush()
			for deadline := time.Now().Add(time.Minute); chunksHeld.Load() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the server never took a chunk for the message")
				}
			}
			tc.cut(c)
			var err error
			select {
			case err = <-errs:
			case <-time.After(time.Minute):
				t.Fatal("the read did not end")
			}
			var pe *ProtocolError
			if tc.code == 0 && !errors.Is(err, io.ErrUnexpectedEOF) || tc.code != 0 && !(errors.As(err, &pe) && pe.Code == tc.code) {
				t.Errorf("read ended with %v, want %v", err, cmpErr(tc.code))
			}
			if n := chunksHeld.Load(); n != 0 {
				t.Errorf("%d chunks held after the read failed", n)
			}
		})
	}
}

func cmpErr(code StatusCode) any {
	if code == 0 {
		return io.ErrUnexpectedEOF
	}
	return code
}

// The peak RSS of the server's process grows by little more than the size
// of a 64 MiB message while it arrives, whichever way it comes. Measured in
// a process of its own (this test binary, running
// TestLargeMessageMemoryHelper), which other tests' garbage cannot blur.
//
// It grows by 68 to 70 MiB: the message, its first MiB read into a growing
// slice and that slice's garbage, a chunk, the client's buffers and the
// runtime's slack. The bound, 1.5 times the size, leaves some 26 MiB to
// spare, yet fails every way of holding the message twice: a doubling
// buffer (130 to 184 MiB before the chunks), or a result cleared, so made
// resident, while the chunks still are (128 MiB).
func TestLargeMessageMemory(t *testing.T) {
	if raceEnabled == 1 {
		t.Skip("under -race RSS counts the detector's shadow memory: CI runs this test without -race (.ci/run)")
	}
	const size = largeMessageSize
	for _, kind := range largeKinds {
		t.Run(kind, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestLargeMessageMemoryHelper$")
			cmd.Env = append(os.Environ(), "WEBSOCKET_LARGE_MESSAGE="+kind)
			out, err := cmd.CombinedOutput()
			m := regexp.MustCompile(`peak RSS growth: (\d+)`).FindSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			growth, _ := strconv.ParseInt(string(m[1]), 10, 64)
			t.Logf("peak RSS growth while a %d MiB message arrived: %.1f MiB (%.2f times its size)",
				size>>20, float64(growth)/(1<<20), float64(growth)/size)
			if growth > size*3/2 {
				t.Errorf("peak RSS grew by %.1f MiB, more than 1.5 times the message's %d MiB", float64(growth)/(1<<20), size>>20)
			}
		})
	}
}

const largeMessageSize = 64 << 20

// TestLargeMessageMemoryHelper is the process of one case of
// TestLargeMessageMemory: it reads one message of largeMessageSize bytes
// with ReadMessage, checks it, and prints its peak RSS growth.
func TestLargeMessageMemoryHelper(t *testing.T) {
	kind := os.Getenv("WEBSOCKET_LARGE_MESSAGE")
	if kind == "" {
		t.Skip("a case of TestLargeMessageMemory, run by it")
	}
	reads := make(chan largeRead, 1)
	c := largeDial(t, kind, -1, func(conn *Conn) {
		_, msg, err := conn.ReadMessage()
		peak := procStatus("VmHWM")
		reads <- largeRead{n: len(msg), crc: crc32.ChecksumIEEE(msg), peak: peak, err: err}
	})
	runtime.GC()
	debug.FreeOSMemory()
	// Writing 5 resets VmHWM to the current RSS.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	base := procStatus("VmHWM")
	crc := c.message(largeMessageSize)
	r := awaitRead(t, reads)
	if r.err != nil || r.n != largeMessageSize || r.crc != crc {
		t.Fatalf("read %d bytes of checksum %08x, %v; want %d bytes of checksum %08x", r.n, r.crc, r.err, largeMessageSize, crc)
	}
	if base <= 0 || r.peak <= 0 {
		t.Fatalf("VmHWM unreadable: %d, %d", base, r.peak)
	}
	fmt.Printf("peak RSS growth: %d\n", r.peak-base)
}

// procStatus is a field of /proc/self/status counted in kB, in bytes; -1
// if unreadable.
func procStatus(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return -1
}
