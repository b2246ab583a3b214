package websocket

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEngineEcho(t *testing.T) {
	h := &Handler{Events: &echoEvents, ReadLimit: 4 << 20}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	msgs := []string{"", "hello", "héllo wörld ✓ 🎉", strings.Repeat("x", 125), strings.Repeat("y", 126), strings.Repeat("z", 70000), strings.Repeat("é", 1<<20)}
	for _, d := range allDialects {
		t.Run(d.String(), func(t *testing.T) {
			c := dialDialect(t, srv, d, "/echo")
			for _, m := range msgs {
				c.writeText(d, m)
				if op, got := c.readMessage(d); op != 1 || string(got) != m {
					t.Fatalf("echo of %d bytes: op %d, %d bytes back", len(m), op, len(got))
				}
			}
			if n := h.Stats().Engine; n != 1 {
				t.Fatalf("%d connections on the engine, want 1", n)
			}
		})
	}
}
