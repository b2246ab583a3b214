package websocket

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The suites that TestEngineModes runs again with their Handlers on the
// event engine: each of their Handlers is built by inMode, from a Serve
// callback and its Events form.
const engineSuites = `^(TestConformance|TestEchoEveryDialect|TestEchoBinary|TestSplitAndCoalesced|TestHixieLimits|` +
	`TestHostileHixieUnterminated|TestHostileHixieHugeLength|TestHostileHybiOverLimit|TestHostileFlood|TestHostileDropMidMessage|TestHostileManyConnections|TestHostileSlowHeaders|` +
	`TestKeepalivePingsAnswered|TestKeepalivePongTimeout|TestKeepaliveActivity|TestKeepaliveSlowLargeFrame|TestKeepaliveNoPingsOnHixie|TestIdleTimeout|` +
	`TestDeflateEcho|TestDeflateBomb|TestDeflateReadLimitExact|TestDeflateFrames|TestDeflateNegotiate|` +
	`TestSoak)$`

// engineMode is set in the child process of TestEngineModes.
var engineMode = os.Getenv("WEBSOCKET_TEST_MODE") == "engine"

// TestEngineModes runs engineSuites with their Handlers on the engine
// (Handler.Events), in a child process of the same test binary (so under
// -race if this one is).
func TestEngineModes(t *testing.T) {
	if engineMode {
		t.Skip("the child runs the suites themselves")
	}
	args := []string{"-test.run", engineSuites, "-test.count=1"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "WEBSOCKET_TEST_MODE=engine")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "\nPASS") && !strings.HasPrefix(string(out), "PASS") {
		t.Fatalf("the suites on the engine: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}

// inMode makes h serve with ev, the Events form of its Serve callback,
// when the tests run on the engine; it then checks, once t ends, that
// the plain TCP connections h accepted did run on the engine.
func inMode(t testing.TB, h *Handler, ev *Events) *Handler {
	if !engineMode {
		return h
	}
	engineStart()
	var opened, onEngine atomic.Int64
	wrapped := *ev
	wrapped.OnOpen = func(c *Conn) {
		opened.Add(1)
		if _, ok := c.br.conn.(timerSource); ok {
			onEngine.Add(1)
		}
		if ev.OnOpen != nil {
			ev.OnOpen(c)
		}
	}
	h.Serve, h.Events = nil, &wrapped
	t.Cleanup(func() {
		if opened.Load() > 0 && onEngine.Load() == 0 {
			t.Errorf("none of %d connections ran on the engine", opened.Load())
		}
	})
	return h
}

// echoEvents echoes every message, as echoMessages does for Serve.
var echoEvents = Events{OnMessage: func(c *Conn, typ MessageType, msg []byte) { c.WriteMessage(typ, msg) }}

// events is the recorder as callbacks: what run does, for the engine.
func (r hosRecorder) events(echo bool) *Events {
	type state struct {
		res   hosResult
		start time.Time
	}
	var conns sync.Map // *Conn → *state
	return &Events{
		OnOpen: func(c *Conn) { conns.Store(c, &state{start: time.Now()}) },
		OnMessage: func(c *Conn, typ MessageType, msg []byte) {
			v, _ := conns.Load(c)
			st := v.(*state)
			if st.res.err != nil {
				return
			}
			st.res.msgs = append(st.res.msgs, string(msg))
			if echo {
				st.res.err = c.WriteMessage(typ, msg)
			}
		},
		OnClose: func(c *Conn, err error) {
			v, _ := conns.LoadAndDelete(c)
			st := v.(*state)
			if st.res.err == nil {
				st.res.err = err
			}
			st.res.elapsed = time.Since(st.start)
			r <- st.res
		},
	}
}

// hosRoutedEvents is hosRouted for callbacks: /check is echoed, the rest
// served by ev.
func hosRoutedEvents(ev *Events) *Events {
	checked := func(c *Conn) bool { return c.Request().URL.Path == "/check" }
	return &Events{
		OnOpen: func(c *Conn) {
			if !checked(c) && ev.OnOpen != nil {
				ev.OnOpen(c)
			}
		},
		OnMessage: func(c *Conn, typ MessageType, msg []byte) {
			if checked(c) {
				c.WriteMessage(typ, msg)
			} else if ev.OnMessage != nil {
				ev.OnMessage(c, typ, msg)
			}
		},
		OnClose: func(c *Conn, err error) {
			if !checked(c) && ev.OnClose != nil {
				ev.OnClose(c, err)
			}
		},
	}
}
