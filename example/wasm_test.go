package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hybi/websocket"
)

const (
	// wasmTestTimeout bounds TestBrowserWasmClient: the build, the
	// browser's start, the program's run and the browser's close.
	wasmTestTimeout = 3 * time.Minute
	// wasmBuildTimeout bounds the build of the wasm program.
	wasmBuildTimeout = 2 * time.Minute
	// wasmRunTimeout bounds the wait for the program's result.
	wasmRunTimeout = 45 * time.Second
)

// wasmPage loads wasm_exec.js and client.wasm, and runs it; a failure to
// load is a result too.
const wasmPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>wasm client</title>
<script src="wasm_exec.js"></script>
<script>
const go = new Go();
WebAssembly.instantiateStreaming(fetch("client.wasm"), go.importObject)
	.then((r) => go.run(r.instance))
	.catch((e) => { window.wasmResult = "FAIL: loading the program: " + e; });
</script></head><body>wasm client</body></html>`

// syncBuffer is a bytes.Buffer for a logger that many goroutines use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildWasmClient builds testdata/wasmclient for GOOS=js GOARCH=wasm into
// dir, and copies the Go distribution's wasm_exec.js beside it.
func buildWasmClient(t *testing.T, ctx context.Context, dir string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found: %v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wasmBuildTimeout)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, goBin, "build", "-o", filepath.Join(dir, "client.wasm"), "./testdata/wasmclient")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm client: %v\n%s", err, out)
	}
	goroot, err := exec.CommandContext(ctx, goBin, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	execJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		t.Fatalf("wasm_exec.js: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wasm_exec.js"), execJS, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wasm client built in %v", time.Since(start).Round(time.Millisecond))
}

// TestBrowserWasmClient runs websocket.Dial compiled for GOOS=js in
// headless chromium: the page, served with the example app from one
// httptest server (same origin), loads testdata/wasmclient, which echoes
// text and binary through the app's /echo, checks what the browser cannot
// do is refused, closes /echo-proto with a code and reason that the
// server's log records, and gets /close-me's close as a *CloseError.
func TestBrowserWasmClient(t *testing.T) {
	start := time.Now()
	findChromium(t) // skip (or, in CI, fail) before building anything
	ctx, cancel := context.WithTimeout(context.Background(), wasmTestTimeout)
	t.Cleanup(cancel)

	dir := t.TempDir()
	buildWasmClient(t, ctx, dir)

	// The app, logging as JSON into logs, with an echo that chooses a
	// subprotocol beside it.
	var logs syncBuffer
	app, shutdown := newServer(config{interval: time.Second, logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	protoEcho := &websocket.Handler{
		Subprotocols: []string{"echo.v1"},
		Logger:       slog.New(slog.NewJSONHandler(&logs, nil)).With("endpoint", "/echo-proto"),
		Serve: websocket.Events{OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			c.WriteMessage(typ, msg)
		}}.Serve,
	}
	mux := http.NewServeMux()
	mux.Handle("/", app)
	mux.Handle("/echo-proto", protoEcho)
	closer := &websocket.Handler{Serve: func(c *websocket.Conn) { c.Close(4002, "server says bye") }}
	mux.Handle("/close-me", closer)
	mux.HandleFunc("/wasm/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(wasmPage))
	})
	mux.Handle("/wasm/client.wasm", http.StripPrefix("/wasm/", http.FileServer(http.Dir(dir))))
	mux.Handle("/wasm/wasm_exec.js", http.StripPrefix("/wasm/", http.FileServer(http.Dir(dir))))
	srv := serveApp(t)(mux, func(ctx context.Context) error {
		return errors.Join(shutdown(ctx), protoEcho.Shutdown(ctx), closer.Shutdown(ctx))
	})

	b := startBrowser(t, ctx)
	t.Logf("browser started after %v", time.Since(start).Round(time.Millisecond))
	runStart := time.Now()
	step(b, "loading the page", chromedp.Navigate(srv.URL+"/wasm/"))
	result := stepWithin(b, wasmRunTimeout+5*time.Second, "waiting for the wasm client's result",
		chromedp.Poll[string]("window.wasmResult", chromedp.WithPollingTimeout(wasmRunTimeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	steps := step(b, "reading the wasm client's log", chromedp.Evaluate[[]string]("window.wasmLog || []"))
	for _, s := range steps {
		t.Logf("wasm: %s", s)
	}
	if result != "ok" {
		b.fatalf("wasm client: %s", result)
	}
	t.Logf("wasm client ran in %v", time.Since(runStart).Round(time.Millisecond))

	// The server recorded the close: 4001 and its reason, at /echo-proto.
	deadline := time.Now().Add(browserStepTimeout)
	for {
		found := false
		for line := range strings.Lines(logs.String()) {
			var rec struct {
				Msg, Endpoint, Cause, Reason string
				Code                         int
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "connection closed" && rec.Endpoint == "/echo-proto" {
				if rec.Code != 4001 || rec.Reason != "bye from wasm ✓" || rec.Cause != "peer_close" {
					t.Fatalf("/echo-proto's close: %s", line)
				}
				found = true
			}
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server logged no close of /echo-proto; its log:\n%s", logs.String())
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Logf("server log:\n%s", logs.String())
}
