package websocket_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/hybi/websocket"
)

// The classic demo: greet each client, push the server's time every ten
// seconds, and echo what the client sends.
func Example() {
	ws := &websocket.Handler{
		Serve: func(c *websocket.Conn) {
			c.WriteText("Hello new client! I hope you enjoy your visit!")
			go websocket.Tick(c.Context(), c, 10*time.Second, nil)
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return // closed; err says how
				}
				c.WriteMessage(typ, msg)
			}
		},
	}
	http.Handle("/test", ws)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// Events gives the callback model of the C# WebSocketServer.
func ExampleEvents() {
	ws := &websocket.Handler{Serve: websocket.Events{
		OnOpen: func(c *websocket.Conn) {
			c.WriteText("Hello new client! I hope you enjoy your visit!")
		},
		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			log.Printf("data received from the client: %s", msg)
		},
		OnClose: func(c *websocket.Conn, err error) {
			log.Printf("client disconnected: %v", err)
		},
	}.Serve}
	http.Handle("/events", ws)
}

// ListenAndServe serves WebSockets only, here on the event engine: a
// server holding many idle connections, each a few hundred bytes.
func ExampleListenAndServe() {
	ws := &websocket.Handler{Events: &websocket.Events{
		OnOpen: (*websocket.Conn).ReleaseRequest, // nothing more is needed of the request
		OnMessage: func(c *websocket.Conn, typ websocket.MessageType, msg []byte) {
			c.WriteMessage(typ, msg)
		},
	}}
	log.Fatal(websocket.ListenAndServe("localhost:8080", ws))
}

// Shutdown closes every WebSocket with 1001 Going Away; http.Server's
// Shutdown does not know of hijacked connections.
func ExampleHandler_Shutdown() {
	ws := &websocket.Handler{Serve: func(c *websocket.Conn) { c.ReadMessage() }}
	srv := &http.Server{Addr: ":8080", Handler: ws}
	go srv.ListenAndServe()
	// ... later, on SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := errors.Join(srv.Shutdown(ctx), ws.Shutdown(ctx)); err != nil {
		log.Print(err)
	}
}

// Origins admits pages from other origins.
func ExampleHandler_origins() {
	ws := &websocket.Handler{
		Origins:      []string{"https://app.example.com", "*.example.org", "localhost:8080"},
		Subprotocols: []string{"chat.v2", "chat.v1"},
		Serve:        func(c *websocket.Conn) { log.Println("speaking", c.Subprotocol(), "over", c.Dialect()) },
	}
	http.Handle("/chat", ws)
}

// Dial connects a client, here to an echo server in the same program.
func ExampleDial() {
	srv := httptest.NewServer(&websocket.Handler{
		Subprotocols: []string{"chat"},
		Serve: func(c *websocket.Conn) {
			typ, msg, err := c.ReadMessage()
			if err == nil {
				c.WriteMessage(typ, msg)
			}
		},
	})
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), &websocket.DialOptions{
		Subprotocols: []string{"chat"},
		Compression:  &websocket.CompressionOptions{ContextTakeover: true},
	})
	if err != nil {
		var he *websocket.HandshakeError
		if errors.As(err, &he) {
			log.Fatalf("refused: %d %s", he.Status, he.Reason)
		}
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteText("hello")
	_, msg, err := c.ReadMessage()
	fmt.Println(c.Subprotocol(), string(msg), err)
	_, _, err = c.ReadMessage() // the server's Serve returned: it closed with 1000
	fmt.Println(err)
	// Output:
	// chat hello <nil>
	// websocket: closed by peer: 1000 (normal closure)
}

// Pipe tests a Serve function without a socket: the test is the client.
// Written as a test, this is
//
//	func TestGreeter(t *testing.T) {
//		c, err := websocket.Pipe(&websocket.Handler{Serve: greeter}, nil)
//		...
//	}
func ExamplePipe() {
	greeter := func(c *websocket.Conn) {
		_, name, err := c.ReadMessage()
		if err == nil {
			c.WriteText("hello, " + string(name))
		}
	}
	c, err := websocket.Pipe(&websocket.Handler{Serve: greeter}, &websocket.DialOptions{
		Compression: &websocket.CompressionOptions{}, // deflated both ways, if the Handler agrees
	})
	if err != nil {
		log.Fatal(err)
	}
	c.WriteText("gopher")
	_, msg, err := c.ReadMessage()
	fmt.Println(string(msg), err)
	_, _, err = c.ReadMessage() // greeter returned: the connection closed with 1000
	fmt.Println(websocket.CloseStatus(err))
	// Output:
	// hello, gopher <nil>
	// 1000 (normal closure)
}

// NetConn carries any stream protocol over a WebSocket: here lines of
// text, read with bufio on both ends; an http.Server, a TLS or SSH
// session ride on it the same way.
func ExampleNetConn() {
	srv := httptest.NewServer(&websocket.Handler{Serve: func(c *websocket.Conn) {
		nc := websocket.NetConn(c, websocket.BinaryMessage)
		defer nc.Close()
		lines := bufio.NewScanner(nc)
		for lines.Scan() {
			fmt.Fprintf(nc, "%d bytes\n", len(lines.Text()))
		}
	}})
	defer srv.Close()

	c, _, err := websocket.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		log.Fatal(err)
	}
	nc := websocket.NetConn(c, websocket.BinaryMessage)
	defer nc.Close()
	answers := bufio.NewReader(nc)
	for _, line := range []string{"hello", "a longer line"} {
		fmt.Fprintln(nc, line)
		answer, _ := answers.ReadString('\n')
		fmt.Print(answer)
	}
	// Output:
	// 5 bytes
	// 13 bytes
}

// ReadJSON and WriteJSON exchange values as text messages. A message
// that is not JSON is a *JSONError, and the connection stays usable.
func ExampleConn_ReadJSON() {
	type move struct {
		Piece    string
		From, To string
	}
	c, err := websocket.Pipe(&websocket.Handler{Serve: func(c *websocket.Conn) {
		for {
			var m move
			err := c.ReadJSON(&m)
			var je *websocket.JSONError
			switch {
			case errors.As(err, &je):
				c.WriteJSON(map[string]string{"error": err.Error()})
				continue
			case err != nil:
				return
			}
			m.From, m.To = m.To, m.From // take it back
			c.WriteJSON(m)
		}
	}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()

	c.WriteText(`{"Piece": "pawn", oops}`)
	var answer map[string]string
	err = c.ReadJSON(&answer)
	fmt.Println(answer["error"], err)

	c.WriteJSON(move{"knight", "g1", "f3"})
	var m move
	err = c.ReadJSON(&m)
	fmt.Printf("%+v %v\n", m, err)
	// Output:
	// websocket: ReadJSON: the text message beginning "{\"Piece\": \"pawn\", oops}" is not JSON: invalid character 'o' looking for beginning of object key string <nil>
	// {Piece:knight From:f3 To:g1} <nil>
}
