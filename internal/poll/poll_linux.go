// Package poll runs the event engine's pollers on Linux: a few epoll
// instances (one per processor), each with one goroutine that waits for
// events and runs the work they call for, and a heap of timers.
//
// Work runs inline on the poller's goroutine, the cheapest place for a
// short callback. When a piece of work runs long (a callback that blocks,
// a write to a full socket), a watchdog notices within a few milliseconds
// and hands the poller to a new goroutine, which carries on with the rest
// of the batch of events; the old one finishes its work and ends. So a
// slow callback holds up only its own connection, and no goroutine is
// kept per connection.
//
// The system calls a poller makes without waiting (epoll_wait with no
// timeout, epoll_ctl, the engine's reads, writes and closes of its
// nonblocking sockets, its eventfd's) are raw: the runtime is not
// told of them. Told, it reckons a poller that is
// always busy with them as blocked in a system call, hands its processor
// to another thread, and keeps its monitor waking every 20 µs to do so
// again: on a loaded server that costs more CPU than the calls themselves.
package poll

import (
	"container/heap"
	"errors"
	"math"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Desc is a descriptor registered with a poller. Its work (Run) is
// serialized: it never runs on two goroutines at once, and a request to
// run it while it runs makes it run once more afterwards.
type Desc struct {
	fd         int
	p          *Poller
	run        Runner
	refs       atomic.Int64            // 2 per operation in progress; bit 0: closed
	waiters    atomic.Pointer[waiters] // made by the first blocking operation or deadline
	state      atomic.Int32            // idle, running, again
	hup        atomic.Bool             // the peer hung up or the socket failed
	wantWrite  atomic.Bool             // call Writable when the socket is writable (WantWrite)
	mu         sync.Mutex              // orders Register and Close
	registered bool                    // mu
}

// waiters are where a descriptor's blocking reads and writes wait: most
// descriptors never block, and hold none.
type waiters struct{ rd, wr waiter }

// edgeTriggered is EPOLLET, which syscall declares as a negative int.
const edgeTriggered = 1 << 31

const (
	idle int32 = iota
	running
	again
)

// waiter is where a blocking read or write waits for the socket to be
// ready (or for its deadline, or for Close).
type waiter struct {
	gen      atomic.Uint32 // counts readiness events
	waiting  atomic.Bool
	deadline atomic.Int64 // Unix ns; 0: none
	ch       chan struct{}
}

// Errors of the blocking operations, as net.Conn's would be.
var (
	ErrClosed   = net.ErrClosed
	ErrDeadline = os.ErrDeadlineExceeded
	chMu        sync.Mutex // makes the waiters' channels
)

// Poller is one epoll instance.
type Poller struct {
	epfd, evfd int
	file       *os.File        // epfd, in Go's poller
	raw        syscall.RawConn // file's

	mu       sync.Mutex
	posted   []*Desc // work requested from outside the poller (Post)
	timers   timerHeap
	sleeps   bool      // the owner waits in epoll_wait
	wakeAt   int64     // when its wait ends by itself (Unix ns), 0: never
	woken    bool      // a wake-up is pending in evfd
	deadline time.Time // file's read deadline, as last set (the owner's)
	owner    atomic.Pointer[loop]
	current  atomic.Pointer[batch]
}

// loop is one goroutine's turn as a poller's owner.
type loop struct {
	busy    atomic.Uint64 // the tick at which its current work started; 0: none; handedOff
	retired atomic.Bool   // seen by the loop itself, at the end of its work

	// Its wait in Go's poller (wait).
	tryWait func(fd uintptr) bool // poll, made once
	batch   *batch
	n       int
	tries   int // polls: more than one, it parked between them
}

// handedOff marks a loop's busy spell after the watchdog has handed its
// poller on: the loop learns it as its work ends, and stops then.
const handedOff = math.MaxUint64

// begin and end bracket a piece of work, for the watchdog. A loop is handed
// off only while busy: it never waits for events after that.
func (l *loop) begin() {
	if l != nil && !l.retired.Load() {
		l.busy.Store(tick.Load() + 1)
	}
}

func (l *loop) end() {
	if l != nil && l.busy.Swap(0) == handedOff {
		l.retired.Store(true)
	}
}

type batch struct {
	ev  [256]syscall.EpollEvent
	n   int
	pos atomic.Int32
}

var (
	startOnce sync.Once
	pollers   []*Poller
	next      atomic.Uint32
	startErr  error

	registered atomic.Int64 // descriptors registered, for the watchdog
	watching   atomic.Bool
	tick       atomic.Uint64 // the watchdog's clock
)

// HandoffAfter is how long a piece of work may hold a poller before the
// poller moves to a new goroutine: between one and two watchdog ticks.
const HandoffAfter = 5 * time.Millisecond

func start() {
	n := runtime.GOMAXPROCS(0)
	for range n {
		p, err := newPoller()
		if err != nil {
			startErr = err
			return
		}
		pollers = append(pollers, p)
	}
	for _, p := range pollers {
		l := new(loop)
		p.owner.Store(l)
		go p.serve(l, nil)
	}
}

func newPoller() (*Poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if errno != 0 {
		syscall.Close(epfd)
		return nil, os.NewSyscallError("eventfd2", errno)
	}
	p := &Poller{epfd: epfd, evfd: int(r)}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: -1}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.evfd, &ev); err != nil {
		return nil, p.fail(os.NewSyscallError("epoll_ctl", err))
	}
	// The epoll instance waits in Go's own poller, which reports it
	// readable when it has events: a poller with nothing to do is a parked
	// goroutine, not a thread blocked in epoll_wait, and its wake-up is
	// the scheduler's.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		return nil, p.fail(os.NewSyscallError("fcntl", err))
	}
	p.file = os.NewFile(uintptr(epfd), "epoll")
	if p.raw, err = p.file.SyscallConn(); err != nil {
		return nil, p.fail(err)
	}
	return p, nil
}

// fail closes the descriptors of a poller that could not start, and
// returns err.
func (p *Poller) fail(err error) error {
	syscall.Close(p.evfd)
	if p.file != nil {
		p.file.Close() // its descriptor is epfd
	} else {
		syscall.Close(p.epfd)
	}
	return err
}

// Pick returns the next poller, round robin, starting the pollers on first use.
func Pick() (*Poller, error) {
	startOnce.Do(start)
	if startErr != nil {
		return nil, startErr
	}
	return pollers[next.Add(1)%uint32(len(pollers))], nil
}

// Init makes d, a zero Desc, stand for fd, which must be nonblocking, on
// p; it is not registered yet: its timers and blocking operations work
// already, its events come once Register is called. A Desc lives inside
// the value that owns the descriptor, so that it costs no allocation of
// its own.
func (d *Desc) Init(p *Poller, fd int) { d.p, d.fd = p, fd }

// Runner is the work of a descriptor.
type Runner interface{ Run() }

// Register adds d to its poller: r.Run is called (on a poller goroutine,
// serialized) whenever d may have something to read, has hung up, or was
// closed. The caller runs it once at first (RunHere).
func (d *Desc) Register(r Runner) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.run = r // runs once even if d is closed: to see that it is
	if d.Closed() {
		return ErrClosed
	}
	if !table.set(d.fd, d) {
		return errors.New("poll: descriptor beyond the table")
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLOUT | syscall.EPOLLRDHUP | edgeTriggered, Fd: int32(d.fd)}
	if err := syscall.EpollCtl(d.p.epfd, syscall.EPOLL_CTL_ADD, d.fd, &ev); err != nil {
		table.clear(d.fd, d)
		return os.NewSyscallError("epoll_ctl", err)
	}
	d.registered = true
	if registered.Add(1) == 1 && watching.CompareAndSwap(false, true) {
		go watch()
	}
	return nil
}

// Writer is a Runner with output waiting for the socket to be writable.
type Writer interface{ Writable() }

// WantWrite says whether the poller is to call Writable (d's Runner must
// be a Writer) when d becomes writable: while it has output waiting. It is
// called on the poller, not serialized with Run, which may be waiting for
// it. An edge that came before WantWrite is not reported: the caller
// tries its write again after setting it.
func (d *Desc) WantWrite(on bool) { d.wantWrite.Store(on) }

// RunHere runs d's work on the calling goroutine, serialized with its
// runs on the poller, as Register's first run: what the caller has for it
// before any event. (What arrived on the descriptor before the
// registration, epoll reports as it registers it.)
func (d *Desc) RunHere() { d.schedule(nil) }

// AfterFunc calls f on d's poller after dur.
func (d *Desc) AfterFunc(dur time.Duration, f func()) *Timer { return d.p.AfterFunc(dur, f) }

// serve is a poller's goroutine while it owns the poller: it finishes b,
// the batch its predecessor was running, if any, then waits for events.
func (p *Poller) serve(l *loop, b *batch) {
	if b != nil {
		p.drain(l, b)
	}
	own := new(batch)
	for !l.retired.Load() {
		if !p.runPosted(l) || !p.runTimers(l) {
			return
		}
		n, parked := p.wait(l, own)
		own.n = n
		own.pos.Store(0)
		p.current.Store(own)
		p.drain(l, own)
		if n > 0 && !parked {
			// A busy poller does not park, and its system calls are raw:
			// this lets the goroutines its work woke, and the timers due
			// on its processor, run now rather than at the scheduler's
			// next preemption, 10 ms away.
			runtime.Gosched()
		}
	}
}

// wait waits for events and puts them in b: it takes those ready, or
// parks in Go's poller until there are some, a timer is due or work is
// posted (parked).
func (p *Poller) wait(l *loop, b *batch) (n int, parked bool) {
	deadline, now := p.sleep()
	if now {
		n = epollNow(p.epfd, b.ev[:])
	} else {
		if deadline != p.deadline {
			p.file.SetReadDeadline(deadline)
			p.deadline = deadline
		}
		if l.tryWait == nil {
			l.tryWait = l.poll
		}
		l.batch, l.n, l.tries = b, 0, 0
		// Read clears the readiness Go's poller noted so far, then calls
		// poll, which takes what is ready: only then may it park.
		p.raw.Read(l.tryWait) // a passed deadline ends it: no events
		n, parked, l.batch = l.n, l.tries > 1, nil
	}
	p.mu.Lock()
	p.sleeps = false
	p.mu.Unlock()
	return max(n, 0), parked
}

// poll takes the events ready, without waiting: the loop's try in Go's
// poller.
func (l *loop) poll(fd uintptr) bool {
	l.tries++
	l.n = epollNow(int(fd), l.batch.ev[:])
	return l.n > 0
}

// epollNow takes the events ready in epfd into ev, without waiting (a raw
// system call, see the package doc).
func epollNow(epfd int, ev []syscall.EpollEvent) int {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&ev[0])), uintptr(len(ev)), 0, 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// sleep is when the owner's wait for events must end (the zero time:
// when one comes), or now if work is posted, and marks it as sleeping.
func (p *Poller) sleep() (deadline time.Time, now bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.posted) > 0 {
		return time.Time{}, true
	}
	p.sleeps, p.wakeAt = true, 0
	if len(p.timers) == 0 {
		return time.Time{}, false
	}
	p.wakeAt = p.timers[0].when
	deadline = time.Unix(0, p.wakeAt)
	return deadline, !deadline.After(time.Now())
}

// wake interrupts the owner's wait (mu held).
func (p *Poller) wake() {
	if p.sleeps && !p.woken {
		p.woken = true
		one := uint64(1)
		syscall.RawSyscall(syscall.SYS_WRITE, uintptr(p.evfd), uintptr(unsafe.Pointer(&one)), 8)
	}
}

// drain runs the events of b that no goroutine has taken yet, until l retires.
func (p *Poller) drain(l *loop, b *batch) {
	for !l.retired.Load() {
		i := int(b.pos.Add(1)) - 1
		if i >= b.n {
			return
		}
		ev := &b.ev[i]
		if ev.Fd < 0 {
			var buf [8]byte
			syscall.RawSyscall(syscall.SYS_READ, uintptr(p.evfd), uintptr(unsafe.Pointer(&buf)), 8)
			p.mu.Lock()
			p.woken = false
			p.mu.Unlock()
			continue
		}
		d := table.get(int(ev.Fd))
		if d == nil {
			continue // closed since
		}
		w := d.waiters.Load()
		if w != nil && ev.Events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			w.wr.wake()
		}
		if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			d.hup.Store(true)
		}
		if ev.Events&syscall.EPOLLOUT != 0 && d.wantWrite.Load() {
			d.run.(Writer).Writable()
		}
		if ev.Events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 {
			if w != nil {
				w.rd.wake()
			}
			d.schedule(l)
		}
	}
}

// runPosted runs the work posted from outside; false if l retired meanwhile.
func (p *Poller) runPosted(l *loop) bool {
	for !l.retired.Load() {
		p.mu.Lock()
		if len(p.posted) == 0 {
			if cap(p.posted) > 1024 {
				p.posted = nil
			}
			p.mu.Unlock()
			return true
		}
		d := p.posted[0]
		p.posted[0] = nil
		p.posted = p.posted[1:]
		p.mu.Unlock()
		d.schedule(l)
	}
	return false
}

// runTimers runs the timers due; false if l retired meanwhile.
func (p *Poller) runTimers(l *loop) bool {
	now := time.Now().UnixNano()
	for !l.retired.Load() {
		p.mu.Lock()
		if len(p.timers) == 0 || p.timers[0].when > now {
			p.mu.Unlock()
			return true
		}
		t := heap.Pop(&p.timers).(*Timer)
		p.mu.Unlock()
		l.begin()
		t.f()
		l.end()
	}
	return false
}

// Post asks for d's work to run on its poller, from any goroutine.
func (p *Poller) Post(d *Desc) {
	p.mu.Lock()
	p.posted = append(p.posted, d)
	p.wake()
	p.mu.Unlock()
}

// schedule runs d's work on l's goroutine, unless it is running elsewhere:
// then that goroutine runs it once more.
func (d *Desc) schedule(l *loop) {
	for {
		switch s := d.state.Load(); s {
		case idle:
			if !d.state.CompareAndSwap(idle, running) {
				continue
			}
			for {
				l.begin()
				d.run.Run()
				l.end()
				if d.state.CompareAndSwap(running, idle) {
					return
				}
				d.state.Store(running) // it was asked to run again
			}
		case running:
			if d.state.CompareAndSwap(running, again) {
				return
			}
		default:
			return
		}
	}
}

// watch hands a poller whose work has run for HandoffAfter to a new
// goroutine. It runs while descriptors are registered.
func watch() {
	for {
		time.Sleep(HandoffAfter)
		now := tick.Add(1)
		for _, p := range pollers {
			l := p.owner.Load()
			if b := l.busy.Load(); b != 0 && b != handedOff && now-b >= 1 && l.busy.CompareAndSwap(b, handedOff) {
				nl := new(loop)
				p.owner.Store(nl)
				go p.serve(nl, p.current.Load())
			}
		}
		if registered.Load() == 0 {
			watching.Store(false)
			if registered.Load() == 0 || !watching.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// Fd is the descriptor, for a system call made between Acquire and Release.
func (d *Desc) Fd() int { return d.fd }

// Acquire keeps the descriptor open until Release; false once it is closed.
func (d *Desc) Acquire() bool {
	for {
		v := d.refs.Load()
		if v&1 != 0 {
			return false
		}
		if d.refs.CompareAndSwap(v, v+2) {
			return true
		}
	}
}

// Release ends what Acquire began, closing the descriptor if Close came meanwhile.
func (d *Desc) Release() {
	if d.refs.Add(-2) == 1 {
		closeNow(d.fd)
	}
}

// closeNow closes a socket, raw: with no lingering close (the engine sets
// none but an abortive one), closing never waits.
func closeNow(fd int) { syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0) }

// CloseWrite shuts the sending side of the socket.
func (d *Desc) CloseWrite() error {
	if !d.Acquire() {
		return ErrClosed
	}
	defer d.Release()
	return syscall.Shutdown(d.fd, syscall.SHUT_WR) // not raw: 386 has no shutdown system call of its own
}

// HungUp reports whether the peer has hung up (or the socket failed): a
// read that returns data short of the room it had has not met the end of
// the input yet, whose edge has passed.
func (d *Desc) HungUp() bool { return d.hup.Load() }

// ReadNow reads into p what the descriptor has, without waiting: EAGAIN
// if nothing, ErrClosed once it is closed.
func (d *Desc) ReadNow(p []byte) (int, error) { return d.now(syscall.SYS_READ, syscall.Read, p) }

// WriteNow writes to the socket what it takes of p, without waiting:
// EAGAIN if nothing, ErrClosed once it is closed.
func (d *Desc) WriteNow(p []byte) (int, error) { return d.now(syscall.SYS_WRITE, syscall.Write, p) }

// now makes the read or write trap on p: a raw system call, which a
// nonblocking socket's is; under the race detector, call (syscall.Read or
// Write), whose annotations order what a writer did before its write
// before what the reader does after, as Go's own reads and writes do.
func (d *Desc) now(trap uintptr, call func(int, []byte) (int, error), p []byte) (int, error) {
	if !d.Acquire() {
		return 0, ErrClosed
	}
	defer d.Release()
	for {
		if raceEnabled {
			n, err := call(d.fd, p)
			if err == syscall.EINTR {
				continue
			}
			return max(n, 0), err
		}
		n, _, errno := syscall.RawSyscall(trap, uintptr(d.fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p)))
		switch errno {
		case 0:
			return int(n), nil
		case syscall.EINTR:
		default:
			return 0, errno
		}
	}
}

// Closed reports whether Close was called.
func (d *Desc) Closed() bool { return d.refs.Load()&1 != 0 }

// Close unregisters d and closes its descriptor once no operation uses
// it; blocked reads and writes return ErrClosed, and d's work runs once
// more, to see that it closed.
func (d *Desc) Close() error {
	d.mu.Lock()
	if d.Closed() {
		d.mu.Unlock()
		return ErrClosed
	}
	// Unregistered while the descriptor is surely open: once closed, its
	// number may be another connection's.
	reg := d.registered
	if reg {
		table.clear(d.fd, d)
		syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(d.p.epfd), syscall.EPOLL_CTL_DEL, uintptr(d.fd), 0, 0, 0)
	}
	old := d.refs.Or(1)
	d.mu.Unlock()
	if old == 0 {
		closeNow(d.fd)
	}
	if w := d.waiters.Load(); w != nil {
		w.rd.wake()
		w.wr.wake()
	}
	if reg {
		registered.Add(-1)
		d.p.Post(d)
	}
	return nil
}

// SetReadDeadline and SetWriteDeadline set the deadlines of blocking
// reads and writes (the zero time: none).
func (d *Desc) SetReadDeadline(t time.Time) {
	d.setDeadline(t, func(w *waiters) *waiter { return &w.rd })
}
func (d *Desc) SetWriteDeadline(t time.Time) {
	d.setDeadline(t, func(w *waiters) *waiter { return &w.wr })
}

func (d *Desc) setDeadline(t time.Time, which func(*waiters) *waiter) {
	if t.IsZero() && d.waiters.Load() == nil {
		return // no deadline to clear
	}
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	w := which(d.getWaiters())
	w.deadline.Store(ns)
	w.notify()
}

// getWaiters returns d's waiters, made if need be.
func (d *Desc) getWaiters() *waiters {
	if w := d.waiters.Load(); w != nil {
		return w
	}
	d.waiters.CompareAndSwap(nil, new(waiters))
	return d.waiters.Load()
}

// wake records a readiness event and wakes a waiter.
func (w *waiter) wake() {
	w.gen.Add(1)
	w.notify()
}

func (w *waiter) notify() {
	if w.waiting.Load() {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// Read calls f with the descriptor until it returns true, waiting for
// the descriptor to be readable whenever it returns false, as
// syscall.RawConn's Read does.
func (d *Desc) Read(f func(fd uintptr) bool) error { return d.do(false, f) }

// Write is Read's counterpart for writing.
func (d *Desc) Write(f func(fd uintptr) bool) error { return d.do(true, f) }

func (d *Desc) do(write bool, f func(fd uintptr) bool) error {
	if !d.Acquire() {
		return ErrClosed
	}
	defer d.Release()
	var w *waiter
	var g uint32
	for !f(uintptr(d.fd)) {
		if w == nil {
			// Made at the first wait only; the events before it were not
			// counted, so f tries again before waiting.
			ws := d.getWaiters()
			if w = &ws.rd; write {
				w = &ws.wr
			}
			g = w.gen.Load()
			continue
		}
		if err := d.wait(w, g); err != nil {
			return err
		}
		g = w.gen.Load()
	}
	return nil
}

// wait waits for a readiness event after the g-th, the deadline or Close.
func (d *Desc) wait(w *waiter, g uint32) error {
	if w.ch == nil {
		chMu.Lock()
		if w.ch == nil {
			w.ch = make(chan struct{}, 1)
		}
		chMu.Unlock()
	}
	w.waiting.Store(true)
	defer w.waiting.Store(false)
	var t *time.Timer // one for the whole wait, reset as the deadline moves
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for w.gen.Load() == g {
		if d.Closed() {
			return ErrClosed
		}
		var timeout <-chan time.Time
		if dl := w.deadline.Load(); dl != 0 {
			left := time.Until(time.Unix(0, dl))
			if left <= 0 {
				return ErrDeadline
			}
			if t == nil {
				t = time.NewTimer(left)
			} else {
				t.Reset(left)
			}
			timeout = t.C
		}
		select {
		case <-w.ch:
		case <-timeout:
			return ErrDeadline
		}
	}
	return nil
}

// Timer runs a function on its poller's goroutine when it is due, as
// time.AfterFunc does: the timers of all the poller's descriptors share
// its wait for events.
type Timer struct {
	p    *Poller
	when int64 // Unix ns
	f    func()
	i    int // in the heap; -1: not in it
}

// AfterFunc calls f on p's goroutine after d.
func (p *Poller) AfterFunc(d time.Duration, f func()) *Timer {
	t := &Timer{p: p, f: f, i: -1}
	t.Reset(d)
	return t
}

// Reset makes t due after d; it reports whether t was pending.
func (t *Timer) Reset(d time.Duration) bool {
	p := t.p
	when := time.Now().Add(d).UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	t.when = when
	pending := t.i >= 0
	if pending {
		heap.Fix(&p.timers, t.i)
	} else {
		heap.Push(&p.timers, t)
	}
	if p.timers[0] == t && (p.wakeAt == 0 || when < p.wakeAt) {
		p.wake()
	}
	return pending
}

// Stop keeps t from running; it reports whether t was pending.
func (t *Timer) Stop() bool {
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.i < 0 {
		return false
	}
	heap.Remove(&p.timers, t.i)
	return true
}

type timerHeap []*Timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *timerHeap) Push(x any) {
	t := x.(*Timer)
	t.i = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.i = -1
	return t
}

// table maps descriptors to their Desc, for the events epoll reports: a
// two-level array read without locks.
var table fdTable

const chunkBits = 12

type fdTable struct {
	mu     sync.Mutex
	chunks [1 << 10]atomic.Pointer[[1 << chunkBits]atomic.Pointer[Desc]]
}

func (t *fdTable) set(fd int, d *Desc) bool {
	hi := fd >> chunkBits
	if hi >= len(t.chunks) {
		return false
	}
	c := t.chunks[hi].Load()
	if c == nil {
		t.mu.Lock()
		if c = t.chunks[hi].Load(); c == nil {
			c = new([1 << chunkBits]atomic.Pointer[Desc])
			t.chunks[hi].Store(c)
		}
		t.mu.Unlock()
	}
	c[fd&(1<<chunkBits-1)].Store(d)
	return true
}

func (t *fdTable) get(fd int) *Desc {
	c := t.chunks[fd>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[fd&(1<<chunkBits-1)].Load()
}

func (t *fdTable) clear(fd int, d *Desc) {
	if c := t.chunks[fd>>chunkBits].Load(); c != nil {
		c[fd&(1<<chunkBits-1)].CompareAndSwap(d, nil)
	}
}
