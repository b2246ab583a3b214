// Package bench compares this library's WebSocket server with its peers
// (gorilla/websocket, coder/websocket, gobwas/ws, lxzan/gws,
// lesismal/nbio), and in both of its modes (a goroutine per connection, and
// the Events callbacks) side by side:
// each library's echo server (package servers) runs in its own process, and a
// load generator built on raw TCP (package loadgen) measures it from outside:
// messages per second, round-trip latency, the server's CPU time per message,
// its memory per connection, and handshakes per second. The broadcast test
// does the same for the libraries with a broadcast facility (this one's
// Group, gorilla's PreparedMessage in its chat example's hub, gws's
// Broadcaster): the time until every member has a broadcast, the server's
// CPU per broadcast and its memory per member.
//
// Run runs every server through the same tests in interleaved rounds and
// Table prints the medians; cmd/compare is the command line.
package bench
