package clients

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hybi/websocket"
	"github.com/hybi/websocket/bench/servers"
)

// drive runs Main for cfg in this process: it waits for "ready", lets the
// load run, says start and stop, and returns the Report line and Main's
// error.
func drive(t *testing.T, cfg Config) (string, error) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := Main(cfg, inR, outW)
		_ = outW.Close()
		errc <- err
	}()
	sc := bufio.NewScanner(outR)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			go func() {
				time.Sleep(50 * time.Millisecond)
				_, _ = io.WriteString(inW, "start\n")
				time.Sleep(100 * time.Millisecond)
				_, _ = io.WriteString(inW, "stop\n")
			}()
		}
	}
	_ = inW.Close()
	err := <-errc
	if len(lines) == 0 {
		t.Fatalf("%s: no output (%v)", cfg.Lib, err)
	}
	return lines[len(lines)-1], err
}

// TestClients runs each client against this library's echo server, in
// this process.
func TestClients(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = servers.Serve(ln, "hybi", servers.None) }()
	for _, lib := range Libs {
		for _, size := range []int{0, 32, 70000} {
			cfg := Config{Lib: lib, URL: "ws://" + ln.Addr().String() + "/", Conns: 4, Size: size, MaxTime: 20 * time.Second}
			line, err := drive(t, cfg)
			if err != nil {
				t.Errorf("%s, %d B: %v (%s)", lib, size, err, line)
				continue
			}
			if !strings.Contains(line, `"Ops":`) || strings.Contains(line, `"Ops":0,`) {
				t.Errorf("%s, %d B: %s", lib, size, line)
			}
		}
	}
}

// TestClientsCheckEchoes runs each client against a server that changes one
// byte of the hundredth echo of each connection: each must fail.
func TestClientsCheckEchoes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := &websocket.Handler{Serve: func(c *websocket.Conn) {
		for i := 0; ; i++ {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if i == 100 {
				msg[len(msg)/2] ^= 1
			}
			if err := c.WriteMessage(typ, msg); err != nil {
				return
			}
		}
	}}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	for _, lib := range Libs {
		cfg := Config{Lib: lib, URL: "ws://" + ln.Addr().String() + "/", Conns: 2, Size: 32, MaxTime: 20 * time.Second}
		line, err := drive(t, cfg)
		if err == nil || !strings.Contains(err.Error(), "differs") {
			t.Errorf("%s: error %v (%s), want an echo that differs", lib, err, line)
		}
	}
}
