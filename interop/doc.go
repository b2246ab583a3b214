// Package interop tests github.com/hybi/websocket against WebSocket clients
// written elsewhere: github.com/gorilla/websocket and github.com/coder/websocket.
//
// It is a module of its own so that the core package keeps importing the
// standard library only: the client libraries are dependencies of these tests,
// never of the server. The package has no exported API; everything lives in
// its tests, which drive a websocket.Handler served by net/http/httptest with
// each client library and check, byte for byte, what crosses the wire: echoes
// of text and binary messages from 0 bytes to 16 MiB, fragmented messages,
// pings and pongs both ways, close codes and reasons both ways, the read
// limit (1009), invalid UTF-8 (1007), many concurrent connections,
// subprotocol negotiation and the refusal of a foreign origin (403).
//
// It also tests our client (Dial) against the servers of gorilla, coder
// and github.com/lxzan/gws, each an echo written as its documentation shows
// (peers_test.go, client_test.go): echoes up to 4 MiB, streamed messages,
// pings, close codes both ways, permessage-deflate with and without context
// takeover as seen on the wire, and subprotocols; and against Node's
// websocket-driver (testdata/hixie_server.js, hixie_test.go) in hixie-75,
// hixie-76 and RFC 6455. That test installs testdata's locked npm packages
// under the user's cache directory; without node and npm it is skipped,
// unless CI=true (apt-get install -y nodejs npm).
//
// The scenarios are written once (helpers_test.go) against a small adapter
// that each client library implements with its own API (gorilla_test.go,
// coder_test.go). Run them from the repository root with
//
//	go test -race -count=1 ./interop/...
package interop
