package clients

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// gwsClient is gws's client as its documentation shows: gws.NewClient with
// an event handler, ReadLoop in its own goroutine; OnMessage checks the echo
// and writes the next message (ParallelEnabled off, the default: messages
// are handled in order on the ReadLoop goroutine).
type gwsClient struct {
	gws.BuiltinEventHandler
	socket   *gws.Conn
	r        *run
	i        int
	t0       atomic.Int64 // when the message in flight was sent, since epoch
	stopOnce sync.Once
	stopped  chan struct{}
}

func dialGws(ctx context.Context, url string, r *run, i int) (asyncClient, error) {
	h := &gwsClient{r: r, i: i, stopped: make(chan struct{})}
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	socket, _, err := gws.NewClient(h, &gws.ClientOption{Addr: url, HandshakeTimeout: timeout,
		ReadMaxPayloadSize: readLimit})
	if err != nil {
		return nil, err
	}
	h.socket = socket
	go socket.ReadLoop()
	return h, nil
}

// epoch is the origin of gwsClient.t0, which the ReadLoop goroutine reads
// and, for the first message, another goroutine writes.
var epoch = time.Now()

func (h *gwsClient) stop() { h.stopOnce.Do(func() { close(h.stopped) }) }

func (h *gwsClient) start() error {
	h.t0.Store(int64(time.Since(epoch)))
	return h.socket.WriteMessage(gws.OpcodeBinary, h.r.payload)
}

func (h *gwsClient) OnMessage(socket *gws.Conn, message *gws.Message) {
	ok := h.r.echoed(h.i, message.Bytes(), epoch.Add(time.Duration(h.t0.Load())))
	_ = message.Close()
	if !ok {
		h.stop()
		return
	}
	h.t0.Store(int64(time.Since(epoch)))
	if err := socket.WriteMessage(gws.OpcodeBinary, h.r.payload); err != nil {
		h.r.fail(err)
		h.stop()
	}
}

func (h *gwsClient) OnClose(_ *gws.Conn, err error) {
	if h.r.phase.Load() != stopped {
		if err == nil {
			err = errors.New("closed")
		}
		h.r.fail(err)
	}
	h.stop()
}

func (h *gwsClient) done() <-chan struct{} { return h.stopped }

func (h *gwsClient) close() { _ = h.socket.NetConn().Close() }
