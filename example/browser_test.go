package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/hybi/websocket"
)

const (
	// browserTestTimeout bounds the whole browser test: the browser's start,
	// every step, and the browser's close.
	browserTestTimeout = 60 * time.Second
	// browserStepTimeout bounds one step (an action, or a wait for the page
	// to log something).
	browserStepTimeout = 20 * time.Second
)

// findChromium returns the path of Debian's chromium. It never downloads a
// browser: a missing one fails the test in CI and skips it elsewhere.
func findChromium(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("chromium"); err == nil {
		return path
	}
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return "/usr/bin/chromium"
	}
	const msg = "chromium not found in PATH or at /usr/bin/chromium; install it with: apt-get install -y chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// logLine is one line of the page's log: its CSS class (sent, received,
// error or none), its timestamp and its text.
type logLine struct {
	Kind string `json:"kind"`
	Time string `json:"time"`
	Text string `json:"text"`
}

func (l logLine) String() string {
	if l.Kind == "" {
		return l.Time + l.Text
	}
	return l.Time + l.Text + " [" + l.Kind + "]"
}

// logLinesJS reads the page's log, one entry per line. The text is the line's
// own text, without the timestamp span.
const logLinesJS = `[...document.getElementById('log').children].map((d) => ({
	kind: d.className,
	time: d.querySelector('.time') ? d.querySelector('.time').textContent : '',
	text: [...d.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join(''),
}))`

// controlsJS reads the state of the page's controls.
const controlsJS = `({
	connect: !document.getElementById('connect').disabled,
	disconnect: !document.getElementById('disconnect').disabled,
	send: !document.getElementById('send').disabled,
	url: !document.getElementById('url').disabled,
	endpoint: !document.getElementById('endpoint').disabled,
	readyState: window.ws ? window.ws.readyState : -1,
})`

// controls says which controls of the page are enabled.
type controls struct {
	Connect    bool `json:"connect"`
	Disconnect bool `json:"disconnect"`
	Send       bool `json:"send"`
	URL        bool `json:"url"`
	Endpoint   bool `json:"endpoint"`
	ReadyState int  `json:"readyState"` // of window.ws; -1 if none
}

// browser is one tab of a headless chromium, with what the test needs to
// explain a failure.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab's chromedp context

	mu         sync.Mutex
	exceptions []string // uncaught exceptions of the page
	console    []string // the page's console messages
}

// startBrowser starts headless chromium with a fresh profile, and the
// extra flags, and opens a tab. The browser is closed when the test ends.
func startBrowser(t *testing.T, ctx context.Context, extra ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	execPath := findChromium(t)
	// Built from scratch rather than from chromedp.DefaultExecAllocatorOptions,
	// so that these flags are the only ones chromedp passes (besides its
	// --remote-debugging-pipe and the first page, about:blank).
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), // removed after the browser has closed (cleanups run last in, first out)
	}
	opts = append(opts, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: tabCtx}
	t.Cleanup(func() {
		closeCtx, cancel := context.WithTimeout(tabCtx, 10*time.Second)
		defer cancel()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing the browser: %v", err)
		}
		cancelTab()
		cancelAlloc() // waits for the browser's process to end
	})

	// The first Run starts the browser, which lives as long as ctx.
	if err := chromedp.Do(tabCtx); err != nil {
		t.Fatalf("starting %s: %v", execPath, err)
	}
	b.listen()
	t.Logf("browser: %s", execPath)
	return b
}

// newTab opens another tab in b's browser.
func (b *browser) newTab() *browser {
	b.t.Helper()
	tabCtx, cancel := chromedp.NewContext(b.ctx)
	tab := &browser{t: b.t, ctx: tabCtx}
	b.t.Cleanup(func() {
		closeCtx, cancelClose := context.WithTimeout(tabCtx, 10*time.Second)
		defer cancelClose()
		if err := chromedp.Cancel(closeCtx); err != nil && !errors.Is(err, context.Canceled) {
			b.t.Logf("closing a tab: %v", err)
		}
		cancel()
	})
	if err := chromedp.Do(tabCtx); err != nil {
		b.t.Fatalf("opening a tab: %v", err)
	}
	tab.listen()
	return tab
}

// listen records the tab's uncaught exceptions and console messages.
func (b *browser) listen() {
	b.t.Helper()
	err := chromedp.Listen(b.ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				text += " " + d.Exception.Description
			}
			b.mu.Lock()
			b.exceptions = append(b.exceptions, fmt.Sprintf("%s:%d:%d: %s", d.URL, d.LineNumber+1, d.ColumnNumber+1, text))
			b.mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			b.mu.Lock()
			b.console = append(b.console, string(ev.Type)+": "+strings.Join(args, " "))
			b.mu.Unlock()
		}
	})
	if err != nil {
		b.t.Fatalf("listening to the page's events: %v", err)
	}
}

// step runs an action, bounded by browserStepTimeout, and fails the test with
// the page's state if it fails.
func step[T any](b *browser, what string, action chromedp.Action[T]) T {
	b.t.Helper()
	return stepWithin(b, browserStepTimeout, what, action)
}

// stepWithin is step bounded by timeout.
func stepWithin[T any](b *browser, timeout time.Duration, what string, action chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, action)
	if err != nil {
		b.fatalf("%s: %v", what, err)
	}
	return v
}

// fatalf fails the test, with the page's log, its uncaught exceptions and
// console messages, and a screenshot.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	b.t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), b.state())
}

// errorf is fatalf that lets the test go on.
func (b *browser) errorf(format string, args ...any) {
	b.t.Helper()
	b.t.Errorf("%s\n%s", fmt.Sprintf(format, args...), b.state())
}

// state describes the page for a failure's message: its log, its uncaught
// exceptions and console messages; it also saves a screenshot.
func (b *browser) state() string {
	var s strings.Builder
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	lines, err := chromedp.Run(ctx, chromedp.Evaluate[[]logLine](logLinesJS))
	if err != nil {
		fmt.Fprintf(&s, "page log: unavailable: %v\n", err)
	} else {
		fmt.Fprintf(&s, "page log (%d lines):\n", len(lines))
		for _, l := range lines {
			fmt.Fprintf(&s, "\t%s\n", truncate(l.String(), 300))
		}
	}
	if progress, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`window.echoTests`)); err == nil && string(progress) != "" {
		fmt.Fprintf(&s, "echo tests: %s\n", truncate(string(progress), 2000))
	}
	b.mu.Lock()
	for _, e := range b.exceptions {
		fmt.Fprintf(&s, "page exception: %s\n", e)
	}
	for _, c := range b.console {
		fmt.Fprintf(&s, "page console: %s\n", truncate(c, 300))
	}
	b.mu.Unlock()
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		if path, err := saveArtifact(b.t.Name()+"-failure.png", png); err == nil {
			fmt.Fprintf(&s, "screenshot: %s\n", path)
		}
	}
	return s.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("… (%d bytes)", len(s))
}

// logLines returns the page's log.
func (b *browser) logLines() []logLine {
	b.t.Helper()
	return step(b, "reading the page's log", chromedp.Evaluate[[]logLine](logLinesJS))
}

// waitLog polls the page's log until find, given its lines, reports the index
// of what the test waits for, and returns that index. It fails the test with
// the log if that takes longer than browserStepTimeout.
func (b *browser) waitLog(what string, find func([]logLine) int) int {
	b.t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if i := find(b.logLines()); i >= 0 {
			return i
		}
		if time.Now().After(deadline) {
			b.fatalf("timed out after %v waiting for the page to log %s", browserStepTimeout, what)
		}
		select {
		case <-tick.C:
		case <-b.ctx.Done():
			b.fatalf("waiting for the page to log %s: %v", what, context.Cause(b.ctx))
		}
	}
}

// lineAfter returns a finder for the first line after index from whose text
// matches re and whose class is kind.
func lineAfter(from int, kind string, re *regexp.Regexp) func([]logLine) int {
	return func(lines []logLine) int {
		for i := from + 1; i < len(lines); i++ {
			if lines[i].Kind == kind && re.MatchString(lines[i].Text) {
				return i
			}
		}
		return -1
	}
}

// exactly matches s and nothing else.
func exactly(s string) *regexp.Regexp { return regexp.MustCompile("^" + regexp.QuoteMeta(s) + "$") }

// saveArtifact writes data to name in $ARTIFACTS_DIR, or else in the
// repository's artifacts/ directory, and returns its path.
func saveArtifact(name string, data []byte) (string, error) {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "artifacts") // tests run in example/
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(name))
	return path, os.WriteFile(path, data, 0o644)
}

// waitStats polls /status until ok accepts the stats of the app's endpoints.
func waitStats(t *testing.T, ctx context.Context, srv *httptest.Server, what string, ok func(map[string]websocket.Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last map[string]websocket.Stats
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("GET /status: %v", err)
		}
		last = nil
		err = json.NewDecoder(resp.Body).Decode(&last)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET /status: %v", err)
		}
		if ok(last) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for /status to show %s; last: %+v", what, last)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for /status to show %s: %v; last: %+v", what, ctx.Err(), last)
		}
	}
}

// TestBrowser drives the page in headless chromium: connect to /test, get
// the greeting, send a message and get its echo, get a pushed time,
// disconnect; then, from the page's JavaScript, put /echo through large,
// binary, multi-byte and many messages.
func TestBrowser(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	t.Cleanup(cancel) // after the browser's and the server's cleanups

	// The server (closed after the browser: cleanups run last in, first out).
	srv := serveApp(t)(newServer(config{interval: 200 * time.Millisecond}))
	host := srv.Listener.Addr().String()

	b := startBrowser(t, ctx)
	t.Logf("browser started after %v", time.Since(start).Round(time.Millisecond))

	// The page, with the URL box prefilled from its own host.
	step(b, "loading the page", chromedp.Navigate(srv.URL+"/"))
	step(b, "waiting for the page", chromedp.WaitVisible(chromedp.ID("log")))
	if title := step(b, "reading the title", chromedp.Title()); title != "WebSocket test" {
		b.errorf("title %q, want %q", title, "WebSocket test")
	}
	wantURL := "ws://" + host + "/test"
	if got := step(b, "reading the URL box", chromedp.Value(chromedp.ID("url"))); got != wantURL {
		b.errorf("URL box %q, want %q (the page's own host)", got, wantURL)
	}
	if got, want := step(b, "reading the controls", chromedp.Evaluate[controls](controlsJS)),
		(controls{Connect: true, URL: true, Endpoint: true, ReadyState: -1}); got != want {
		b.errorf("controls before connecting: %+v, want %+v", got, want)
	}

	// Connect: open, then the greeting.
	step(b, "clicking Connect", chromedp.Click(chromedp.ID("connect")))
	atConnecting := b.waitLog("the connecting line", lineAfter(-1, "", exactly("connecting to "+wantURL)))
	atOpen := b.waitLog("the open", lineAfter(atConnecting, "", regexp.MustCompile(`^open(, protocol \S+)?(, extensions .+)?$`)))
	atGreeting := b.waitLog("the greeting", lineAfter(atOpen, "received", exactly("received: "+greeting)))
	lines := b.logLines()
	t.Logf("page logged: %q", lines[atOpen].Text)
	for _, l := range lines[atOpen+1 : atGreeting] {
		b.errorf("line before the greeting: %s", l)
	}
	if got, want := step(b, "reading the controls", chromedp.Evaluate[controls](controlsJS)),
		(controls{Disconnect: true, Send: true, ReadyState: 1}); got != want {
		b.errorf("controls when open: %+v, want %+v", got, want)
	}

	// Send a message, typed into the message box; /test echoes it.
	const message = "Hello from headless Chromium: κόσμε ✓ 🎉"
	step(b, "typing the message", chromedp.SendKeys(chromedp.ID("message"), message))
	if got := step(b, "reading the message box", chromedp.Value(chromedp.ID("message"))); got != message {
		b.fatalf("message box %q after typing, want %q", got, message)
	}
	step(b, "clicking Send", chromedp.Click(chromedp.ID("send")))
	atSent := b.waitLog("the sent message", lineAfter(atGreeting, "sent", exactly("sent: "+message)))
	b.waitLog("the echo", lineAfter(atSent, "received", exactly("received: "+message)))
	if got := step(b, "reading the message box", chromedp.Value(chromedp.ID("message"))); got != "" {
		b.errorf("message box %q after sending, want it cleared", got)
	}

	// The time the server pushes (every 200 ms here).
	timeRE := regexp.MustCompile(`^received: Time at the server: ([A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \S+)$`)
	atPush := b.waitLog("a pushed time", lineAfter(atGreeting, "received", timeRE))
	pushed := timeRE.FindStringSubmatch(b.logLines()[atPush].Text)[1]
	if tm, err := time.Parse(time.RFC1123, pushed); err != nil {
		b.errorf("pushed time %q: %v", pushed, err)
	} else if d := time.Since(tm); d < -time.Minute || d > time.Minute {
		b.errorf("pushed time %q is %v away from now", pushed, d)
	}

	// Disconnect: the page closes with 1000 "user disconnected"; the server
	// answers, so the close is clean.
	step(b, "clicking Disconnect", chromedp.Click(chromedp.ID("disconnect")))
	closeRE := regexp.MustCompile(`^closed: code 1000(, reason "user disconnected")?, wasClean true$`)
	atClosed := b.waitLog("the clean close", lineAfter(atGreeting, "", closeRE))
	lines = b.logLines()
	t.Logf("page logged: %q", lines[atClosed].Text)
	timestampRE := regexp.MustCompile(`^\d{2}:\d{2}:\d{2}\.\d{3} $`)
	for _, l := range lines {
		if l.Kind == "error" || (strings.HasPrefix(l.Text, "closed:") && l.Text != lines[atClosed].Text) {
			b.errorf("unexpected line: %s", l)
		}
		if !timestampRE.MatchString(l.Time) {
			b.errorf("line %q has timestamp %q, want hh:mm:ss.mmm and a space", l.Text, l.Time)
		}
	}
	if got, want := step(b, "reading the controls", chromedp.Evaluate[controls](controlsJS)),
		(controls{Connect: true, URL: true, Endpoint: true, ReadyState: 3}); got != want {
		b.errorf("controls after the close: %+v, want %+v", got, want)
	}
	waitStats(t, ctx, srv, "/test closed", func(s map[string]websocket.Stats) bool {
		return s["/test"].Accepted == 1 && s["/test"].Active == 0
	})

	// The screenshot of the page after the scenario.
	png := step(b, "taking a screenshot", chromedp.FullScreenshot(100))
	if path, err := saveArtifact(t.Name()+".png", png); err != nil {
		t.Errorf("saving the screenshot: %v", err)
	} else {
		t.Logf("screenshot: %s", path)
	}

	// /echo from the page's JavaScript.
	echoStart := time.Now()
	// Some 4 to 8 s with -race on two cores (the 4 MiB text takes half of
	// it); each wait in the page is bounded too.
	report := stepWithin(b, 40*time.Second, "the echo tests in the page", chromedp.Evaluate[echoReport](echoTestsJS, chromedp.EvalAwaitPromise))
	t.Logf("/echo from the browser (%v): ws.extensions %q, ws.protocol %q",
		time.Since(echoStart).Round(time.Millisecond), report.Extensions, report.Protocol)
	if report.Error != "" {
		b.errorf("echo tests: %s", report.Error)
	}
	// The example enables compression: the browser must have negotiated it,
	// and the exact echoes above went through it.
	if !strings.HasPrefix(report.Extensions, "permessage-deflate") {
		b.errorf("/echo: ws.extensions %q, want permessage-deflate", report.Extensions)
	}
	want := []string{"binary 1 MiB", "text 4 MiB", "UTF-8 short", "UTF-8 long mix", "burst of 1000"}
	for i, r := range report.Results {
		if i >= len(want) || r.Name != want[i] {
			b.errorf("result %d is %q, want %q", i, r.Name, want[min(i, len(want)-1)])
		}
		if r.OK {
			t.Logf("%s: ok: %s", r.Name, r.Detail)
		} else {
			b.errorf("%s: %s", r.Name, r.Detail)
		}
	}
	if len(report.Results) != len(want) {
		b.errorf("%d results, want %d: %+v", len(report.Results), len(want), report.Results)
	}
	if c := report.Close; c.Code != 1000 || !c.WasClean {
		b.errorf("/echo closed with %+v, want code 1000, clean", c)
	}
	waitStats(t, ctx, srv, "/echo closed", func(s map[string]websocket.Stats) bool {
		return s["/echo"].Accepted == 1 && s["/echo"].Active == 0
	})

	b.mu.Lock()
	for _, e := range b.exceptions {
		t.Errorf("page exception: %s", e)
	}
	b.mu.Unlock()
	t.Logf("scenario done after %v", time.Since(start).Round(time.Millisecond))
}

// echoReport is what echoTestsJS returns.
type echoReport struct {
	Extensions string `json:"extensions"`
	Protocol   string `json:"protocol"`
	Results    []struct {
		Name   string `json:"name"`
		OK     bool   `json:"ok"`
		Detail string `json:"detail"`
	} `json:"results"`
	Close struct {
		Code     int    `json:"code"`
		Reason   string `json:"reason"`
		WasClean bool   `json:"wasClean"`
	} `json:"close"`
	Error string `json:"error"` // what stopped the tests, if anything did
}

// echoTestsJS opens a WebSocket to /echo and checks, byte for byte, the
// echoes of: 1 MiB of random binary; 4 MiB of text; multi-byte UTF-8, short
// and long; and 1000 messages sent at once, echoed in order. Each wait for
// an echo is bounded. It resolves to an echoReport.
const echoTestsJS = `(async () => {
	// Also in window.echoTests, for a failure's message to show how far the
	// tests got.
	const report = window.echoTests = { extensions: '', protocol: '', results: [], close: {}, error: '' };
	const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/echo');
	ws.binaryType = 'arraybuffer';
	const queue = [], waiters = [];
	let closed = null, onClosed;
	const closedPromise = new Promise((resolve) => { onClosed = resolve; });
	ws.onmessage = (e) => {
		if (waiters.length) waiters.shift().resolve(e.data);
		else queue.push(e.data);
	};
	ws.onclose = (e) => {
		closed = { code: e.code, reason: e.reason, wasClean: e.wasClean };
		for (const w of waiters.splice(0)) w.reject(new Error('closed: ' + JSON.stringify(closed)));
		onClosed(closed);
	};
	// next resolves to the next message, or rejects after 20 s or on close.
	const next = (what) => {
		if (queue.length) return Promise.resolve(queue.shift());
		if (closed) return Promise.reject(new Error('closed before ' + what + ': ' + JSON.stringify(closed)));
		return new Promise((resolve, reject) => {
			const w = {};
			const timer = setTimeout(() => {
				waiters.splice(waiters.indexOf(w), 1);
				reject(new Error('timed out waiting for ' + what));
			}, 20000);
			w.resolve = (v) => { clearTimeout(timer); resolve(v); };
			w.reject = (e) => { clearTimeout(timer); reject(e); };
			waiters.push(w);
		});
	};
	const firstDiff = (a, b) => {
		const n = Math.min(a.length, b.length);
		for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
		return a.length === b.length ? -1 : n;
	};
	const describe = (v) => typeof v === 'string' ? 'text of ' + v.length + ' UTF-16 units'
		: v instanceof ArrayBuffer ? 'binary of ' + v.byteLength + ' bytes' : String(v);
	const utf8Length = (s) => new TextEncoder().encode(s).length;
	// random fills a typed array; getRandomValues takes at most 64 KiB a call.
	const random = (a) => {
		const n = 65536 / a.BYTES_PER_ELEMENT;
		for (let i = 0; i < a.length; i += n) crypto.getRandomValues(a.subarray(i, i + n));
		return a;
	};
	const checkText = async (name, s) => {
		ws.send(s);
		const got = await next(name + ' echo');
		if (typeof got !== 'string') return { name, ok: false, detail: 'got ' + describe(got) + ', want text' };
		const d = firstDiff(got, s);
		if (d >= 0) return { name, ok: false, detail: 'got ' + got.length + ' UTF-16 units, want ' + s.length +
			'; first difference at ' + d + ': got ' + JSON.stringify(got.slice(d, d + 20)) + ', want ' + JSON.stringify(s.slice(d, d + 20)) };
		return { name, ok: true, detail: s.length + ' UTF-16 units, ' + utf8Length(s) + ' UTF-8 bytes echoed exactly' };
	};

	const tests = [
		['binary 1 MiB', async (name) => {
			const sent = random(new Uint8Array(1 << 20));
			ws.send(sent);
			const got = await next(name + ' echo');
			if (!(got instanceof ArrayBuffer)) return { name, ok: false, detail: 'got ' + describe(got) + ', want binary' };
			const g = new Uint8Array(got);
			const d = firstDiff(g, sent);
			if (d >= 0) return { name, ok: false, detail: 'got ' + g.length + ' bytes, want ' + sent.length + '; first difference at byte ' + d };
			return { name, ok: true, detail: g.length + ' random bytes echoed exactly' };
		}],
		['text 4 MiB', async (name) => {
			// Random printable ASCII: 4 MiB of characters, 4 MiB of UTF-8.
			const b = random(new Uint8Array(4 << 20));
			for (let i = 0; i < b.length; i++) b[i] = 0x20 + b[i] % 95;
			return checkText(name, new TextDecoder().decode(b));
		}],
		['UTF-8 short', (name) => checkText(name, 'κόσμε ✓ 🎉 \u0000 \uFFFD')],
		['UTF-8 long mix', (name) => {
			// Code points of 1 to 4 UTF-8 bytes, at random, and the edges of
			// each range.
			const edges = [0x0, 0x7F, 0x80, 0x7FF, 0x800, 0xD7FF, 0xE000, 0xFEFF, 0xFFFD, 0xFFFF, 0x10000, 0x10FFFF];
			const ranges = [[0x20, 0x7F], [0x80, 0x800], [0x800, 0xD800], [0xE000, 0x10000], [0x10000, 0x110000]];
			const r = random(new Uint32Array(200000));
			const parts = [String.fromCodePoint(...edges)];
			const cps = [];
			for (let i = 0; i < r.length; i++) {
				const [lo, hi] = ranges[i % ranges.length];
				cps.push(lo + r[i] % (hi - lo));
				if (cps.length === 4096) parts.push(String.fromCodePoint(...cps.splice(0)));
			}
			parts.push(String.fromCodePoint(...cps), String.fromCodePoint(...edges));
			return checkText(name, parts.join(''));
		}],
		['burst of 1000', async (name) => {
			// Text of 0 to about 1 KB, and every tenth message binary.
			const payload = (i) => i % 10 === 9
				? new Uint8Array(i).fill(i & 0xFF)
				: '#' + i + ' ' + 'ab✓🎉'.repeat(i % 200);
			for (let i = 0; i < 1000; i++) ws.send(payload(i));
			const bad = [];
			for (let i = 0; i < 1000; i++) {
				const got = await next(name + ' echo ' + i);
				const want = payload(i);
				const ok = typeof want === 'string' ? got === want
					: got instanceof ArrayBuffer && firstDiff(new Uint8Array(got), want) < 0;
				if (!ok) bad.push(i + ': got ' + describe(got) + (typeof got === 'string' ? ' ' + JSON.stringify(got.slice(0, 20)) : '') + ', want ' + describe(typeof want === 'string' ? want : want.buffer));
			}
			if (bad.length) return { name, ok: false, detail: bad.length + ' of 1000 wrong, first: ' + bad.slice(0, 5).join('; ') };
			return { name, ok: true, detail: '1000 messages (900 text, 100 binary) echoed in order' };
		}],
	];

	try {
		await new Promise((resolve, reject) => {
			ws.onopen = resolve;
			ws.onerror = () => reject(new Error('WebSocket error before open'));
			setTimeout(() => reject(new Error('timed out waiting for open')), 15000);
		});
		ws.onerror = null;
		report.extensions = ws.extensions;
		report.protocol = ws.protocol;
		for (const [name, test] of tests) {
			const t0 = performance.now();
			const r = await test(name);
			r.detail += ' (' + Math.round(performance.now() - t0) + ' ms)';
			report.results.push(r);
			if (!r.ok) break; // the echoes that follow would be out of step
		}
		if (queue.length) throw new Error(queue.length + ' unexpected messages: ' + queue.slice(0, 3).map(describe).join(', '));
	} catch (e) {
		report.error = String(e && e.stack || e);
	}
	if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(1000, 'echo tests done');
	report.close = await Promise.race([closedPromise,
		new Promise((resolve) => setTimeout(() => resolve({ code: 0, reason: 'timed out waiting for the close', wasClean: false }), 15000))]);
	return report;
})()`

// chooseChatJS picks /chat in the page's endpoint selector, as a user does
// (the change event rewrites the URL box), and returns the URL box.
const chooseChatJS = `(() => {
	const endpoint = document.getElementById('endpoint');
	endpoint.value = '/chat';
	endpoint.dispatchEvent(new Event('change'));
	return document.getElementById('url').value;
})()`

// joinChat loads the page in tab, connects it to /chat as user, with
// others already there, and waits for its welcome and its own join notice;
// it returns the notice's index in the log.
func joinChat(tab *browser, srv *httptest.Server, user, others int) int {
	tab.t.Helper()
	step(tab, "loading the page", chromedp.Navigate(srv.URL+"/"))
	step(tab, "waiting for the page", chromedp.WaitVisible(chromedp.ID("log")))
	if got, want := step(tab, "choosing /chat", chromedp.Evaluate[string](chooseChatJS)), "ws"+strings.TrimPrefix(srv.URL, "http")+"/chat"; got != want {
		tab.fatalf("URL box %q after choosing /chat, want %q", got, want)
	}
	step(tab, "clicking Connect", chromedp.Click(chromedp.ID("connect")))
	atWelcome := tab.waitLog("the welcome", lineAfter(-1, "received",
		exactly(fmt.Sprintf("received: Welcome to the chat, user %d! %d other(s) here.", user, others))))
	return tab.waitLog("its own join", lineAfter(atWelcome, "received", exactly(fmt.Sprintf("received: user %d joined", user))))
}

// TestBrowserChat opens the page in two tabs of one browser and connects
// both to /chat: each tab sees the other join; a message typed in either
// tab appears in both logs with its sender's name; a tab that disconnects
// is seen leaving.
func TestBrowserChat(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	t.Cleanup(cancel) // after the browser's and the server's cleanups

	srv := serveApp(t)(newServer(config{interval: time.Hour}))

	tabA := startBrowser(t, ctx)
	tabB := tabA.newTab()
	t.Logf("browser and two tabs ready after %v", time.Since(start).Round(time.Millisecond))

	atA := joinChat(tabA, srv, 1, 0)
	atB := joinChat(tabB, srv, 2, 1)
	atA = tabA.waitLog("user 2 joining", lineAfter(atA, "received", exactly("received: user 2 joined")))

	// say types text into tab's message box and sends it; both tabs log it
	// with the sender's name.
	say := func(tab *browser, user int, text string) {
		t.Helper()
		step(tab, "typing the message", chromedp.SendKeys(chromedp.ID("message"), text))
		step(tab, "clicking Send", chromedp.Click(chromedp.ID("send")))
		tab.waitLog("the sent message", lineAfter(-1, "sent", exactly("sent: "+text)))
		relayed := exactly(fmt.Sprintf("received: user %d: %s", user, text))
		atA = tabA.waitLog("the relayed message in tab A", lineAfter(atA, "received", relayed))
		atB = tabB.waitLog("the relayed message in tab B", lineAfter(atB, "received", relayed))
	}
	say(tabA, 1, "Hello from tab A: κόσμε ✓")
	say(tabB, 2, "And hello from tab B 🎉")

	// Tab B leaves: tab A is told.
	step(tabB, "clicking Disconnect", chromedp.Click(chromedp.ID("disconnect")))
	tabB.waitLog("the clean close", lineAfter(atB, "", regexp.MustCompile(`^closed: code 1000(, reason "user disconnected")?, wasClean true$`)))
	atA = tabA.waitLog("user 2 leaving", lineAfter(atA, "received", exactly("received: user 2 left")))

	if png, err := chromedp.Run(tabA.ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Errorf("taking a screenshot: %v", err)
	} else if path, err := saveArtifact(t.Name()+".png", png); err != nil {
		t.Errorf("saving the screenshot: %v", err)
	} else {
		t.Logf("screenshot of tab A: %s", path)
	}

	step(tabA, "clicking Disconnect", chromedp.Click(chromedp.ID("disconnect")))
	tabA.waitLog("the clean close", lineAfter(atA, "", regexp.MustCompile(`^closed: code 1000(, reason "user disconnected")?, wasClean true$`)))
	waitStats(t, ctx, srv, "/chat closed", func(s map[string]websocket.Stats) bool {
		return s["/chat"].Accepted == 2 && s["/chat"].Active == 0
	})

	for name, tab := range map[string]*browser{"A": tabA, "B": tabB} {
		for _, l := range tab.logLines() {
			if l.Kind == "error" {
				tab.errorf("tab %s: unexpected line: %s", name, l)
			}
		}
		tab.mu.Lock()
		for _, e := range tab.exceptions {
			t.Errorf("tab %s: page exception: %s", name, e)
		}
		tab.mu.Unlock()
	}
	t.Logf("scenario done after %v", time.Since(start).Round(time.Millisecond))
}

// busyChatJS, called with first and senders, checks a busy room in the
// page's log. The lines of the senders, users first to first+senders-1,
// must be chatLine's, each sender's in order, until the first sender's
// "done". It reports how many lines it counted, those that were not the
// next of their sender, whether it saw the "done", what the users before
// first said, and the page's closes and errors.
const busyChatJS = `((first, senders) => {
	const next = new Array(senders).fill(0), report = { count: 0, wrong: [], done: false, said: [], closes: [] };
	for (const d of document.getElementById('log').children) {
		const text = [...d.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.data).join('');
		if (d.className === 'error' || text.startsWith('closed:')) report.closes.push(text);
		const m = /^received: user (\d+): /.exec(text);
		if (!m) continue;
		const i = Number(m[1]) - first;
		if (i < 0) {
			report.said.push(text);
		} else if (i === 0 && text === m[0] + 'done' && !report.done) {
			report.done = true;
		} else if (i < senders && !report.done && text === m[0] + 'line ' + next[i] + ' from member ' + i + ', κόσμε ' + '-'.repeat(i % 40)) {
			next[i]++;
			report.count++;
		} else if (report.wrong.length < 5) {
			report.wrong.push(text + ' (lines of its sender before it: ' + (next[i] ?? 'none') + ')');
		}
	}
	return report;
})`

// busyChatReport is what busyChatJS returns.
type busyChatReport struct {
	Count  int      `json:"count"`
	Wrong  []string `json:"wrong"`
	Done   bool     `json:"done"`
	Said   []string `json:"said"`
	Closes []string `json:"closes"`
}

// waitBusyChat polls check, a call of busyChatJS, in tab until ok accepts
// its report, and returns the report. It fails the test on a wrong line, a
// close or an error in the log, or after browserStepTimeout.
func (b *browser) waitBusyChat(what, check string, ok func(busyChatReport) bool) busyChatReport {
	b.t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		r := step(b, "checking the room in the page's log", chromedp.Evaluate[busyChatReport](check))
		if len(r.Wrong) > 0 || len(r.Closes) > 0 {
			b.fatalf("waiting for %s, after %d lines: wrong lines %q, closes and errors %q", what, r.Count, r.Wrong, r.Closes)
		}
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			b.fatalf("timed out after %v waiting for %s: %d lines, said %q", browserStepTimeout, what, r.Count, r.Said)
		}
		select {
		case <-tick.C:
		case <-b.ctx.Done():
			b.fatalf("waiting for %s: %v", what, context.Cause(b.ctx))
		}
	}
}

// TestBrowserBusyChat is a busy /chat with three tabs in it: 100 raw
// clients of every dialect each send 20 lines in bursts (as in
// TestChatBusyRoom), and each tab says hello meanwhile. Every tab stays
// connected, with no close or error in its log, and its log has every line
// once, in order per sender, and every tab's hello; /status shows no member
// disconnected.
func TestBrowserBusyChat(t *testing.T) {
	const tabs, senders, lines = 3, 100, 20
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), browserTestTimeout)
	t.Cleanup(cancel)
	srv, _ := startServer(t, config{interval: time.Hour}) // closed after the browser

	browsers := []*browser{startBrowser(t, ctx)}
	for len(browsers) < tabs {
		browsers = append(browsers, browsers[0].newTab())
	}
	var hellos []string
	for i, tab := range browsers {
		joinChat(tab, srv, i+1, i)
		hellos = append(hellos, fmt.Sprintf("received: user %d: hello from tab %d", i+1, i+1))
	}
	t.Logf("browser and %d tabs in /chat after %v", tabs, time.Since(start).Round(time.Millisecond))

	// The raw clients, users tabs+1 on; each reads all the room sends.
	dialects := []websocket.Dialect{websocket.Hixie75, websocket.Hixie76, websocket.Hybi07, websocket.Hybi08, websocket.RFC6455}
	clients := make([]*client, senders)
	for i := range clients {
		c := dial(t, srv, dialects[i%len(dialects)], "/chat")
		c.expectText(fmt.Sprintf("Welcome to the chat, user %d! %d other(s) here.", tabs+i+1, tabs+i))
		c.expectText(fmt.Sprintf("user %d joined", tabs+i+1))
		c.conn.SetDeadline(time.Now().Add(browserTestTimeout))
		clients[i] = c
	}
	for _, c := range clients {
		go func() {
			for {
				if _, _, err := c.tryRead(); err != nil {
					return
				}
			}
		}()
	}

	burstStart := time.Now()
	sent := make(chan error, senders)
	for i, c := range clients {
		go func() { sent <- sendBursts(c, i, lines) }()
	}
	for i, tab := range browsers {
		step(tab, "typing a message", chromedp.SendKeys(chromedp.ID("message"), fmt.Sprintf("hello from tab %d", i+1)))
		step(tab, "clicking Send", chromedp.Click(chromedp.ID("send")))
	}
	for range senders {
		if err := <-sent; err != nil {
			t.Fatal(err)
		}
	}
	check := fmt.Sprintf("%s(%d, %d)", busyChatJS, tabs+1, senders)
	for _, tab := range browsers {
		tab.waitBusyChat("every line and hello", check, func(r busyChatReport) bool {
			return r.Count == senders*lines && len(r.Said) == tabs
		})
	}
	t.Logf("every tab had every line %v after the bursts began", time.Since(burstStart).Round(time.Millisecond))

	// A last line, after all the others: a line relayed twice would show
	// before it.
	clients[0].send(1, []byte("done"))
	for i, tab := range browsers {
		r := tab.waitBusyChat("the last line", check, func(r busyChatReport) bool { return r.Done })
		slices.Sort(r.Said)
		if r.Count != senders*lines || !slices.Equal(r.Said, hellos) {
			tab.errorf("tab %d: %d lines, said %q; want %d lines, said %q", i+1, r.Count, r.Said, senders*lines, hellos)
		}
		if state := step(tab, "reading the socket's state", chromedp.Evaluate[int](`window.ws.readyState`)); state != 1 {
			tab.errorf("tab %d: readyState %d, want 1 (open)", i+1, state)
		}
	}
	s := status(t, srv)["/chat"]
	if s.Active != tabs+senders || s.Group == nil || *s.Group != (websocket.GroupStats{Members: tabs + senders}) {
		t.Errorf("/chat status %+v, group %+v: want %d open and members, none disconnected or skipped", s.Stats, s.Group, tabs+senders)
	}
	if png, err := chromedp.Run(browsers[0].ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Errorf("taking a screenshot: %v", err)
	} else if path, err := saveArtifact(t.Name()+".png", png); err != nil {
		t.Errorf("saving the screenshot: %v", err)
	} else {
		t.Logf("screenshot of tab 1: %s", path)
	}
	t.Logf("scenario done after %v", time.Since(start).Round(time.Millisecond))
}

// serveApp returns a function that serves h on 127.0.0.1 until the test
// ends, then shuts down its WebSockets with shutdown: newServer's results
// fit it. Cleanups run last in, first out: a browser started after it
// closes first.
func serveApp(t *testing.T) func(h http.Handler, shutdown func(context.Context) error) *httptest.Server {
	return func(h http.Handler, shutdown func(context.Context) error) *httptest.Server {
		srv := httptest.NewServer(h)
		t.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		return srv
	}
}
