package servers

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hybi/websocket/bench/loadgen"
)

// envServe makes the test binary a server of TestServe: "lib mode".
const envServe = "HYBI_BENCH_SERVERS_TEST"

// TestMain lets the test binary serve as the servers TestServe starts.
func TestMain(m *testing.M) {
	if v := os.Getenv(envServe); v != "" {
		lib, mode, _ := strings.Cut(v, " ")
		serveChild(lib, Mode(mode))
		return
	}
	os.Exit(m.Run())
}

// serveChild serves lib's server for mode on a loopback listener whose
// address it prints; once stdin reaches EOF it closes the listener and
// prints what Serve returned, or that it did not return.
func serveChild(lib string, mode Mode) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println(ln.Addr())
	done := make(chan error, 1)
	go func() { done <- Serve(ln, lib, mode) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = ln.Close()
	select {
	case err := <-done:
		fmt.Println("returned:", err)
	case <-time.After(10 * time.Second):
		fmt.Println("did not return")
	}
	os.Exit(0)
}

// TestServe runs every library's server in every mode it supports, each in
// a process of its own as in the harness (so that a race the detector
// reports inside a peer's library, see README.md, fails no test here): an
// echo server answers a text and a binary message (a broadcast server the
// handshake), it answers the close handshake, and Serve returns nil once
// the listener is closed, as cmd/echoserver relies on.
func TestServe(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, lib := range append(slices.Clone(Libs), Floor) {
		for _, mode := range []Mode{None, NoTakeover, Takeover, Broadcast} {
			if !Supports(lib, mode) {
				continue
			}
			t.Run(lib+"/"+string(mode), func(t *testing.T) {
				cmd := exec.Command(exe)
				cmd.Env = append(os.Environ(), envServe+"="+lib+" "+string(mode))
				cmd.Stderr = os.Stderr
				in, err := cmd.StdinPipe()
				if err != nil {
					t.Fatal(err)
				}
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				defer func() { _ = cmd.Wait() }()
				defer func() { _ = cmd.Process.Kill() }() // our own child, by its PID
				lines := bufio.NewScanner(out)
				if !lines.Scan() {
					t.Fatal("the server printed no address")
				}
				c, err := loadgen.Dial(lines.Text(), "", 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if mode != Broadcast {
					for _, op := range []byte{loadgen.OpText, loadgen.OpBinary} {
						msg := []byte("echo " + lib)
						if _, err := c.RoundTrip(loadgen.MaskedFrame(op, msg, false), op, msg); err != nil {
							t.Errorf("echo (opcode %d): %v", op, err)
						}
					}
				}
				if err := c.CloseHandshake(5 * time.Second); err != nil {
					t.Errorf("close handshake: %v", err)
				}
				_ = in.Close()
				for lines.Scan() {
					if line := lines.Text(); strings.HasPrefix(line, "returned:") || line == "did not return" {
						if line != "returned: <nil>" {
							t.Errorf("Serve after the listener closed: %s", line)
						}
						return
					}
				}
				t.Error("the server ended without saying whether Serve returned")
			})
		}
	}
}
