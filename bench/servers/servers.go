// Package servers holds one WebSocket echo server per library compared by
// the harness, and a broadcast server for those with a broadcast facility,
// each written the way that library's own documentation recommends, and
// the plumbing to run one as a process: listen, print the address, serve
// until told to stop.
package servers

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"syscall"
	"time"
)

// Mode is the permessage-deflate setting of an echo server, or Broadcast.
type Mode string

const (
	None       Mode = "none"       // no compression
	NoTakeover Mode = "notakeover" // permessage-deflate without context takeover
	Takeover   Mode = "takeover"   // permessage-deflate with context takeover
)

// ReadLimit is the largest message every server accepts.
const ReadLimit = 64 << 20

// Libs lists the libraries, this one first.
var Libs = []string{"hybi", "hybi-ev", "gorilla", "coder", "gobwas", "gws", "nbio"}

// Floor is the reference server that is no library (serveFloor): named
// only when asked for.
const Floor = "floor"

type server struct {
	modes     []Mode
	serve     func(ln net.Listener, mode Mode) error
	broadcast func(ln net.Listener) error // the Broadcast mode, if the library has one
}

var registry = map[string]server{
	"hybi":    {[]Mode{None, NoTakeover, Takeover}, serveHybi, broadcastHybi},
	"gorilla": {[]Mode{None, NoTakeover}, serveGorilla, broadcastGorilla}, // gorilla negotiates no context takeover only
	"coder":   {[]Mode{None, NoTakeover, Takeover}, serveCoder, nil},
	"gobwas":  {[]Mode{None, NoTakeover}, serveGobwas, nil}, // wsflate's helpers assume no context takeover
	"gws":     {[]Mode{None, NoTakeover, Takeover}, serveGws, broadcastGws},
	"nbio":    {[]Mode{None, NoTakeover}, serveNbioEcho, broadcastNbio}, // nbio negotiates no context takeover only
	"hybi-ev": {[]Mode{None, NoTakeover, Takeover}, serveHybiEv, broadcastHybiEv},
	Floor:     {[]Mode{None}, serveFloor, nil},
}

// Supports reports whether lib has a server for mode.
func Supports(lib string, mode Mode) bool {
	s, ok := registry[lib]
	if mode == Broadcast {
		return ok && s.broadcast != nil
	}
	return ok && slices.Contains(s.modes, mode)
}

// Serve serves lib's server for mode on ln until ln is closed: WebSocket
// echo, or the broadcast server (mode Broadcast).
func Serve(ln net.Listener, lib string, mode Mode) error {
	s, ok := registry[lib]
	if !ok {
		return fmt.Errorf("unknown library %q (have %v)", lib, Libs)
	}
	if !Supports(lib, mode) {
		return fmt.Errorf("%s: mode %q not supported (have %v)", lib, mode, s.modes)
	}
	if mode == Broadcast {
		return s.broadcast(ln)
	}
	return s.serve(ln, mode)
}

// RaiseFileLimit raises the soft limit of open files to the hard limit.
func RaiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}

// Main listens on addr, prints the address it got on out (one line) and
// serves lib's server for mode. If stdin is non-nil, it returns once stdin
// reaches EOF, so a server started by the harness dies with it.
func Main(lib string, mode Mode, addr string, out io.Writer, stdin io.Reader) error {
	if _, ok := registry[lib]; !ok {
		return fmt.Errorf("unknown library %q (have %v)", lib, Libs)
	}
	if !Supports(lib, mode) {
		return fmt.Errorf("%s: mode %q not supported", lib, mode)
	}
	if _, err := RaiseFileLimit(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, ln.Addr().String()); err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- Serve(ln, lib, mode) }()
	if stdin == nil {
		return <-errc
	}
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(stdin))
		errc <- nil
	}()
	err = <-errc
	_ = ln.Close()
	return err
}

// httpServe serves h on ln the way a plain net/http program does.
func httpServe(ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	err := srv.Serve(ln)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
