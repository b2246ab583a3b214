//go:build unix

package websocket

import (
	"syscall"
	"testing"
)

// soakRaiseFileLimit raises RLIMIT_NOFILE's soft limit towards want.
func soakRaiseFileLimit(t *testing.T, want uint64) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("getrlimit: %v", err)
		return
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Logf("setrlimit: %v", err)
	}
	if lim.Cur < want {
		t.Logf("RLIMIT_NOFILE is %d, %d wanted", lim.Cur, want)
	}
}
