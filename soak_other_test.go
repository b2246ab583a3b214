//go:build !unix

package websocket

import "testing"

// soakRaiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func soakRaiseFileLimit(t *testing.T, want uint64) {}
