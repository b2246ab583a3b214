package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/hybi/websocket"
)

// serveAppTLS serves the app over HTTPS with HTTP/2, with the throwaway
// certificate of -tls-self-signed, until the test ends; the WebSockets
// are shut down first, as run does: the server's Close waits for the
// handlers of HTTP/2 streams.
func serveAppTLS(t *testing.T, cfg config) *httptest.Server {
	t.Helper()
	handler, shutdown := newServer(cfg)
	cert, err := selfSignedCertificate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		srv.Close()
	})
	return srv
}

// waitText polls the text of the element with id until it is want.
func (b *browser) waitText(id, want string) {
	b.t.Helper()
	deadline := time.Now().Add(browserStepTimeout)
	for {
		got := step(b, "reading #"+id, chromedp.Evaluate[string](`document.getElementById('`+id+`').textContent`))
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			b.fatalf("#%s is %q, want %q", id, got, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// TestBrowserHTTP2 drives the page in headless chromium over HTTPS with
// HTTP/2 and a self-signed certificate: its WebSockets must arrive as
// HTTP/2 CONNECTs (the server's counters say so, and so does the page,
// told by /status); /test greets and echoes, and the page sees the
// server's answer to its close; /echo echoes 1 MiB of binary and 4 MiB of
// text exactly, through permessage-deflate, and closes with the page's
// code and reason; and the /chat room is shared by the tab, over HTTP/2,
// and a Go client over HTTP/1.1.
func TestBrowserHTTP2(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*browserTestTimeout)
	t.Cleanup(cancel)
	srv := serveAppTLS(t, config{interval: time.Hour})
	host := srv.Listener.Addr().String()

	// The certificate is self-signed: chromium is told to accept it.
	b := startBrowser(t, ctx, chromedp.Flag("ignore-certificate-errors", true))
	step(b, "loading the page", chromedp.Navigate(srv.URL+"/"))
	step(b, "waiting for the page", chromedp.WaitVisible(chromedp.ID("log")))
	if got, want := step(b, "reading the URL box", chromedp.Value(chromedp.ID("url"))), "wss://"+host+"/test"; got != want {
		b.fatalf("URL box %q, want %q", got, want)
	}
	if proto := step(b, "reading the page's protocol", chromedp.Evaluate[string](`performance.getEntriesByType('navigation')[0].nextHopProtocol`)); proto != "h2" {
		b.fatalf("the page came over %q, want h2", proto)
	}

	// /test: the greeting, an echo, the close answered.
	step(b, "clicking Connect", chromedp.Click(chromedp.ID("connect")))
	atGreeting := b.waitLog("the greeting", lineAfter(-1, "received", exactly("received: "+greeting)))
	b.waitText("transport", "WebSocket carried by HTTP/2.0")
	waitStats(t, ctx, srv, "/test over HTTP/2", func(s map[string]websocket.Stats) bool {
		return s["/test"].AcceptedHTTP2 == 1 && s["/test"].ActiveHTTP2 == 1 && s["/test"].Accepted == 1
	})
	const message = "over HTTP/2: κόσμε ✓"
	step(b, "typing the message", chromedp.SendKeys(chromedp.ID("message"), message))
	step(b, "clicking Send", chromedp.Click(chromedp.ID("send")))
	b.waitLog("the echo", lineAfter(atGreeting, "received", exactly("received: "+message)))
	step(b, "clicking Disconnect", chromedp.Click(chromedp.ID("disconnect")))
	b.waitLog("the clean close", lineAfter(atGreeting, "", exactly(`closed: code 1000, reason "user disconnected", wasClean true`)))
	waitStats(t, ctx, srv, "/test closed", func(s map[string]websocket.Stats) bool {
		return s["/test"].ActiveHTTP2 == 0 && s["/test"].Active == 0 && s["/test"].Closed.PeerClose == 1
	})

	// /echo from the page's JavaScript, over the same HTTP/2 connection.
	report := stepWithin(b, 60*time.Second, "the echo tests in the page", chromedp.Evaluate[echoReport](echoTestsJS, chromedp.EvalAwaitPromise))
	if report.Error != "" {
		b.errorf("echo tests: %s", report.Error)
	}
	if !strings.HasPrefix(report.Extensions, "permessage-deflate") {
		b.errorf("/echo: ws.extensions %q, want permessage-deflate", report.Extensions)
	}
	for _, r := range report.Results {
		if !r.OK {
			b.errorf("%s: %s", r.Name, r.Detail)
		} else {
			t.Logf("%s: ok: %s", r.Name, r.Detail)
		}
	}
	if len(report.Results) != 5 || report.Results[0].Name != "binary 1 MiB" {
		b.errorf("results %+v", report.Results)
	}
	if c := report.Close; c.Code != 1000 || c.Reason != "echo tests done" || !c.WasClean {
		b.errorf("/echo closed with %+v, want 1000 \"echo tests done\", clean", c)
	}
	waitStats(t, ctx, srv, "/echo over HTTP/2, closed", func(s map[string]websocket.Stats) bool {
		return s["/echo"].AcceptedHTTP2 == 1 && s["/echo"].Accepted == 1 && s["/echo"].Active == 0
	})

	// /chat: the tab over HTTP/2, a Go client over HTTP/1.1.
	atJoin := joinChat(b, srv, 1, 0)
	b.waitText("transport", "WebSocket carried by HTTP/2.0")
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	opts := &websocket.DialOptions{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	c, resp, err := websocket.Dial(dctx, "wss://"+host+"/chat", opts)
	if err != nil {
		t.Fatalf("dialing /chat over HTTP/1.1: %v", err)
	}
	defer c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.ProtoMajor != 1 {
		t.Fatalf("the Go client's answer: %d over HTTP/%d", resp.StatusCode, resp.ProtoMajor)
	}
	readText := func(want string) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(browserStepTimeout))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != want {
			t.Fatalf("the Go client read %q, %v; want %q", msg, err, want)
		}
	}
	readText("Welcome to the chat, user 2! 1 other(s) here.")
	readText("user 2 joined")
	atJoined := b.waitLog("the Go client's join", lineAfter(atJoin, "received", exactly("received: user 2 joined")))
	if err := c.WriteText("hello from HTTP/1.1"); err != nil {
		t.Fatal(err)
	}
	readText("user 2: hello from HTTP/1.1")
	b.waitLog("the Go client's line", lineAfter(atJoined, "received", exactly("received: user 2: hello from HTTP/1.1")))
	step(b, "typing a chat line", chromedp.SendKeys(chromedp.ID("message"), "hello from HTTP/2"))
	step(b, "clicking Send", chromedp.Click(chromedp.ID("send")))
	readText("user 1: hello from HTTP/2")
	waitStats(t, ctx, srv, "/chat shared by HTTP/2 and HTTP/1.1", func(s map[string]websocket.Stats) bool {
		return s["/chat"].Accepted == 2 && s["/chat"].AcceptedHTTP2 == 1 && s["/chat"].Active == 2 && s["/chat"].ActiveHTTP2 == 1
	})
	c.Close(websocket.StatusNormalClosure, "")
	b.waitLog("the Go client leaving", lineAfter(atJoined, "received", exactly("received: user 2 left")))

	b.mu.Lock()
	for _, e := range b.exceptions {
		t.Errorf("page exception: %s", e)
	}
	b.mu.Unlock()
	t.Logf("scenario done after %v", time.Since(start).Round(time.Millisecond))
}
