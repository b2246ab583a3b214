// Package websocket serves WebSocket connections of every dialect browsers
// ever spoke, on one net/http endpoint, behind one Conn type.
//
// # Dialects
//
// A Handler reads the dialect from the handshake request:
//
//   - draft-hixie-75 (Chrome 4-5, Safari 5.0.0): no key fields;
//   - draft-hixie-76, also hybi-00 (Chrome 6-13, Safari 5.0.1-5.1, iOS 4.2-5):
//     Sec-WebSocket-Key1/Key2 and 8 bytes after the headers, answered with an
//     MD5 challenge;
//   - hybi-07 and hybi-08 (Firefox 6-10, Chrome 14-16): Sec-WebSocket-Version
//     7 or 8, the origin in Sec-WebSocket-Origin;
//   - RFC 6455 (every browser since 2012): Sec-WebSocket-Version 13.
//
// Any other Sec-WebSocket-Version is answered 426 with
// "Sec-WebSocket-Version: 13, 8, 7". Requests from a foreign origin get 403
// (same origin by default; see Handler.Origins), and nothing is hijacked
// unless the handshake is accepted.
//
// # The connection model
//
// Handler.Serve is called with each Conn, on a goroutine of its own (ServeHTTP
// returns after the handshake); when it returns, the connection is closed
// with a closing handshake. (Handler.Events serves through callbacks
// instead, on the event engine: see below.) Use Conn.Context, not the request's context,
// which net/http cancels once ServeHTTP has returned.
//
// One goroutine reads: ReadMessage returns whole messages in new slices,
// AppendMessage reads them into a buffer the caller reuses (no allocation
// per message), NextReader streams one through an io.Reader. Control
// frames are handled while reading: a ping is answered with a pong, a pong
// goes to the pong handler, a close is
// answered and ends reading with a *CloseError. So keep reading, even if
// the application only writes, or pings and closes go unanswered.
//
// Any number of goroutines may write at once (a ticker and a handler, say):
// WriteMessage and WriteText send a message whole, NextWriter streams one,
// WritePreparedMessage and Group send one message to many connections,
// encoded once. A Group never waits for a member: it queues, and a member
// is slow (disconnected, or skipped) only when its queue has stayed full
// for the group's StallTimeout, not when a burst fills it.
//
// A connection waiting for its peer holds no read or write buffer (on a
// plain socket under Linux, and over TLS), and on Linux reading, writing
// and answering pings and closes fit in a goroutine's smallest stack (2
// KiB) with room for a simple Serve loop: an idle connection costs a few
// KB (its goroutine, the Conn, the kept request and the socket).
// Compressing, inflating and TLS need a 4 KiB stack, and so does deep code
// of the application's own: a goroutine keeps the larger stack once it has
// grown, as Go halves a stack only while under a quarter of it is in use.
// A connection also keeps its handshake request (Conn.Request) for as long
// as it lives; a server with many connections calls Conn.ReleaseRequest
// once Serve has what it needs from it, which saves about 1.9 KB each.
//
// Messages are text (UTF-8, checked as it arrives: invalid text fails the
// connection with 1007) or binary. The hixie dialects carry text only and
// have no ping or close code: those calls return an error wrapping
// errors.ErrUnsupported, so code written for RFC 6455 learns at once what a
// hixie client cannot receive.
//
// # Closing
//
// Conn.Close sends a close (code and reason; hixie-76: 0xFF 0x00), waits for
// the peer's answer up to Handler.CloseTimeout and closes TCP, as RFC 6455
// wants a server to do. A peer that closes first is answered with its own
// code. A peer that breaks the protocol is failed with 1002 (1007 for bad
// text, 1009 for a message over the read limit) and the read returns a
// *ProtocolError. Handler.Shutdown closes every connection with 1001 Going
// Away and waits for the callbacks.
//
// Conn.CloseCause says why a connection closed, whichever end closed it
// and however (the peer's close, a drop, a protocol error, a timeout,
// Shutdown, the server's own close); Handler.Stats counts closes by cause,
// and the Handler logs each close with its cause.
//
// # The client
//
// Dial connects to a server and returns the same Conn, in any dialect
// (DialOptions.Dialect): every method works on both ends. A client's frames
// are masked, each with a fresh key, as RFC 6455 wants of a client; a server
// that masks its frames is failed with 1002. The handshake is verified as a
// browser of its dialect's era did (the Accept key or the MD5 challenge, the
// echoed Origin and Location of the hixie drafts, subprotocols and
// extensions offered); a refusal or a wrong answer is a *HandshakeError.
// RFC 6455 has the client wait for the server to close TCP; this client
// closes it once the close handshake is done, as browsers do.
//
// # In the browser
//
// Built for GOOS=js GOARCH=wasm, Dial opens the browser's WebSocket (new
// WebSocket(url, DialOptions.Subprotocols), binaryType "arraybuffer") and
// waits, within ctx and HandshakeTimeout, for its open, or its error and
// close. The Conn is the same type with the same methods: ws_js.go hands
// it the browser's messages and close event framed as a server's, and
// takes its frames apart into send and close. So ReadMessage,
// AppendMessage, NextReader, WriteMessage, WriteText, NextWriter (the
// message gathered, then sent whole), WritePreparedMessage, Close,
// CloseNow, CloseCause (the close event's code and reason), Context,
// SetReadLimit (a larger message fails with 1009, before it is copied into
// Go) and read deadlines work as elsewhere; Subprotocol is ws.protocol and
// Extensions ws.extensions (the browser compresses by itself); the
// *http.Response has status 101 and those two fields only, as the browser
// shows no more. The browser queues messages the program has not read: it
// has no backpressure.
//
// What the browser cannot do returns an error wrapping
// errors.ErrUnsupported: Ping (the browser answers pings but sends none);
// Close with a code other than 1000 or 3000–4999, which the browser's close
// refuses (the connection closes all the same, without a code: the server
// sees 1005; a failure's 1002, 1007 or 1009 goes out so too); and Dial with
// the options it has no say over: a Dialect other than RFC 6455, Header,
// Host, Compression, TLSConfig, Proxy, NetDialContext, Jar, PingInterval and
// PongTimeout. Write deadlines are accepted and bound nothing (the
// browser's send never blocks). A failed Dial says only what the close
// event says (1006): the browser hides why.
//
// # Helpers
//
// NetConn makes a Conn a net.Conn, for stream protocols that ride on a
// WebSocket (HTTP/2, SSH, TLS); its Read deadlines leave the stream
// intact, as a net.Conn's do. Conn.WriteJSON and Conn.ReadJSON send and
// receive values as text messages, and a message that is not JSON leaves
// the connection usable; they are methods of Conn rather than a package of
// their own (as coder's wsjson is), since encoding/json adds no dependency
// and they belong beside the reads and writes they are made of. Pipe
// joins a client to a Handler in memory, both ends speaking the whole
// protocol, so that a test drives its Serve without a socket.
//
// # HTTP/2
//
// Browsers open a wss:// WebSocket as a stream of the page's HTTP/2
// connection when the server offers extended CONNECT (RFC 8441). Handler
// serves that request on the same endpoint with the same checks, answers
// 200, and gives Serve the same Conn over the stream, on the stream's
// handler goroutine (the stream ends when its handler returns); closing
// the Conn ends its stream only. net/http's server offers extended
// CONNECT only with GODEBUG=http2xconnect=1 (Go 1.26; http.HTTP2Config has
// no field for it), read from the environment as net/http starts, which
// a //go:debug directive cannot set. Set it in the environment, or import
// the xconnect package for its side effect, which sets it first:
//
//	import _ "github.com/hybi/websocket/xconnect"
//
// Without it, browsers open their WebSockets over HTTP/1.1, which the
// Handler serves as always. DialOptions.HTTP2 has Dial open a WebSocket
// over HTTP/2 through net/http's own HTTP/2 client (ErrNoHTTP2 when the
// server does not offer it); in the browser the browser chooses, and the
// option is ignored.
//
// # Events and the event engine
//
// Those who prefer callbacks to a read loop (the model of the classic C#
// WebSocketServer) set Handler.Events (or Handler.Serve to an Events
// value's Serve method, which keeps a goroutine per connection). With
// Handler.Events on Linux, a plain TCP connection leaves Go's poller after
// the handshake for one of the engine's epoll pollers (one per processor):
// while idle it holds no goroutine and no read buffer: 448 bytes of heap,
// 1.0-1.3 KB of RSS once the collector's slack is counted, where a
// goroutine per connection costs about 6 KB. A read event borrows a
// pooled buffer, decodes every message that has arrived whole (any dialect,
// compressed or not), answers the pings among the fragments of one still
// arriving, and keeps only an unfinished message's bytes. Callbacks
// run on the poller; one that blocks has its poller handed to a new
// goroutine after a few milliseconds, so it holds up only its connection.
// Writes from any goroutine go straight to the socket; what it cannot take
// is queued (up to 64 KiB a connection, then the writer waits) and written
// by the poller once the socket is writable, within WriteTimeout. Pings and
// timeouts run from one timer heap per poller. TLS, HTTP/2 and other systems run the same
// callbacks on a goroutine per connection. See Events.
//
// # Serve: a listener of WebSockets only
//
// The Handler is an http.Handler for any router. A server of WebSockets
// only can do without net/http's server: Serve(ln, h) and
// ListenAndServe(addr, h) accept the connections and have the Handler read
// and answer each request in buffers it reuses, where net/http's hijack
// leaves two 4 KiB buffers to the garbage collector per handshake. One
// request per connection, HTTP/1.x only; everything else the Handler does
// is the same. With many idle connections on the engine, that is the
// leaner choice.
package websocket
