package websocket

// Events serves connections through callbacks, for those who prefer the
// event model of the classic C# WebSocketServer (NewConnection,
// DataReceived, Disconnected) to a read loop. Set as Handler.Events, it
// runs on the event engine where it can:
//
//	ws := &websocket.Handler{Events: &websocket.Events{
//		OnOpen:    func(c *websocket.Conn) { c.WriteText("Hello new client!") },
//		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) { c.WriteMessage(typ, msg) },
//	}}
//
// On the engine (Linux, plain TCP), a connection holds no goroutine while
// idle: the callbacks of all connections run on a few pollers, one per
// processor. The callbacks of one connection run one at a time, in order
// (OnOpen, each message, OnClose). A write does not wait for a peer that
// is slow to read: what its socket cannot take is queued, up to 64 KiB. A
// callback may block (a write past that, Close and its wait for the peer's
// close, a database call): a
// callback that runs for more than a few milliseconds has its poller handed
// to a new goroutine, so it holds up only its own connection. With
// Handler.Events, msg is valid only during the call (it is read into a
// reused buffer): copy what you keep. A message is handed over once it has
// arrived whole; a ping among its fragments is answered as it arrives.
// Other connections (TLS, HTTP/2, other systems) run the same callbacks on
// a goroutine each. Do not read from a Conn served by Events (ReadMessage,
// NextReader): the callbacks get its messages.
//
// As Handler.Serve, Events.Serve runs the callbacks on the connection's
// goroutine, and each msg belongs to the callee:
//
//	ws := &websocket.Handler{Serve: websocket.Events{OnMessage: echo}.Serve}
//
// Each callback may be nil.
type Events struct {
	// OnOpen is called once the handshake is complete.
	OnOpen func(c *Conn)
	// OnMessage is called with each message. Under Handler.Events msg is
	// valid only during the call; under Events.Serve it belongs to the
	// callee.
	OnMessage func(c *Conn, typ MessageType, msg []byte)
	// OnClose is called once reading has ended: err is a *CloseError when
	// the peer closed, io.EOF when it dropped the connection, and otherwise
	// says what failed. Once the connection has closed, c.CloseCause says
	// why, even when this end closed it.
	OnClose func(c *Conn, err error)
}

// Serve runs the callbacks for c until the connection ends. Use it as
// Handler.Serve; each message passed to OnMessage belongs to the callee.
func (e Events) Serve(c *Conn) { e.run(c, false) }

// run runs the callbacks for c on its goroutine; reuse reads every message
// into the same buffer, as Handler.Events promises (msg valid during the call).
func (e *Events) run(c *Conn, reuse bool) {
	if e.OnOpen != nil {
		e.OnOpen(c)
	}
	var err error
	var msg []byte
	for {
		var typ MessageType
		if !reuse {
			msg = nil
		}
		if typ, msg, err = c.AppendMessage(msg[:0]); err != nil {
			break
		}
		if e.OnMessage != nil {
			e.OnMessage(c, typ, msg)
		}
	}
	if e.OnClose != nil {
		e.OnClose(c, err)
	}
}
