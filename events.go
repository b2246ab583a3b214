package websocket

// Events serves a connection through callbacks, for those who prefer the
// event model of the classic C# WebSocketServer (NewConnection,
// DataReceived, Disconnected) to a read loop:
//
//	ws := &websocket.Handler{Serve: websocket.Events{
//		OnOpen:    func(c *websocket.Conn) { c.WriteText("Hello new client!") },
//		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) { c.WriteMessage(typ, msg) },
//	}.Serve}
//
// Every callback runs on the connection's goroutine; each may be nil.
type Events struct {
	// OnOpen is called once the handshake is complete.
	OnOpen func(c *Conn)
	// OnMessage is called with each message; msg belongs to the callee.
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
