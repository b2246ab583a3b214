package websocket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestDialDeflateWindows: our client and Handler at every window size,
// bounded by either end or both, with and without context takeover,
// messages both ways.
func TestDialDeflateWindows(t *testing.T) {
	for bits := 8; bits <= 15; bits++ {
		ends := [][2]int{{bits, bits}, {bits, 15}, {15, bits}}
		if bits == 15 {
			ends = ends[:1]
		}
		for _, ends := range ends {
			for _, takeover := range []bool{false, true} {
				client, server := ends[0], ends[1]
				t.Run(fmt.Sprintf("client=%d/server=%d/takeover=%v", client, server, takeover), func(t *testing.T) {
					url, opts := testServer(t, echoHandler(func(h *Handler) {
						h.Compression = &CompressionOptions{ContextTakeover: takeover, MaxWindowBits: server}
					}), false)
					opts.Compression = &CompressionOptions{ContextTakeover: takeover, MaxWindowBits: client}
					c := dialTest(t, url, opts)
					ext := c.Extensions()
					if strings.Contains(ext, "no_context_takeover") == takeover ||
						!strings.Contains(ext, fmt.Sprintf("client_max_window_bits=%d", min(client, server))) {
						t.Fatalf("extensions %q", ext)
					}
					exchangeCompressed(t, c)
				})
			}
		}
	}
}

// exchangeCompressed echoes messages that repeat, so that context
// takeover is used, large enough to reach past the smaller windows.
func exchangeCompressed(t *testing.T, c *Conn) {
	t.Helper()
	for i := range 20 {
		msg := []byte(strings.Repeat(fmt.Sprintf("message %d of the test, ", i%3), 50+i*40))
		if err := c.WriteMessage(TextMessage, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != string(msg) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
}

// TestDialDeflateAnswers: a hand-written server answers each variant that
// RFC 7692 allows, then speaks it; every other answer is refused.
func TestDialDeflateAnswers(t *testing.T) {
	plain := &CompressionOptions{ContextTakeover: true}
	noTakeover := &CompressionOptions{}
	small := &CompressionOptions{ContextTakeover: true, MaxWindowBits: 10}
	valid := []struct {
		offer  *CompressionOptions
		answer string
		params deflateParams // the server's, as it speaks them
	}{
		{plain, "permessage-deflate", deflateParams{serverBits: 15, clientBits: 15}},
		{plain, "permessage-deflate; client_no_context_takeover", deflateParams{clientNoTakeover: true, serverBits: 15, clientBits: 15}},
		{plain, "permessage-deflate; server_no_context_takeover", deflateParams{serverNoTakeover: true, serverBits: 15, clientBits: 15}},
		{plain, "permessage-deflate; server_max_window_bits=9", deflateParams{serverBits: 9, clientBits: 15}},
		{plain, "permessage-deflate; client_max_window_bits=8", deflateParams{serverBits: 15, clientBits: 8}},
		{plain, `permessage-deflate; client_max_window_bits="12"; server_max_window_bits=11; server_no_context_takeover; client_no_context_takeover`,
			deflateParams{true, true, 11, 12}},
		{noTakeover, "permessage-deflate; server_no_context_takeover", deflateParams{serverNoTakeover: true, serverBits: 15, clientBits: 15}},
		{noTakeover, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", deflateParams{true, true, 15, 15}},
		{small, "permessage-deflate; server_max_window_bits=10", deflateParams{serverBits: 10, clientBits: 10}},
		{small, "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9", deflateParams{serverBits: 8, clientBits: 9}},
	}
	for _, v := range valid {
		t.Run("valid/"+v.answer, func(t *testing.T) {
			url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				if got, want := req.Header.Get("Sec-WebSocket-Extensions"), deflateOffer(v.offer); got != want {
					t.Errorf("offer %q, want %q", got, want)
				}
				io.WriteString(conn, hybiAnswer(req, "Sec-WebSocket-Extensions: "+v.answer))
				p := v.params
				buffered, _ := br.Peek(br.Buffered())
				hs := &handshake{dialect: RFC6455, deflate: &p, extensions: v.answer}
				s := openConn(conn, buffered, hs, connConfig{compression: &CompressionOptions{Threshold: -1}}, false)
				defer s.CloseNow()
				for {
					typ, msg, err := s.ReadMessage()
					if err != nil || s.WriteMessage(typ, msg) != nil {
						return
					}
				}
			})
			opts := *v.offer
			opts.Threshold = -1
			c, _, err := Dial(context.Background(), url, &DialOptions{Compression: &opts})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			exchangeCompressed(t, c)
		})
	}
	invalid := []struct {
		offer  *CompressionOptions
		answer string
	}{
		{plain, "permessage-deflate; server_max_window_bits"},
		{plain, "permessage-deflate; server_max_window_bits=16"},
		{plain, "permessage-deflate; server_max_window_bits=7"},
		{plain, "permessage-deflate; server_max_window_bits=010"},
		{plain, "permessage-deflate; client_max_window_bits"},
		{plain, "permessage-deflate; server_no_context_takeover=1"},
		{plain, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
		{plain, "permessage-deflate; foo"},
		{plain, "permessage-deflate, permessage-deflate"},
		{plain, "x-webkit-deflate-frame"},
		{plain, "permessage-deflate; client_max_window_bits=8, foo"},
		{noTakeover, "permessage-deflate"},
		{noTakeover, "permessage-deflate; client_no_context_takeover"},
		{small, "permessage-deflate"},
		{small, "permessage-deflate; server_max_window_bits=11"},
		{small, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11"},
	}
	for _, v := range invalid {
		t.Run("invalid/"+v.answer, func(t *testing.T) {
			url := rawServer(t, func(conn net.Conn, br *bufio.Reader, req *http.Request) {
				io.WriteString(conn, hybiAnswer(req, "Sec-WebSocket-Extensions: "+v.answer))
			})
			c, _, err := Dial(context.Background(), url, &DialOptions{Compression: v.offer})
			var he *HandshakeError
			if c != nil || !errors.As(err, &he) || he.Status != 101 {
				t.Fatalf("Dial: %v, %v; want a HandshakeError", c, err)
			}
		})
	}
}
