//go:build linux

package websocket

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Real proxies from Debian's packages, started on 127.0.0.1 by the tests:
// tinyproxy for HTTP CONNECT, dante-server's danted for SOCKS5.

// proxyBinary returns the path of a Debian proxy's binary. It never
// installs one: a missing binary fails the test in CI and skips it
// elsewhere.
func proxyBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	// A user's PATH may lack the sbin directories where daemons live.
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return path
		}
	}
	msg := fmt.Sprintf("%s not found; install it with: apt-get install -y %s", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// closedPort returns a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startProxy runs a proxy in the foreground with the configuration that
// config writes for a port, and returns its address once it accepts. The
// daemons cannot listen on port 0 and say which port they got, so a free
// port is picked and, if the proxy exits (another process took the port
// first), another one.
func startProxy(t *testing.T, bin string, args func(conf string) []string, config func(port int) string) string {
	t.Helper()
	dir := t.TempDir()
	for try := 1; ; try++ {
		addr, err := launchProxy(t, bin, args, config, dir)
		if err == nil {
			return addr
		}
		if !errors.Is(err, errProxyExited) || try == 5 {
			t.Fatal(err)
		}
		t.Log(err, "; trying another port")
	}
}

var errProxyExited = errors.New("exited")

// launchProxy is one try of startProxy. At cleanup the process is stopped
// with SIGTERM (danted then stops its children) and waited for.
func launchProxy(t *testing.T, bin string, args func(conf string) []string, config func(port int) string, dir string) (string, error) {
	port := closedPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf := filepath.Join(dir, "proxy.conf")
	if err := os.WriteFile(conf, []byte(config(port)), 0o644); err != nil {
		return "", err
	}
	var out htBuffer
	cmd := exec.Command(bin, args(conf)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case err := <-exited:
			return "", fmt.Errorf("%s %w (%v):\n%s", bin, errProxyExited, err, out.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return "", fmt.Errorf("%s does not accept on %s:\n%s", bin, addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s said:\n%s", bin, out.String())
		}
	})
	return addr, nil
}

// startTinyproxy starts tinyproxy allowing CONNECT to the given ports, and
// with Basic authentication if auth is "user pass".
func startTinyproxy(t *testing.T, auth string, connectPorts ...int) string {
	bin := proxyBinary(t, "tinyproxy", "tinyproxy")
	return startProxy(t, bin, func(conf string) []string { return []string{"-d", "-c", conf} }, func(port int) string {
		conf := fmt.Sprintf("Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Connect\n", port)
		for _, p := range connectPorts {
			conf += fmt.Sprintf("ConnectPort %d\n", p)
		}
		if auth != "" {
			conf += "BasicAuth " + auth + "\n"
		}
		return conf
	})
}

// portOf returns the port of a host:port.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wantProxyStatus checks that err is a *ProxyError with the status.
func wantProxyStatus(t *testing.T, err error, status int) *ProxyError {
	t.Helper()
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.Status != status {
		t.Fatalf("error %v, want a %d *ProxyError", err, status)
	}
	return pe
}

func TestProxyTinyproxy(t *testing.T) {
	echo := proxyEchoServer(t)
	down := closedPort(t)
	proxy := mustURL(t, "http://"+startTinyproxy(t, "", portOf(t, echo), down))

	t.Run("tunnel", func(t *testing.T) {
		conn, err := dialProxy(testCtx(t, 10*time.Second), proxy, echo, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		checkTunnel(t, conn)
	})
	t.Run("port not allowed", func(t *testing.T) {
		// Port 9 is below every ephemeral range: never the echo's or down.
		_, err := dialProxy(testCtx(t, 10*time.Second), proxy, "127.0.0.1:9", nil, nil)
		pe := wantProxyStatus(t, err, http.StatusForbidden)
		if !bytes.Contains(pe.Body, []byte("not allowed")) {
			t.Errorf("body %q does not say why", pe.Body)
		}
	})
	t.Run("target down", func(t *testing.T) {
		_, err := dialProxy(testCtx(t, 10*time.Second), proxy, net.JoinHostPort("127.0.0.1", strconv.Itoa(down)), nil, nil)
		wantProxyStatus(t, err, http.StatusInternalServerError)
	})
}

func TestProxyTinyproxyAuth(t *testing.T) {
	echo := proxyEchoServer(t)
	addr := startTinyproxy(t, "user pass", portOf(t, echo))

	t.Run("right", func(t *testing.T) {
		conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://user:pass@"+addr), echo, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		checkTunnel(t, conn)
	})
	// tinyproxy 1.11 answers wrong credentials with 401 and its
	// WWW-Authenticate, not 407.
	for _, tc := range []struct {
		name, user, challenge string
		status                int
	}{
		{"wrong", "user:wrong@", "Www-Authenticate", http.StatusUnauthorized},
		{"missing", "", "Proxy-Authenticate", http.StatusProxyAuthRequired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "http://"+tc.user+addr), echo, nil, nil)
			pe := wantProxyStatus(t, err, tc.status)
			if !errors.Is(err, ErrProxyAuth) {
				t.Errorf("error %v does not wrap ErrProxyAuth", err)
			}
			if pe.Header.Get(tc.challenge) == "" {
				t.Errorf("fields %v lack %s", pe.Header, tc.challenge)
			}
		})
	}
}

// startDante starts danted with the given socksmethod, relaying from and
// to 127.0.0.1, except to port 9.
func startDante(t *testing.T, method string) string {
	bin := proxyBinary(t, "danted", "dante-server")
	dir := t.TempDir()
	return startProxy(t, bin, func(conf string) []string {
		// One main process in the foreground; the pid file in the test's
		// directory, not /run.
		return []string{"-N", "1", "-f", conf, "-p", filepath.Join(dir, "danted.pid")}
	}, func(port int) string {
		return fmt.Sprintf(`logoutput: stderr
internal: 127.0.0.1 port = %d
external: 127.0.0.1
clientmethod: none
socksmethod: %s
client pass {
	from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks block {
	from: 127.0.0.0/8 to: 0.0.0.0/0 port = 9
}
socks pass {
	from: 127.0.0.0/8 to: 0.0.0.0/0
	command: connect
}
`, port, method)
	})
}

func TestProxyDante(t *testing.T) {
	echo := proxyEchoServer(t)
	addr := startDante(t, "none")
	port := strconv.Itoa(portOf(t, echo))

	for _, tc := range []struct{ scheme, target string }{
		{"socks5", "127.0.0.1:" + port},
		// The proxy resolves the name.
		{"socks5h", "localhost:" + port},
	} {
		t.Run(tc.scheme+" "+tc.target, func(t *testing.T) {
			conn, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, tc.scheme+"://"+addr), tc.target, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			checkTunnel(t, conn)
		})
	}
	for _, tc := range []struct {
		name, target string
		reply        byte
	}{
		{"refused", net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort(t))), 5},
		{"not allowed", "127.0.0.1:9", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5://"+addr), tc.target, nil, nil)
			var se *SOCKSError
			if !errors.As(err, &se) || se.Reply != tc.reply {
				t.Fatalf("error %v, want a *SOCKSError with code %d", err, tc.reply)
			}
		})
	}
}

// TestProxyDanteUsername: danted checks usernames against the system's
// users, which a test should not create, so here it only rejects;
// TestProxySOCKS5Auth shows a username/password accepted.
func TestProxyDanteUsername(t *testing.T) {
	echo := proxyEchoServer(t)
	addr := startDante(t, "username")
	for name, user := range map[string]string{"wrong": "nosuchuser:pass@", "missing": ""} {
		t.Run(name, func(t *testing.T) {
			_, err := dialProxy(testCtx(t, 10*time.Second), mustURL(t, "socks5://"+user+addr), echo, nil, nil)
			if !errors.Is(err, ErrProxyAuth) {
				t.Fatalf("error %v, want ErrProxyAuth", err)
			}
		})
	}
}

// TestDialThroughProxies dials our Handler through each real proxy, as
// DialOptions.Proxy names it: ws:// and wss:// through tinyproxy with
// basic auth, ws:// through danted with socks5 and socks5h; a message is
// echoed each time. A refusal by the proxy reaches Dial's caller typed.
func TestDialThroughProxies(t *testing.T) {
	plain := httptest.NewServer(&Handler{Serve: reusingEcho})
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(&Handler{Serve: reusingEcho})
	t.Cleanup(secure.Close)
	tiny := startTinyproxy(t, "user pass", portOf(t, plain.Listener.Addr().String()), portOf(t, secure.Listener.Addr().String()))
	dante := startDante(t, "none")
	pool := x509.NewCertPool()
	pool.AddCert(secure.Certificate())

	wsURL := func(srv *httptest.Server, scheme, host string) string {
		return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(portOf(t, srv.Listener.Addr().String()))) + "/"
	}
	for _, tc := range []struct {
		name, proxy, url string
	}{
		{"http CONNECT, ws", "http://user:pass@" + tiny, wsURL(plain, "ws", "127.0.0.1")},
		{"http CONNECT, wss", "http://user:pass@" + tiny, wsURL(secure, "wss", "127.0.0.1")},
		{"socks5", "socks5://" + dante, wsURL(plain, "ws", "127.0.0.1")},
		{"socks5h", "socks5h://" + dante, wsURL(plain, "ws", "localhost")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := mustURL(t, tc.proxy)
			c, resp, err := Dial(testCtx(t, 10*time.Second), tc.url, &DialOptions{
				Proxy:     http.ProxyURL(proxy),
				TLSConfig: &tls.Config{RootCAs: pool},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", resp.StatusCode)
			}
			msg := []byte("through " + tc.name)
			if err := c.WriteMessage(BinaryMessage, msg); err != nil {
				t.Fatal(err)
			}
			if typ, got, err := c.ReadMessage(); err != nil || typ != BinaryMessage || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %v %q %v", typ, got, err)
			}
			if err := c.Close(StatusNormalClosure, ""); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		_, _, err := Dial(testCtx(t, 10*time.Second), wsURL(plain, "ws", "127.0.0.1"), &DialOptions{
			Proxy: http.ProxyURL(mustURL(t, "http://"+tiny)), // no credentials
		})
		wantProxyStatus(t, err, http.StatusProxyAuthRequired)
		if !errors.Is(err, ErrProxyAuth) {
			t.Errorf("error %v does not wrap ErrProxyAuth", err)
		}
	})
}
