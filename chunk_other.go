//go:build !unix

package websocket

// Without mmap, chunks are heap memory, which the garbage collector
// reclaims in its own time.

func newChunk() ([]byte, error) { return make([]byte, chunkSize), nil }

func freeChunk([]byte) {}
