// Command chatnode is one node of a chat room spanned across processes
// through NATS: a page at /, the room's WebSocket endpoint at /chat, and the
// node's counters at /stats. What a client sends on any node reaches the
// clients of every node.
//
// Without -nats it starts an embedded NATS server on -nats-listen, which
// further nodes join with -nats:
//
//	go run ./natsgroup/cmd/chatnode -addr :8081
//	go run ./natsgroup/cmd/chatnode -addr :8082 -nats nats://127.0.0.1:4222
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hybi/websocket"
	"github.com/hybi/websocket/natsgroup"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

//go:embed index.html
var page []byte

func main() {
	addr := flag.String("addr", ":8080", "HTTP listen address")
	natsURL := flag.String("nats", "", "NATS server URL; empty: start an embedded NATS server on -nats-listen")
	natsListen := flag.String("nats-listen", "127.0.0.1:4222", "listen address of the embedded NATS server")
	subject := flag.String("subject", "chat", "NATS subject of the room")
	buffer := flag.Bool("buffer", false, "during a NATS outage, buffer messages for the other nodes instead of dropping them")
	flag.Parse()
	if err := run(*addr, *natsURL, *natsListen, *subject, *buffer); err != nil {
		log.Fatal(err)
	}
}

func run(addr, natsURL, natsListen, subject string, buffer bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if natsURL == "" {
		ns, err := startNATS(natsListen)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		natsURL = ns.ClientURL()
		log.Printf("embedded NATS server on %s", natsURL)
	}
	nc, err := nats.Connect(natsURL,
		nats.Name("chatnode "+addr),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(true), // start even if NATS is not up yet
		nats.ConnectHandler(func(nc *nats.Conn) { log.Printf("NATS: connected to %s", nc.ConnectedUrl()) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Printf("NATS: reconnected to %s", nc.ConnectedUrl()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Printf("NATS: disconnected: %v", err) }),
	)
	if err != nil {
		return err
	}
	defer nc.Close()

	policy := natsgroup.DropDuringOutage
	if buffer {
		policy = natsgroup.BufferDuringOutage
	}
	// A chat client too slow to keep up misses lines rather than the room.
	local := &websocket.Group{Slow: websocket.DropMessages}
	room, err := natsgroup.New(nc, subject, local,
		natsgroup.WithOutagePolicy(policy),
		natsgroup.OnError(func(err error) { log.Printf("room: %v", err) }),
	)
	if err != nil {
		return err
	}
	defer room.Close()

	chat := &websocket.Handler{
		ReadLimit: 64 << 10,
		Serve: func(c *websocket.Conn) {
			room.Add(c)
			c.WriteText(fmt.Sprintf("* you are on node %s (%s) of room %q", addr, room.NodeID(), subject))
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := room.Broadcast(typ, msg); err != nil {
					c.WriteText("* " + err.Error())
				}
			}
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/chat", chat)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(room.Stats())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("chatnode %s on http://%s/ (subject %q)", room.NodeID(), ln.Addr(), subject)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Print("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(sctx), chat.Shutdown(sctx), nc.FlushTimeout(time.Second))
}

// startNATS starts an embedded NATS server listening on hostport.
func startNATS(hostport string) (*server.Server, error) {
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen: %w", err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return nil, fmt.Errorf("-nats-listen: %w", err)
	}
	ns, err := server.NewServer(&server.Options{Host: host, Port: port, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, err
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server cannot listen on %s (is one running there? then join it with -nats nats://%s)", hostport, hostport)
	}
	return ns, nil
}
