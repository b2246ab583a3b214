package websocket_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/hybi/websocket"
	_ "github.com/hybi/websocket/xconnect" // GODEBUG=http2xconnect=1 for net/http's server
)

// One endpoint serves WebSockets over HTTP/1.1 and over HTTP/2 (RFC 8441),
// here dialed over HTTP/2.
func ExampleDialOptions_http2() {
	ws := &websocket.Handler{Serve: func(c *websocket.Conn) {
		c.WriteText("hello over " + c.Request().Proto)
	}}
	srv := httptest.NewUnstartedServer(ws)
	srv.EnableHTTP2 = true
	srv.StartTLS() // in a program: http.ListenAndServeTLS(addr, cert, key, ws)
	defer srv.Close()

	opts := &websocket.DialOptions{HTTP2: true, TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	c, resp, err := websocket.Dial(context.Background(), "wss"+strings.TrimPrefix(srv.URL, "https"), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.CloseNow()
	_, msg, _ := c.ReadMessage()
	fmt.Println(resp.Proto, resp.StatusCode)
	fmt.Println(string(msg))
	// Output:
	// HTTP/2.0 200
	// hello over HTTP/2.0
}
