//go:build !linux

package servers

import (
	"errors"
	"net"
)

func serveFloor(net.Listener, Mode) error { return errors.New("floor: epoll is Linux's") }
