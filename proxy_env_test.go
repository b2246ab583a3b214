package websocket

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDialProxyFromEnvironment checks that Dial's default Proxy honours
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY. net/http reads them once per
// process, and never proxies a loopback address: so the dials run in a
// child process with the variables set, to names that are not loopback
// (example.com, in httptest's certificate, and skipped.test), which the
// proxy, or the child's NetDialContext when nothing is proxied, maps to
// the test's servers.
func TestDialProxyFromEnvironment(t *testing.T) {
	if os.Getenv("WS_PROXY_ENV_CHILD") != "" {
		dialFromEnvironment(t)
		return
	}
	plain := httptest.NewServer(&Handler{Serve: reusingEcho})
	t.Cleanup(plain.Close)
	secure := httptest.NewTLSServer(&Handler{Serve: reusingEcho})
	t.Cleanup(secure.Close)
	var mu sync.Mutex
	var connects []string
	proxy := proxyFake(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil || req.Method != http.MethodConnect {
			return
		}
		mu.Lock()
		connects = append(connects, req.Host)
		mu.Unlock()
		target := plain.Listener.Addr().String()
		if strings.HasSuffix(req.Host, ":443") {
			target = secure.Listener.Addr().String()
		}
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer s.Close()
		io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		go io.Copy(s, c)
		io.Copy(c, s)
	})
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: secure.Certificate().Raw})
	cmd := exec.Command(os.Args[0], "-test.run=^TestDialProxyFromEnvironment$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(),
		"WS_PROXY_ENV_CHILD=1",
		"WS_PROXY_ENV_PLAIN="+plain.Listener.Addr().String(),
		"WS_PROXY_ENV_CERT="+string(cert),
		"HTTPS_PROXY=http://"+proxy.addr,
		"HTTP_PROXY=http://"+proxy.addr,
		"NO_PROXY=skipped.test",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(connects, " ") != "example.com:443 example.com:80" {
		t.Errorf("the proxy was asked to CONNECT to %q, want example.com:443 then example.com:80 (and not skipped.test)", connects)
	}
}

// dialFromEnvironment is the child's part: wss:// and ws:// to
// example.com through the proxies of the environment, ws:// to
// skipped.test directly (NO_PROXY).
func dialFromEnvironment(t *testing.T) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(os.Getenv("WS_PROXY_ENV_CERT"))) {
		t.Fatal("no certificate")
	}
	plain := os.Getenv("WS_PROXY_ENV_PLAIN")
	opts := &DialOptions{
		TLSConfig: &tls.Config{RootCAs: pool},
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == "skipped.test:80" {
				addr = plain
			}
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	for _, u := range []string{"wss://example.com/", "ws://example.com/", "ws://skipped.test/"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, _, err := Dial(ctx, u, opts)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if err := c.WriteText(u); err != nil {
			t.Fatal(err)
		}
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != u {
			t.Fatalf("%s: echo %q, %v", u, msg, err)
		}
		c.Close(StatusNormalClosure, "")
	}
}
