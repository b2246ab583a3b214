package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// CompressionOptions configure permessage-deflate (RFC 7692).
//
// Without context takeover a connection holds no compression memory at all
// between messages: messages are compressed and inflated by pooled
// compressors and decompressors. With context takeover
// each message may refer to the ones before, which compresses chatty
// traffic much better; a connection then keeps the recent history of both
// directions: at most 4 KiB of what it sent, plus the client's window (32
// KiB, or 2^MaxWindowBits when the client lets the server bound it, as
// browsers do), each in a buffer an eighth larger.
type CompressionOptions struct {
	// ContextTakeover keeps the LZ77 history between messages.
	ContextTakeover bool

	// Threshold is the size below which messages are sent uncompressed
	// (0: DefaultCompressionThreshold; negative: compress everything).
	Threshold int

	// Level is the flate level, 1 (fastest; 0 means 1) to 9 (smallest).
	// Windows below 15 bits have a single level of their own.
	Level int

	// MaxWindowBits (8-15; 0: 15) caps the LZ77 window of both directions
	// where the client lets the server choose: it bounds the history a
	// connection keeps with ContextTakeover.
	MaxWindowBits int
}

// DefaultCompressionThreshold is the default size below which messages go
// uncompressed: deflate's overhead outweighs its gain on tiny messages.
const DefaultCompressionThreshold = 128

// deflateParams are the parameters in force on a connection.
type deflateParams struct {
	serverNoTakeover, clientNoTakeover bool
	serverBits, clientBits             int // window bits in use
}

// swapSides is p as the client sees it: newDeflater and newInflater take
// the server's view, in which the server's window is the one it sends with.
func (p deflateParams) swapSides() deflateParams {
	return deflateParams{
		serverNoTakeover: p.clientNoTakeover, clientNoTakeover: p.serverNoTakeover,
		serverBits: p.clientBits, clientBits: p.serverBits,
	}
}

// parseExtensions splits a Sec-WebSocket-Extensions field into offers:
// each an extension name and its parameters (value "" when absent).
// Quoted values are unquoted; a malformed offer comes back with ok false.
type extensionOffer struct {
	name   string
	params []extensionParam
	ok     bool
}

type extensionParam struct {
	name, value string
	hasValue    bool
}

func parseExtensions(values []string) []extensionOffer {
	var offers []extensionOffer
	for _, v := range values {
		for _, element := range splitOutsideQuotes(v, ',') {
			parts := splitOutsideQuotes(element, ';')
			offer := extensionOffer{name: strings.TrimSpace(parts[0]), ok: true}
			if !isToken(offer.name) {
				if offer.name == "" && len(parts) == 1 {
					continue // empty list element
				}
				offer.ok = false
			}
			for _, p := range parts[1:] {
				name, value, hasValue := strings.Cut(p, "=")
				param := extensionParam{name: strings.TrimSpace(name), hasValue: hasValue}
				if hasValue {
					var ok bool
					if param.value, ok = unquoteToken(strings.TrimSpace(value)); !ok {
						offer.ok = false
					}
				}
				if !isToken(param.name) {
					offer.ok = false
				}
				offer.params = append(offer.params, param)
			}
			offers = append(offers, offer)
		}
	}
	return offers
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted string.
func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unquoteToken returns a parameter value: a token, or a quoted string whose
// content is a token (RFC 6455 section 9.1).
func unquoteToken(v string) (string, bool) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(v)-1; i++ {
			if v[i] == '\\' {
				i++
				if i == len(v)-1 {
					return "", false
				}
			}
			b.WriteByte(v[i])
		}
		v = b.String()
	}
	return v, isToken(v)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7F || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}

// windowBits parses a window size parameter: 8 to 15, no leading zero.
func windowBits(v string) (int, bool) {
	if len(v) == 0 || len(v) > 2 || v[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 8 && n <= 15
}

// negotiateDeflate accepts the first permessage-deflate offer whose
// parameters are all known and valid, and returns the parameters in force
// and the response element; ok is false when no offer is acceptable.
func negotiateDeflate(offers []extensionOffer, opts *CompressionOptions) (p deflateParams, response string, ok bool) {
	maxBits := opts.MaxWindowBits
	if maxBits < 8 || maxBits > 15 {
		maxBits = 15
	}
next:
	for _, offer := range offers {
		if offer.name != "permessage-deflate" || !offer.ok {
			continue
		}
		p = deflateParams{serverBits: maxBits, clientBits: 15}
		seen := map[string]bool{}
		var serverBitsOffered, clientBitsOffered bool
		for _, param := range offer.params {
			if seen[param.name] {
				continue next // a parameter may appear once (RFC 7692 section 7)
			}
			seen[param.name] = true
			switch param.name {
			case "server_no_context_takeover", "client_no_context_takeover":
				if param.hasValue {
					continue next
				}
				if param.name == "server_no_context_takeover" {
					p.serverNoTakeover = true
				} else {
					p.clientNoTakeover = true
				}
			case "server_max_window_bits":
				bits, valid := windowBits(param.value)
				if !param.hasValue || !valid {
					continue next
				}
				p.serverBits, serverBitsOffered = min(bits, maxBits), true
			case "client_max_window_bits":
				clientBitsOffered = true
				if param.hasValue {
					bits, valid := windowBits(param.value)
					if !valid {
						continue next
					}
					p.clientBits = bits
				}
				p.clientBits = min(p.clientBits, maxBits)
			default:
				continue next
			}
		}
		if !opts.ContextTakeover {
			p.serverNoTakeover, p.clientNoTakeover = true, true
		}
		var b strings.Builder
		b.WriteString("permessage-deflate")
		if p.serverNoTakeover {
			b.WriteString("; server_no_context_takeover")
		}
		if p.clientNoTakeover {
			b.WriteString("; client_no_context_takeover")
		}
		if serverBitsOffered {
			b.WriteString("; server_max_window_bits=" + strconv.Itoa(p.serverBits))
		}
		if clientBitsOffered {
			b.WriteString("; client_max_window_bits=" + strconv.Itoa(p.clientBits))
		}
		return p, b.String(), true
	}
	return deflateParams{}, "", false
}

// deflateTail ends every compressed message on the wire, where it is
// omitted (RFC 7692 section 7.2.1); the final empty stored block after it
// lets the inflater end the message with io.EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

// syncTail ends a deflate sync flush: an empty stored block.
var syncTail = deflateTail[:4]

// withoutSyncTail cuts the sync flush's tail from deflated output.
func withoutSyncTail(b []byte) ([]byte, error) {
	if !bytes.HasSuffix(b, syncTail) {
		return nil, errors.New("websocket: deflate output lacks its sync tail")
	}
	return b[:len(b)-len(syncTail)], nil
}

// maxSentHistory is how much of the previous messages a compressor with
// context takeover refers to: the compressor hashes all of it for each
// message (a pooled compressor starts from it anew), so a longer history
// costs CPU for every message, for a better ratio only when messages
// repeat from further back.
const maxSentHistory = 4 << 10

// deflater compresses the messages of one connection.
type deflater struct {
	answer    string // the Sec-WebSocket-Extensions answer that agreed on params
	params    deflateParams
	level     int
	threshold int
	history   *history // what was sent, with context takeover
}

func newDeflater(p deflateParams, opts *CompressionOptions) *deflater {
	d := &deflater{params: p, level: min(max(opts.Level, flate.BestSpeed), flate.BestCompression), threshold: opts.Threshold}
	if d.threshold == 0 {
		d.threshold = DefaultCompressionThreshold
	}
	if !p.serverNoTakeover {
		d.history = &history{size: min(1<<p.serverBits, maxSentHistory)}
	}
	return d
}

// worthIt reports whether a message of n bytes is to be compressed.
func (d *deflater) worthIt(n int) bool { return n >= d.threshold }

// shrunk reports whether a whole message of n bytes that deflates to m goes
// compressed: only if that made it smaller, unless the threshold is
// negative (compress everything).
func (d *deflater) shrunk(m, n int) bool { return m < n || d.threshold < 0 }

// compress appends the compressed form of p, one part of a message, to dst.
// The result ends with the 4-byte tail 0x00 0x00 0xff 0xff, which is
// stripped from the message's last part only. With context takeover, what
// is sent compressed must then be recorded with sent.
func (d *deflater) compress(dst *bytes.Buffer, p []byte) error {
	var dict []byte
	if d.history != nil {
		dict = d.history.bytes()
	}
	return deflate(dst, p, dict, d.params.serverBits, d.level)
}

// sent records p, sent compressed, in the history the peer's decompressor
// keeps too (an uncompressed message is not part of it).
func (d *deflater) sent(p []byte) {
	if d.history != nil {
		d.history.write(p)
	}
}

// deflate appends p compressed with a window of 2^bits, referring to dict
// as what came before, and ends with a sync flush. It uses a pooled
// compressor, whose tables live on the heap: klauspost's stateless encoder
// keeps a 16 KiB table on the stack, which grew the stack of every
// goroutine that wrote a compressed message to 32 KiB.
func deflate(dst *bytes.Buffer, p, dict []byte, bits, level int) error {
	w := getFlateWriter(bits, level)
	defer putFlateWriter(bits, level, w)
	w.ResetDict(dst, dict)
	if _, err := w.Write(p); err != nil {
		return err
	}
	return w.Flush()
}

// flateWriters pools compressors by window bits and level.
var flateWriters sync.Map // [2]int{bits, level} -> *sync.Pool

func getFlateWriter(bits, level int) *flate.Writer {
	pool, ok := flateWriters.Load([2]int{bits, level})
	if !ok { // the first use of this setting: the only allocation of a pool
		pool, _ = flateWriters.LoadOrStore([2]int{bits, level}, &sync.Pool{})
	}
	if w, ok := pool.(*sync.Pool).Get().(*flate.Writer); ok {
		return w
	}
	var w *flate.Writer
	if bits == 15 {
		w, _ = flate.NewWriter(nil, level)
	} else {
		w, _ = flate.NewWriterWindow(nil, 1<<bits)
	}
	return w
}

func putFlateWriter(bits, level int, w *flate.Writer) {
	w.Reset(nil)
	pool, _ := flateWriters.Load([2]int{bits, level})
	pool.(*sync.Pool).Put(w)
}

// history keeps the last size bytes written, for context takeover, in one
// piece, so that it serves as a dictionary without a copy per message: its
// buffer is an eighth larger, and the oldest bytes are dropped only when
// that slack is used up.
type history struct {
	size int
	buf  []byte // allocated on first use; holds up to size + size/8 bytes
}

func (h *history) write(p []byte) {
	if h.buf == nil {
		h.buf = make([]byte, 0, h.size+h.size/8)
	}
	if len(p) >= h.size {
		h.buf = append(h.buf[:0], p[len(p)-h.size:]...)
		return
	}
	if len(h.buf)+len(p) > cap(h.buf) {
		keep := h.size - len(p) // of the old history, what stays in the window
		h.buf = h.buf[:copy(h.buf, h.buf[len(h.buf)-keep:])]
	}
	h.buf = append(h.buf, p...)
}

// bytes is the history, oldest first, valid until the next write.
func (h *history) bytes() []byte { return h.buf[max(0, len(h.buf)-h.size):] }

// inflater decompresses the messages of one connection. Between messages
// it holds no decompressor, only the history with context takeover.
type inflater struct {
	history *history // what was received, with context takeover
	src     deflateSource
	br      *bufio.Reader // pooled while a message is read
	fr      io.ReadCloser // pooled while a message is read
}

// deflateSource is a compressed message's payload followed by deflateTail.
type deflateSource struct {
	payload func([]byte) (int, error)
	tail    int // bytes of deflateTail already read
}

func (s *deflateSource) Read(p []byte) (int, error) {
	if s.tail == 0 {
		n, err := s.payload(p)
		if err != io.EOF {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
	n := copy(p, deflateTail[s.tail:])
	if s.tail += n; n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func newInflater(p deflateParams, payload func([]byte) (int, error)) *inflater {
	f := &inflater{src: deflateSource{payload: payload}}
	if !p.clientNoTakeover {
		f.history = &history{size: 1 << p.clientBits}
	}
	return f
}

var (
	flateReaders    sync.Pool
	flateSourceBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}
	noInput         = bytes.NewReader(nil)
)

// start begins inflating the message whose payload src.payload reads.
func (f *inflater) start() {
	var dict []byte // copied by the decompressor's Reset
	if f.history != nil {
		dict = f.history.bytes()
	}
	f.src.tail = 0
	// A *bufio.Reader is what the decompressor reads fastest.
	f.br = flateSourceBufs.Get().(*bufio.Reader)
	f.br.Reset(&f.src)
	if fr, ok := flateReaders.Get().(io.ReadCloser); ok {
		fr.(flate.Resetter).Reset(f.br, dict)
		f.fr = fr
	} else {
		f.fr = flate.NewReaderDict(f.br, dict)
	}
}

// read reads decompressed bytes; io.EOF at the end of the message.
func (f *inflater) read(p []byte) (int, error) {
	n, err := f.fr.Read(p)
	if f.history != nil && n > 0 {
		f.history.write(p[:n])
	}
	var corrupt flate.CorruptInputError
	var internal flate.InternalError
	switch {
	case err == io.EOF:
		f.release()
		// A stream ended by a final block may leave payload unread: skip
		// it, so that the framing stays in step.
		if _, derr := io.Copy(io.Discard, readerFunc(f.src.payload)); derr != nil {
			err = derr
		}
	case errors.As(err, &corrupt), errors.As(err, &internal):
		err = errBadDeflate
	case errors.Is(err, io.ErrUnexpectedEOF) && f.src.tail == len(deflateTail):
		// The whole message and the tail were read, yet the stream goes
		// on: it was cut short, not the connection.
		err = errBadDeflate
	}
	return n, err
}

var errBadDeflate = errors.New("compressed message is not valid deflate data")

// release returns the decompressor and its buffer to their pools.
func (f *inflater) release() {
	if f.fr == nil {
		return
	}
	f.fr.(flate.Resetter).Reset(noInput, nil)
	flateReaders.Put(f.fr)
	f.br.Reset(nil)
	flateSourceBufs.Put(f.br)
	f.fr, f.br = nil, nil
}

// maxWindowBits is MaxWindowBits, 15 unless set to 8-14.
func (opts *CompressionOptions) maxWindowBits() int {
	if opts.MaxWindowBits < 8 || opts.MaxWindowBits > 15 {
		return 15
	}
	return opts.MaxWindowBits
}

// deflateOffer is a client's offer of permessage-deflate: it lets the
// server bound the client's window (client_max_window_bits), asks for no
// context takeover unless opts wants it, and bounds both windows to
// MaxWindowBits when that is under 15.
func deflateOffer(opts *CompressionOptions) string {
	offer := "permessage-deflate"
	if !opts.ContextTakeover {
		offer += "; server_no_context_takeover; client_no_context_takeover"
	}
	if bits := opts.maxWindowBits(); bits < 15 {
		return offer + "; server_max_window_bits=" + strconv.Itoa(bits) + "; client_max_window_bits=" + strconv.Itoa(bits)
	}
	return offer + "; client_max_window_bits"
}

// acceptDeflate checks a server's answer to deflateOffer(opts) against
// what RFC 7692 allows it (section 7.1), and returns the parameters in
// force (the server's view, as negotiateDeflate's), or what is wrong.
func acceptDeflate(values []string, opts *CompressionOptions) (p deflateParams, problem string) {
	answer := parseExtensions(values)
	if len(answer) != 1 || answer[0].name != "permessage-deflate" || !answer[0].ok {
		return p, "the server answered extensions not offered: " + strings.Join(values, ", ")
	}
	bits := opts.maxWindowBits()
	p = deflateParams{serverBits: 15, clientBits: bits}
	seen := map[string]bool{}
	for _, param := range answer[0].params {
		if seen[param.name] {
			return p, "permessage-deflate answer repeats " + param.name
		}
		seen[param.name] = true
		switch param.name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if param.hasValue {
				return p, "permessage-deflate answer gives " + param.name + " a value"
			}
			if param.name == "server_no_context_takeover" {
				p.serverNoTakeover = true
			} else {
				p.clientNoTakeover = true
			}
		case "server_max_window_bits", "client_max_window_bits":
			// The server may bound its own window, and ours, to at most
			// what was offered; a value is required.
			n, valid := windowBits(param.value)
			if !param.hasValue || !valid || n > bits {
				return p, "permessage-deflate answer has an invalid " + param.name
			}
			if param.name == "server_max_window_bits" {
				p.serverBits = n
			} else {
				p.clientBits = n
			}
		default:
			return p, "permessage-deflate answer has an unknown parameter " + param.name
		}
	}
	switch {
	case !opts.ContextTakeover && !p.serverNoTakeover:
		return p, "permessage-deflate answer lacks the server_no_context_takeover offered"
	case bits < 15 && !seen["server_max_window_bits"]:
		return p, "permessage-deflate answer lacks the server_max_window_bits offered"
	}
	p.clientNoTakeover = p.clientNoTakeover || !opts.ContextTakeover
	return p, ""
}
