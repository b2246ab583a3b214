//go:build !linux

package websocket

func engineStart() {}
