// Command echoserver runs one library's WebSocket echo server (or its
// broadcast server), the same the comparison runs, and prints the address it
// listens on.
//
//	go run ./bench/cmd/echoserver -lib gorilla -compress notakeover
//	go run ./bench/cmd/echoserver -lib gws -compress broadcast
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hybi/websocket/bench/servers"
)

func main() {
	lib := flag.String("lib", "hybi", "library: "+strings.Join(servers.Libs, ", "))
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	compress := flag.String("compress", "none", "permessage-deflate: none, notakeover or takeover; "+
		"or broadcast: the broadcast server (POST /broadcast, GET /members)")
	flag.Parse()
	if err := servers.Main(*lib, servers.Mode(*compress), *addr, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "echoserver:", err)
		os.Exit(1)
	}
}
