// Package xconnect turns on WebSockets over HTTP/2 (RFC 8441's extended
// CONNECT) in net/http's server, for the program that imports it:
//
//	import _ "github.com/hybi/websocket/xconnect"
//
// net/http's HTTP/2 server offers extended CONNECT only with
// GODEBUG=http2xconnect=1, which it reads from the environment once, as it
// initializes; the toolchain refuses the setting as a //go:debug directive
// or a godebug line of go.mod, which know only the settings it lists.
// This package's init adds it to GODEBUG before net/http reads it: Go
// initializes, of the packages whose imports are ready, the one whose
// import path sorts first, and this one sorts before net/http and imports
// only packages net/http imports too. A GODEBUG that already says
// http2xconnect, either way, is left as it is. Child processes inherit
// the setting.
package xconnect

import (
	"os"
	"strings"
)

func init() {
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "http2xconnect=") {
		return
	}
	if godebug != "" {
		godebug += ","
	}
	os.Setenv("GODEBUG", godebug+"http2xconnect=1")
}
