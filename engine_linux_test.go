package websocket

import "github.com/hybi/websocket/internal/poll"

// engineStart starts the engine's pollers, whose goroutines then count in
// the tests' base of goroutines.
func engineStart() { poll.Pick() }
