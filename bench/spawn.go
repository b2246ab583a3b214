package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hybi/websocket/bench/servers"
)

// envServe tells a process started by SelfSpawn to be an echo server: its
// value is "lib mode".
const envServe = "HYBI_BENCH_ECHOSERVER"

// ServeIfChild turns the process into an echo server and exits if it was
// started by SelfSpawn (into an echo client if by SelfSpawnClient);
// otherwise it returns at once. Call it first in main
// (or TestMain) of a program that uses SelfSpawn.
func ServeIfChild() {
	serveClientIfChild()
	v := os.Getenv(envServe)
	if v == "" {
		return
	}
	lib, mode, _ := strings.Cut(v, " ")
	if err := servers.Main(lib, servers.Mode(mode), "127.0.0.1:0", os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Server is an echo server process.
type Server struct {
	Addr string
	PID  int
	cmd  *exec.Cmd
	in   io.WriteCloser
}

// Stop ends the server process and waits for it.
func (s *Server) Stop() error {
	_ = s.in.Close()
	_ = s.cmd.Process.Kill() // our own child, by its PID
	err := s.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed, as intended
	}
	return err
}

// SpawnFunc starts lib's echo server with compression mode.
type SpawnFunc func(lib string, mode servers.Mode) (*Server, error)

// SelfSpawn starts the running executable again as lib's echo server (see
// ServeIfChild).
func SelfSpawn(lib string, mode servers.Mode) (*Server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return Spawn(exec.Command(exe), lib, mode)
}

// Spawn starts cmd as lib's echo server: cmd is either a program calling
// ServeIfChild first, or cmd/echoserver with its flags set. It waits for
// the address the server prints.
func Spawn(cmd *exec.Cmd, lib string, mode servers.Mode) (*Server, error) {
	in, out, err := startChild(cmd, envServe+"="+lib+" "+string(mode))
	if err != nil {
		return nil, err
	}
	s := &Server{PID: cmd.Process.Pid, cmd: cmd, in: in}
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case s.Addr = <-addr:
	case <-time.After(10 * time.Second):
	}
	if s.Addr == "" {
		_ = s.Stop()
		return nil, fmt.Errorf("%s server (%s) printed no address", lib, mode)
	}
	return s, nil
}

// startChild starts cmd, a child of the harness, with env added to its
// environment and its stderr the harness's; it returns its stdin and
// stdout.
func startChild(cmd *exec.Cmd, env string) (io.WriteCloser, io.ReadCloser, error) {
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	return in, out, nil
}
