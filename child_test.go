package websocket

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"
)

// startChild runs this test binary again, as a process of its own running
// the test named run, with env added to its environment: for clients
// whose memory must not count as the test's, or a server started with
// other settings. The child ends when its stdin closes, at cleanup.
func startChild(t testing.TB, run string, env ...string) (stdin io.WriteCloser, stdout *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
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
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	return stdin, bufio.NewReader(out)
}
