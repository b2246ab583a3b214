package servers

import (
	"io"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// copyBufs holds the buffers io.CopyBuffer streams each message through, so
// that an idle coder connection does not keep one (its own test helper,
// wstest.EchoLoop, keeps 32 KiB per connection instead).
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// serveCoder follows coder's echo example: Accept, then stream each message
// from Reader to Writer.
func serveCoder(ln net.Listener, mode Mode) error {
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true}
	switch mode {
	case None:
		opts.CompressionMode = websocket.CompressionDisabled
	case NoTakeover:
		opts.CompressionMode = websocket.CompressionNoContextTakeover
	case Takeover:
		opts.CompressionMode = websocket.CompressionContextTakeover
	}
	return httpServe(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(ReadLimit)
		ctx := r.Context()
		for {
			typ, rd, err := c.Reader(ctx)
			if err != nil {
				return
			}
			wr, err := c.Writer(ctx, typ)
			if err != nil {
				return
			}
			buf := copyBufs.Get().(*[]byte)
			_, err = io.CopyBuffer(wr, rd, *buf)
			copyBufs.Put(buf)
			if err != nil {
				return
			}
			if err := wr.Close(); err != nil {
				return
			}
		}
	}))
}
