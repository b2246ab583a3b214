//go:build linux

package servers

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/hybi/websocket/bench/loadgen"
)

// serveFloor is no library: it is about the least an echo over RFC 6455
// can cost on epoll from Go, the floor against which the libraries' CPU
// per echo is to be read. Its handshake is read on a goroutine, and the
// socket then handed to one of a poller per core, which takes its events
// as the engine does (raw epoll_wait, parked in Go's poller while there
// are none), reads what a socket has and writes each whole frame back
// unmasked: one read and one write per message, raw system calls, nothing
// else. It serves the echo tests' clients only: no extension, fragment,
// UTF-8 check or limit; a close frame is echoed, then the connection
// closed, as is one sending what it cannot parse.
func serveFloor(ln net.Listener, mode Mode) error {
	pollers := make([]*floorPoller, runtime.GOMAXPROCS(0))
	for i := range pollers {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		syscall.SetNonblock(epfd, true)
		file := os.NewFile(uintptr(epfd), "epoll") // waited for in Go's poller
		defer file.Close()
		raw, err := file.SyscallConn()
		if err != nil {
			return err
		}
		pollers[i] = &floorPoller{epfd: epfd, conns: map[int32]*floorConn{}}
		go pollers[i].run(raw)
	}
	for i := 0; ; i++ {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go pollers[i%len(pollers)].add(conn)
	}
}

// floorConn is a socket's unparsed input.
type floorConn struct{ in []byte }

type floorPoller struct {
	epfd  int
	conns map[int32]*floorConn // the poller goroutine's own
	mu    sync.Mutex
	added []int32 // registered by add, not yet in conns (mu)
}

// add answers conn's handshake and moves its socket to p.
func (p *floorPoller) add(conn net.Conn) {
	defer conn.Close()
	req, err := http.ReadRequest(bufio.NewReader(conn))
	if err != nil {
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + loadgen.AcceptKey(req.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")); err != nil {
		return
	}
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		return
	}
	fd := -1
	raw.Control(func(s uintptr) { fd, _ = syscall.Dup(int(s)) }) // nonblocking: the flag is the socket's
	if fd < 0 {
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &ev) != nil {
		syscall.Close(fd)
		return
	}
	// Its events, level-triggered, come again until the poller finds it.
	p.mu.Lock()
	p.added = append(p.added, int32(fd))
	p.mu.Unlock()
}

// conn is fd's connection; nil if add has not listed it yet.
func (p *floorPoller) conn(fd int32) *floorConn {
	if c := p.conns[fd]; c != nil {
		return c
	}
	p.mu.Lock()
	for _, a := range p.added {
		p.conns[a] = &floorConn{}
	}
	p.added = p.added[:0]
	p.mu.Unlock()
	return p.conns[fd]
}

func (p *floorPoller) drop(fd int32) {
	delete(p.conns, fd)
	syscall.Close(int(fd)) // removes it from the epoll set
}

// run serves p's sockets. Events ready are taken with a raw system call,
// which the scheduler does not see; while there are none, it waits in Go's
// poller for the epoll descriptor to be readable, as the engine does.
func (p *floorPoller) run(epoll syscall.RawConn) {
	events := make([]syscall.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 64<<10)
	for {
		var n int
		err := epoll.Read(func(epfd uintptr) bool {
			r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, epfd,
				uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
			n = int(r)
			return errno == 0 && n > 0
		})
		if err != nil {
			return // the listener closed: the process ends
		}
		for _, ev := range events[:n] {
			c := p.conn(ev.Fd)
			if c == nil {
				continue
			}
			var ok bool
			if out, ok = c.echo(int(ev.Fd), buf, out[:0]); !ok {
				p.drop(ev.Fd)
			}
		}
	}
}

// echo reads what fd has and writes back its whole frames, keeping a
// partial one; false: the connection is to close.
func (c *floorConn) echo(fd int, buf, out []byte) ([]byte, bool) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	n := int(r)
	if errno == syscall.EAGAIN {
		return out, true
	}
	if errno != 0 || n == 0 {
		return out, false
	}
	in := buf[:n]
	if len(c.in) > 0 {
		c.in = append(c.in, in...)
		in = c.in
	}
	for {
		frame, size := floorFrame(in)
		if size == 0 {
			break
		}
		if size < 0 {
			return out, false
		}
		out = append(out, frame...)
		if frame[0]&0x0f == 0x8 {
			floorWrite(fd, out)
			return out, false
		}
		in = in[size:]
	}
	c.in = append(c.in[:0], in...)
	return out, floorWrite(fd, out)
}

// floorWrite writes out to fd; false if it could not: a full socket too,
// as the echo clients read every reply.
func floorWrite(fd int, out []byte) bool {
	for len(out) > 0 {
		w, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&out[0])), uintptr(len(out)))
		if errno != 0 {
			return false
		}
		out = out[w:]
	}
	return true
}

// floorFrame parses the masked client frame at the start of in and
// returns it unmasked, as the server's frame, in place, with the bytes it
// took; 0 if it is not whole yet, -1 if it is not a client's frame.
func floorFrame(in []byte) ([]byte, int) {
	if len(in) < 2 {
		return nil, 0
	}
	if in[1]&0x80 == 0 {
		return nil, -1
	}
	size, head := int(in[1]&0x7f), 2
	switch size {
	case 126:
		if len(in) < 4 {
			return nil, 0
		}
		size, head = int(in[2])<<8|int(in[3]), 4
	case 127:
		return nil, -1 // the echo tests send no frame of 64 KiB
	}
	if len(in) < head+4+size {
		return nil, 0
	}
	mask := in[head : head+4]
	payload := in[head+4 : head+4+size]
	for i := range payload {
		payload[i] ^= mask[i&3]
	}
	// The server's header (unmasked) is written over the client's, before
	// the payload.
	frame := in[4 : head+4+size]
	frame[0] = in[0]
	if head == 2 {
		frame[1] = byte(size)
	} else {
		frame[1], frame[2], frame[3] = 126, byte(size>>8), byte(size)
	}
	return frame, head + 4 + size
}
