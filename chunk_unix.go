//go:build unix

package websocket

import "syscall"

// newChunk maps chunkSize bytes of anonymous memory: outside the Go heap,
// they go back to the system as soon as freeChunk unmaps them, and only
// the pages written to are ever resident.
func newChunk() ([]byte, error) {
	return syscall.Mmap(-1, 0, chunkSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func freeChunk(b []byte) { syscall.Munmap(b) }
