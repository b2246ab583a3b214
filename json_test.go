package websocket

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

type jsonDoc struct {
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Attrs map[string]any    `json:"attrs"`
	Child *jsonDoc          `json:"child,omitempty"`
	Raw   json.RawMessage   `json:"raw"`
	Opt   map[string]*int64 `json:"opt"`
}

// TestJSONRoundTrip: nested values both ways, over each dialect and with
// compression, over a socket and a Pipe; each message is the encoding
// alone, as text.
func TestJSONRoundTrip(t *testing.T) {
	one := int64(1)
	doc := jsonDoc{Name: "root ✓ <&>", Tags: []string{"a", "b"}, Attrs: map[string]any{"n": 1.5, "list": []any{"x", true, nil}},
		Child: &jsonDoc{Name: "child", Attrs: map[string]any{}, Raw: json.RawMessage(`{"deep":[1,[2,[3]]]}`), Opt: map[string]*int64{"one": &one, "none": nil}},
		Raw:   json.RawMessage(`null`)}
	doc.Child.Child = &jsonDoc{Name: strings.Repeat("big ", 100000), Raw: json.RawMessage(`[]`)}
	for _, d := range allDialects {
		for _, tc := range []struct{ compress, pipe bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			if tc.compress && !d.hybi() {
				continue
			}
			t.Run(fmt.Sprintf("%s %+v", d, tc), func(t *testing.T) {
				h := &Handler{Serve: func(c *Conn) {
					for {
						var v jsonDoc
						if err := c.ReadJSON(&v); err != nil {
							return
						}
						if c.WriteJSON(v) != nil {
							return
						}
					}
				}}
				opts := &DialOptions{Dialect: d}
				if tc.compress {
					h.Compression, opts.Compression = &CompressionOptions{}, &CompressionOptions{}
				}
				var c *Conn
				if tc.pipe {
					var err error
					if c, err = Pipe(h, opts); err != nil {
						t.Fatal(err)
					}
				} else {
					url, _ := testServer(t, h, false)
					c = dialTest(t, url, opts)
				}
				defer c.CloseNow()
				if err := c.WriteJSON(doc); err != nil {
					t.Fatal(err)
				}
				typ, msg, err := c.ReadMessage()
				want, _ := json.Marshal(doc)
				if err != nil || typ != TextMessage || string(msg) != string(want) {
					t.Fatalf("the echo as a message: %v, %.60q, %v; want the text %.60q", typ, msg, err, want)
				}
				c.WriteJSON(doc)
				var got jsonDoc
				if err := c.ReadJSON(&got); err != nil || !reflect.DeepEqual(got, doc) {
					t.Fatalf("ReadJSON: %v\ngot  %.200v\nwant %.200v", err, got, doc)
				}
			})
		}
	}
}

// TestJSONBadMessages: invalid JSON, more than one value, an empty message,
// a type that does not fit, a binary message: each a *JSONError naming
// the message, the connection still usable; a value that cannot be
// encoded sends nothing; a message over the read limit fails the
// connection with 1009.
func TestJSONBadMessages(t *testing.T) {
	received := make(chan error, 16)
	h := &Handler{ReadLimit: 64 << 10, Serve: func(c *Conn) {
		for {
			var v struct{ N int }
			err := c.ReadJSON(&v)
			received <- err
			var je *JSONError
			switch {
			case errors.As(err, &je):
				continue // the connection is still usable
			case err != nil:
				return
			}
			c.WriteJSON(v)
		}
	}}
	c, err := Pipe(h, &DialOptions{ReadLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	bad := strings.Repeat(`{"N": 1, "x": [1, 2, 3], `, 2000) + `oops}`
	for _, tc := range []struct {
		typ    MessageType
		msg    string
		syntax bool
		want   string
	}{
		{TextMessage, bad, true, `the text message beginning "{\"N\": 1, \"x\": [1, 2, 3], {\"N\": 1, \"x\": [1, 2, 3], {\"N\": 1, \"x\": " is not JSON: invalid character '{'`},
		{TextMessage, `{"N": 1} {"N": 2}`, false, `beginning "{\"N\": 1} {\"N\": 2}" is not JSON: more after the value, at byte 10`},
		{TextMessage, `{"N": 1} x`, true, `is not JSON: invalid character 'x' looking for beginning of value`},
		{TextMessage, ``, false, `beginning "" is not JSON: unexpected EOF`},
		{TextMessage, `{"N": "seven"}`, false, `cannot unmarshal string into Go struct field .N of type int`},
		{BinaryMessage, `{"N": 3}`, false, `websocket: ReadJSON: a binary message: a JSON message must be text`},
	} {
		c.WriteMessage(tc.typ, []byte(tc.msg))
		err := <-received
		var je *JSONError
		var se *json.SyntaxError
		if !errors.As(err, &je) || je.Type != tc.typ || errors.As(err, &se) != tc.syntax || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("ReadJSON of %.30q: %v; want a *JSONError saying %q", tc.msg, err, tc.want)
		}
		// Still usable: the next message is read whole.
		c.WriteText(`{"N": 42}`)
		if err := <-received; err != nil {
			t.Fatalf("after %.30q: %v", tc.msg, err)
		}
		var v struct{ N int }
		if err := c.ReadJSON(&v); err != nil || v.N != 42 {
			t.Fatalf("after %.30q, echo: %+v, %v", tc.msg, v, err)
		}
	}
	if err := c.WriteJSON(func() {}); err == nil || !strings.Contains(err.Error(), "unsupported type") {
		t.Fatalf("WriteJSON of a func: %v", err)
	}
	c.WriteJSON(map[string]string{"N": strings.Repeat("x", 100<<10)})
	if err := <-received; CloseStatus(err) != -1 || !strings.Contains(fmt.Sprint(err), "read limit") {
		t.Fatalf("a message over the read limit: %v", err)
	}
	if _, _, err := c.ReadMessage(); CloseStatus(err) != StatusMessageTooBig {
		t.Fatalf("the client read %v, want the close 1009", err)
	}
}

// TestJSONConcurrentWriters: writers on many goroutines, each message
// whole (run with -race).
func TestJSONConcurrentWriters(t *testing.T) {
	got := make(chan map[int]int, 1)
	h := &Handler{Serve: func(c *Conn) {
		seen := map[int]int{}
		for {
			var v struct{ W, I int }
			if err := c.ReadJSON(&v); err != nil {
				got <- seen
				return
			}
			if v.I != seen[v.W] {
				t.Errorf("writer %d: message %d after %d", v.W, v.I, seen[v.W])
			}
			seen[v.W]++
		}
	}}
	c, err := Pipe(h, &DialOptions{Compression: &CompressionOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				pad := strings.Repeat("p", i*37%5000)
				if err := c.WriteJSON(struct {
					W, I int
					Pad  string
				}{w, i, pad}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.Close(StatusNormalClosure, "")
	for w, n := range <-got {
		if n != 200 {
			t.Errorf("writer %d: %d messages", w, n)
		}
	}
}
