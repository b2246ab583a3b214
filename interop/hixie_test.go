package interop

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hybi/websocket"
)

// Our client against a server that is not ours and still speaks the old
// dialects: Node's websocket-driver (npm), run by testdata/hixie_server.js.

// installCommand installs what these tests need on Debian.
const installCommand = "apt-get install -y nodejs npm"

// nodeModules installs testdata's locked packages once, under the user's
// cache directory keyed by the lock file, and returns their node_modules.
func nodeModules(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is missing: %s", tool, installCommand)
			}
			t.Skipf("%s is missing: %s", tool, installCommand)
		}
	}
	lock, err := os.ReadFile("testdata/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil { // no HOME
		cache = os.TempDir()
	}
	sum := sha256.Sum256(lock)
	dir := filepath.Join(cache, "hybi-websocket-interop", "npm-"+hex.EncodeToString(sum[:8]))
	modules := filepath.Join(dir, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "websocket-driver", "package.json")); err == nil {
		return modules
	}
	// Installed beside, then renamed into place: never half there.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.CommandContext(t.Context(), "npm", "ci", "--prefix", tmp, "--no-audit", "--no-fund").CombinedOutput()
	if err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) {
		if _, serr := os.Stat(modules); serr != nil { // not another run's
			t.Fatal(err)
		}
	}
	return modules
}

// nodeEnd is what hixie_server.js prints as a connection ends: how
// ("close": the driver's close event; "end": the client ended TCP first),
// and the code and reason of a hybi close.
type nodeEnd struct {
	Version string  `json:"version"`
	How     string  `json:"how"`
	Code    *int    `json:"code"`
	Reason  *string `json:"reason"`
}

func (e nodeEnd) String() string {
	if e.Code == nil {
		return e.Version + ": " + e.How
	}
	return fmt.Sprintf("%s: %s %d %q", e.Version, e.How, *e.Code, *e.Reason)
}

// nodeServer is a running hixie_server.js.
type nodeServer struct {
	addr  string // 127.0.0.1:port
	lines chan string
}

// startNode runs hixie_server.js until the test ends, then kills it and
// waits for it.
func startNode(t *testing.T) *nodeServer {
	t.Helper()
	modules := nodeModules(t)
	s := &nodeServer{lines: make(chan string, 64)}
	cmd := exec.Command("node", "testdata/hixie_server.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+modules)
	var stderr bytes.Buffer
	cmd.Stdout = &lineWriter{lines: s.lines}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if stderr.Len() > 0 {
			t.Logf("node's stderr:\n%s", stderr.Bytes())
		}
	})
	s.addr = "127.0.0.1:" + s.next(t)
	return s
}

// next returns the next line the server prints.
func (s *nodeServer) next(t *testing.T) string {
	t.Helper()
	select {
	case l := <-s.lines:
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("hixie_server.js printed nothing for 10 s")
		return ""
	}
}

func (s *nodeServer) end(t *testing.T) nodeEnd {
	t.Helper()
	var e nodeEnd
	l := s.next(t)
	if err := json.Unmarshal([]byte(l), &e); err != nil {
		t.Fatalf("hixie_server.js printed %q: %v", l, err)
	}
	return e
}

// lineWriter sends each complete line written to it to lines.
type lineWriter struct {
	mu    sync.Mutex
	buf   []byte
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		select {
		case w.lines <- string(w.buf[:i]):
		default: // nobody reads: the test failed already
		}
		w.buf = w.buf[i+1:]
	}
}

// TestHixieNode: in each dialect, websocket-driver echoes text of every
// kind byte for byte, and sees our close as that dialect carries it.
func TestHixieNode(t *testing.T) {
	checkLeaks(t)
	s := startNode(t)
	texts := []string{"hello", "", "héllo wörld ✓ 🎉 日本語 Ωμέγα", string(textPayload(64 << 10))}
	cases := []struct {
		dialect websocket.Dialect
		want    string // how websocket-driver sees our Close(1000, "") or Close(4001, "bye ✓")
	}{
		{websocket.Hixie75, "hixie-75: end"}, // it has no close frame
		{websocket.Hixie76, "hixie-76: close"},
		{websocket.RFC6455, `hybi-13: close 4001 "bye ✓"`},
	}
	for _, tc := range cases {
		t.Run(tc.dialect.String(), func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			c, _, err := websocket.Dial(ctx, "ws://"+s.addr+"/echo", &websocket.DialOptions{
				Dialect: tc.dialect,
				Header:  http.Header{"Origin": {"http://" + s.addr}},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			for _, m := range texts {
				if err := echoOnce(c, textMsg, []byte(m)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dialect == websocket.RFC6455 {
				if err := echoOnce(c, binaryMsg, binaryPayload(64<<10, 3)); err != nil {
					t.Fatal(err)
				}
			}
			code, reason := websocket.StatusNormalClosure, ""
			if tc.dialect == websocket.RFC6455 {
				code, reason = 4001, "bye ✓"
			}
			if err := c.Close(code, reason); err != nil {
				t.Errorf("Close: %v", err)
			}
			if got := s.end(t).String(); got != tc.want {
				t.Errorf("websocket-driver saw %s, want %s", got, tc.want)
			}
		})
	}
}

// TestHixieNodeClose: websocket-driver closes at once; our reader and
// CloseCause see that close as each dialect carries it.
func TestHixieNodeClose(t *testing.T) {
	checkLeaks(t)
	s := startNode(t)
	const code, reason = 4002, "server bye ✓"
	for _, tc := range []struct {
		dialect websocket.Dialect
		want    func(err error) bool
	}{
		{websocket.Hixie75, func(err error) bool { return errors.Is(err, websocket.ErrDropped) }}, // its only close
		{websocket.Hixie76, func(err error) bool { return isClose(err, websocket.StatusNoStatusRcvd, "") }},
		{websocket.RFC6455, func(err error) bool { return isClose(err, code, reason) }},
	} {
		t.Run(tc.dialect.String(), func(t *testing.T) {
			ctx := testContext(t, 30*time.Second)
			u := fmt.Sprintf("ws://%s/close?code=%d&reason=%s", s.addr, code, url.QueryEscape(reason))
			c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Dialect: tc.dialect, Header: http.Header{"Origin": {"http://" + s.addr}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			typ, msg, err := c.ReadMessage()
			if err == nil {
				t.Fatalf("read a %s message %q, want the server's close", typ, msg)
			}
			if cause := c.CloseCause(); !tc.want(cause) {
				t.Errorf("read ended with %v; CloseCause %v (%T)", err, cause, cause)
			}
			t.Logf("read ended with %v; websocket-driver: %s", err, s.end(t))
		})
	}
}

func isClose(err error, code websocket.StatusCode, reason string) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code == code && ce.Reason == reason
}
