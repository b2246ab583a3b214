package servers

import (
	"io"
	"net"
	"net/http"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	"github.com/klauspost/compress/flate"
)

// serveGobwas follows gobwas/ws's README: ws.UpgradeHTTP and the wsutil
// helpers without compression; with compression, the README's wsutil
// example with wsflate (a flate reader and writer per connection, reset per
// message: no context takeover, the parameters wsflate's helpers assume).
func serveGobwas(ln net.Listener, mode Mode) error {
	wsutil.SetMaxMessageSize(ReadLimit)
	if mode == None {
		return httpServe(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn, _, _, err := ws.UpgradeHTTP(r, w)
			if err != nil {
				return
			}
			go gobwasEcho(conn)
		}))
	}
	return httpServe(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := &wsflate.Extension{Parameters: wsflate.DefaultParameters}
		u := ws.HTTPUpgrader{Negotiate: e.Negotiate}
		conn, _, _, err := u.Upgrade(r, w)
		if err != nil {
			return
		}
		if _, ok := e.Accepted(); !ok {
			go gobwasEcho(conn)
			return
		}
		go gobwasDeflateEcho(conn)
	}))
}

func gobwasEcho(conn net.Conn) {
	defer conn.Close()
	for {
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
			return
		}
	}
}

func gobwasDeflateEcho(conn net.Conn) {
	defer conn.Close()
	const state = ws.StateServerSide | ws.StateExtended
	fr := wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
		return flate.NewReader(r)
	})
	fw := wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed)
		return f
	})
	var msg wsflate.MessageState
	control := wsutil.ControlFrameHandler(conn, ws.StateServerSide)
	rd := &wsutil.Reader{
		Source: conn,
		State:  state,
		// No CheckUTF8: the Reader would check the compressed bytes.
		MaxMessageSize: ReadLimit,
		Extensions:     []wsutil.RecvExtension{&msg},
		OnIntermediate: control,
	}
	wr := wsutil.NewWriter(conn, state, 0)
	wr.SetExtensions(&msg)
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return
		}
		if h.OpCode.IsControl() {
			if err := control(h, rd); err != nil {
				return
			}
			continue
		}
		wr.ResetOp(h.OpCode)
		if msg.IsCompressed() {
			fr.Reset(rd)
			fw.Reset(wr)
			if _, err := io.Copy(fw, fr); err != nil {
				return
			}
			if err := fw.Close(); err != nil {
				return
			}
		} else if _, err := io.Copy(wr, rd); err != nil {
			return
		}
		if err := wr.Flush(); err != nil {
			return
		}
	}
}
