package websocket

import (
	"strings"
	"testing"
)

func TestEvents(t *testing.T) {
	var log []string
	srv, done := serveOne(t, nil, Events{
		OnOpen: func(c *Conn) {
			log = append(log, "open "+c.Dialect().String())
			c.WriteText("Hello new client! I hope you enjoy your visit!")
		},
		OnMessage: func(c *Conn, typ MessageType, msg []byte) {
			log = append(log, typ.String()+" "+string(msg))
			c.WriteMessage(typ, msg)
		},
		OnClose: func(c *Conn, err error) {
			log = append(log, "close "+CloseStatus(err).String())
		},
	}.Serve)
	c := dialDialect(t, srv, RFC6455, "/")
	if _, msg := c.readMessage(RFC6455); !strings.HasPrefix(string(msg), "Hello new client") {
		t.Fatalf("greeting %q", msg)
	}
	c.writeText(RFC6455, "one")
	c.write(clientFrame(true, 2, []byte("two")))
	for _, want := range []string{"one", "two"} {
		if _, msg := c.readMessage(RFC6455); string(msg) != want {
			t.Fatalf("echo %q, want %q", msg, want)
		}
	}
	c.write(clientFrame(true, 8, closePayload(StatusGoingAway, "")))
	c.expectClose()
	waitDone(t, done)
	want := "open RFC 6455|text one|binary two|close 1001 (going away)"
	if got := strings.Join(log, "|"); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}
