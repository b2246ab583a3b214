// Command example is the classic WebSocket demo of 2010 in Go: a page that
// connects, sends and logs what happens; /test, which greets its client,
// pushes the server's time (one timer for all its clients) and echoes;
// /echo; and /chat, a chat room. Every endpoint speaks every dialect from
// draft-hixie-75 to RFC 6455, so old and new clients meet in the same room.
// /test and /chat serve through callbacks (Handler.Events), which on Linux
// run on the event engine: an idle client holds no goroutine there.
//
// Over HTTPS (-tls-cert and -tls-key, or -tls-self-signed) a browser opens
// its WebSockets over HTTP/2 (RFC 8441), and over HTTP/1.1 as well.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/hybi/websocket"
	_ "github.com/hybi/websocket/xconnect" // WebSockets over HTTP/2: GODEBUG=http2xconnect=1 for net/http
)

//go:embed static
var static embed.FS

const greeting = "Hello new client! I hope you enjoy your visit!"

// config is what the flags set.
type config struct {
	origins  []string      // origins allowed to connect; empty: same origin only
	interval time.Duration // push interval of /test
	logger   *slog.Logger  // connection events; nil logs nothing

	// HTTPS, with HTTP/2: a certificate and key, or a throwaway one.
	certFile, keyFile string
	selfSigned        bool
}

// newServer returns the app's routes and a function that shuts down its
// WebSocket endpoints, whose hijacked connections http.Server.Shutdown
// neither closes nor waits for, and stops /test's timer.
func newServer(cfg config) (http.Handler, func(context.Context) error) {
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	// The clients of /test, which one timer pushes the time to, with the
	// Group's default bounds. A client that stopped reading misses pushes
	// rather than being disconnected: each push is news that the next one
	// replaces, and the echoes do not go through the group.
	pushed := &websocket.Group{Slow: websocket.DropMessages}
	test := &websocket.Handler{
		Origins:     cfg.origins,
		Logger:      cfg.logger.With("endpoint", "/test"),
		Compression: &websocket.CompressionOptions{ContextTakeover: true}, // the echoes may repeat themselves
		Events:      testEvents(pushed, cfg),
	}
	tickCtx, stopTicking := context.WithCancel(context.Background())
	var ticking sync.WaitGroup
	ticking.Go(func() { pushed.Tick(tickCtx, cfg.interval, nil) })

	room := &chatRoom{logger: cfg.logger}
	chat := &websocket.Handler{
		Origins:     cfg.origins,
		Logger:      cfg.logger.With("endpoint", "/chat"),
		ReadLimit:   64 << 10, // chat lines, not files
		Compression: &websocket.CompressionOptions{},
		Events:      room.events(),
	}
	echo := &websocket.Handler{
		Origins:   cfg.origins,
		Logger:    cfg.logger.With("endpoint", "/echo"),
		ReadLimit: 64 << 20, // room for conformance suites' large messages
		// Stateless: no compression memory held between messages.
		Compression: &websocket.CompressionOptions{},
		Serve: websocket.Events{OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			c.WriteMessage(typ, msg) // fails only on a broken connection, which the next read reports
		}}.Serve,
	}

	r := chi.NewRouter()
	r.Get("/", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "static/index.html")
	})
	pages := &pageTransports{}
	r.Handle("/test", pages.note(test))
	r.Handle("/echo", pages.note(echo))
	r.Handle("/chat", pages.note(chat))
	r.Get("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if page := r.URL.Query().Get("page"); page != "" {
			json.NewEncoder(w).Encode(map[string]string{"http": pages.take(page)})
			return
		}
		pushedStats, roomStats := pushed.Stats(), room.members.Stats()
		json.NewEncoder(w).Encode(map[string]endpointStats{
			"/test": {test.Stats(), &pushedStats},
			"/echo": {Stats: echo.Stats()},
			"/chat": {chat.Stats(), &roomStats},
		})
	})

	// The endpoints all at once, so that clients slow to answer a close on
	// one endpoint do not hold up the others'.
	shutdown := func(ctx context.Context) error {
		stopTicking()
		ticking.Wait()
		handlers := []*websocket.Handler{test, echo, chat}
		errs := make([]error, len(handlers))
		var wg sync.WaitGroup
		for i, h := range handlers {
			wg.Go(func() { errs[i] = h.Shutdown(ctx) })
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return r, shutdown
}

// pageTransports tells the page which HTTP version carried its WebSocket,
// which a browser does not say: the page names its handshake (?page=ID),
// then asks /status?page=ID once it is open.
type pageTransports struct {
	mu    sync.Mutex
	proto map[string]string // by page ID: "HTTP/1.1", "HTTP/2.0"
}

// maxPages bounds what pageTransports keeps for pages that never ask.
const maxPages = 1000

// note records the HTTP version of each handshake named by a page.
func (p *pageTransports) note(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if page := r.URL.Query().Get("page"); page != "" {
			p.mu.Lock()
			if p.proto == nil || len(p.proto) >= maxPages {
				p.proto = make(map[string]string)
			}
			p.proto[page] = r.Proto
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// take returns, once, the HTTP version noted for page, or "".
func (p *pageTransports) take(page string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	proto := p.proto[page]
	delete(p.proto, page)
	return proto
}

// endpointStats is an endpoint's entry in /status: its handler's counters
// and, for /test and /chat, their group's.
type endpointStats struct {
	websocket.Stats
	Group *websocket.GroupStats `json:"group,omitempty"`
}

// testEvents is /test, the classic demo: a greeting, then the server's
// time every interval, pushed to every client of /test at once by pushed's
// ticker, and each message the client sends logged and echoed back
// unchanged. On the event engine (Linux, plain TCP), an idle client holds
// no goroutine.
func testEvents(pushed *websocket.Group, cfg config) *websocket.Events {
	return &websocket.Events{
		OnOpen: func(c *websocket.Conn) {
			c.ReleaseRequest() // nothing needed from it: about 1.9 KB less per client
			if c.WriteText(greeting) == nil {
				pushed.Add(c) // after the greeting, which comes first; it leaves on close
			}
		},
		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			if typ == websocket.TextMessage {
				cfg.logger.Info("message received", "remote", c.RemoteAddr().String(), "text", string(msg))
			} else {
				cfg.logger.Info("message received", "remote", c.RemoteAddr().String(), "binary_bytes", len(msg))
			}
			c.WriteMessage(typ, msg) // fails only on a broken connection, which ends it
		},
	}
}

// chatRoom is /chat: every message a member sends goes to every member,
// its sender included, prefixed with the sender's name; members of every
// dialect share the room.
type chatRoom struct {
	members websocket.Group // the defaults: a member is disconnected once its 1 MiB queue has stayed full for 5 s
	users   atomic.Int64    // numbers the members' names
	names   sync.Map        // *websocket.Conn → its member's name
	logger  *slog.Logger
}

// events runs the members: a welcome that tells each its name, the join
// notice to all, then each message it sends relayed to all, until it
// leaves.
func (room *chatRoom) events() *websocket.Events {
	return &websocket.Events{
		OnOpen: func(c *websocket.Conn) {
			c.ReleaseRequest() // nothing needed from it: about 1.9 KB less per member
			name := fmt.Sprintf("user %d", room.users.Add(1))
			others := room.members.Len()
			if c.WriteText(fmt.Sprintf("Welcome to the chat, %s! %d other(s) here.", name, others)) != nil {
				return
			}
			room.names.Store(c, name)
			room.members.Add(c)
			room.members.BroadcastText(name + " joined")
		},
		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			name := room.name(c)
			if typ == websocket.BinaryMessage {
				// Hixie members can receive text only: tell everyone instead.
				room.members.BroadcastText(fmt.Sprintf("%s sent %d bytes of binary data", name, len(msg)))
				return
			}
			room.logger.Info("chat message", "remote", c.RemoteAddr().String(), "user", name, "text", string(msg))
			room.members.BroadcastText(name + ": " + string(msg))
		},
		OnClose: func(c *websocket.Conn, err error) {
			name, joined := room.names.LoadAndDelete(c)
			if !joined {
				return
			}
			if errors.Is(err, websocket.ErrSlowConsumer) {
				room.logger.Warn("disconnected: too slow for the room", "remote", c.RemoteAddr().String(), "user", name)
			}
			room.members.Remove(c)
			room.members.BroadcastText(name.(string) + " left")
		},
	}
}

// name is the name of c's member.
func (room *chatRoom) name(c *websocket.Conn) string {
	name, _ := room.names.Load(c)
	s, _ := name.(string)
	return s
}

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	addr, cfg, err := parseFlags(os.Args[1:], logger)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return
	case err != nil:
		os.Exit(2) // parseFlags has said why
	}
	if err := run(addr, cfg, logger); err != nil {
		logger.Error("exiting", "error", err)
		os.Exit(1)
	}
}

// parseFlags reads the command line: the address to listen on and the app's
// config, which logs connection events to logger unless -log=false.
func parseFlags(args []string, logger *slog.Logger) (addr string, cfg config, err error) {
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.StringVar(&addr, "addr", ":8080", "address to listen on")
	origins := fs.String("origins", "", "comma-separated origins allowed to connect, e.g. http://example.com,*.example.org (default: same origin only)")
	fs.DurationVar(&cfg.interval, "interval", 10*time.Second, "interval of /test's time push (one timer for all its clients)")
	logEvents := fs.Bool("log", true, "log connection events to stderr")
	fs.StringVar(&cfg.certFile, "tls-cert", "", "serve HTTPS, with HTTP/2, with this certificate (PEM; with -tls-key)")
	fs.StringVar(&cfg.keyFile, "tls-key", "", "the key of -tls-cert (PEM)")
	fs.BoolVar(&cfg.selfSigned, "tls-self-signed", false, "serve HTTPS, with HTTP/2, with a throwaway self-signed certificate for localhost")
	if err := fs.Parse(args); err != nil {
		return "", config{}, err
	}
	if cfg.interval <= 0 {
		err := errors.New("-interval must be positive")
		fmt.Fprintln(fs.Output(), err)
		return "", config{}, err
	}
	if (cfg.certFile == "") != (cfg.keyFile == "") || (cfg.certFile != "" && cfg.selfSigned) {
		err := errors.New("give both -tls-cert and -tls-key, or -tls-self-signed")
		fmt.Fprintln(fs.Output(), err)
		return "", config{}, err
	}
	cfg.origins = strings.FieldsFunc(*origins, func(r rune) bool { return r == ',' || r == ' ' })
	if *logEvents {
		cfg.logger = logger
	}
	return addr, cfg, nil
}

// run serves on addr until SIGINT or SIGTERM, then shuts down gracefully.
func run(addr string, cfg config, logger *slog.Logger) error {
	handler, shutdownWebSockets := newServer(cfg)
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	serve := srv.Serve
	scheme := "http"
	if cfg.certFile != "" || cfg.selfSigned {
		cert, err := certificate(cfg)
		if err != nil {
			return err
		}
		// ServeTLS offers h2 and http/1.1; xconnect has made net/http's
		// HTTP/2 server offer extended CONNECT, for WebSockets.
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		serve = func(ln net.Listener) error { return srv.ServeTLS(ln, "", "") }
		scheme = "https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	logger.Info("listening", "addr", ln.Addr().String(), "scheme", scheme)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal kills the process at once

	logger.Info("signal received, shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The WebSockets first: http.Server.Shutdown waits for the handlers of
	// HTTP/2 streams, which serve WebSockets until they close.
	return errors.Join(shutdownWebSockets(ctx), srv.Shutdown(ctx))
}

// certificate is cfg's certificate: loaded, or made for localhost.
func certificate(cfg config) (tls.Certificate, error) {
	if !cfg.selfSigned {
		return tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
	}
	return selfSignedCertificate()
}

// selfSignedCertificate makes a certificate for localhost, 127.0.0.1 and
// ::1, valid for a day, that no browser trusts: a browser asks to go on.
func selfSignedCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "websocket example (self-signed)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
