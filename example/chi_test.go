package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/hybi/websocket"
)

// A Handler on a chi route with a parameter: Serve reads it from
// Conn.Request with PathValue (chi sets it on the request), and it stays
// right after the handshake, while other requests go through the router
// and reuse chi's route contexts.
func TestChiRouteParameter(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 1)
	r := chi.NewRouter()
	r.Handle("/rooms/{room}", &websocket.Handler{Serve: func(c *websocket.Conn) {
		<-release
		got <- c.Request().PathValue("room")
	}})
	r.Get("/other/{room}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, chi.URLParam(r, "room"))
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	c := dial(t, srv, websocket.RFC6455, "/rooms/lobby")
	for i := range 20 {
		room := fmt.Sprint("kitchen", i)
		if _, body := get(t, srv.URL+"/other/"+room); string(body) != room {
			t.Fatalf("GET /other/%s: %q", room, body)
		}
	}
	close(release)
	if room := <-got; room != "lobby" {
		t.Errorf("Serve read room %q, want %q", room, "lobby")
	}
	if op, payload := c.read(); op != 0x8 {
		t.Fatalf("got opcode %#x, want the close", op)
	} else {
		c.send(0x8, payload)
	}
	c.expectEOF()
}
