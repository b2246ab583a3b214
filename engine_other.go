//go:build !linux

package websocket

import "net"

// Elsewhere than on Linux, Handler.Events runs its callbacks on a
// goroutine per connection: the engine's pollers use epoll.

func (h *Handler) engineConn(netConn net.Conn) net.Conn { return netConn }

func (h *Handler) onEngine(*Conn) bool { return false }

func (h *Handler) runEngine(*Conn) {}
