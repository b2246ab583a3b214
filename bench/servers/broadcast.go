package servers

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Broadcast is the mode of the broadcast servers (no compression): every
// WebSocket client joins one broadcast set; a POST to BroadcastPath sends
// its body to every member as binary messages, the library's way; a GET
// of MembersPath answers the number of members.
const Broadcast Mode = "broadcast"

// Paths of the broadcast servers, beside the WebSocket endpoint (any other
// path).
const (
	BroadcastPath = "/broadcast"
	MembersPath   = "/members"
)

// MaxBurst bounds the count parameter of a trigger.
const MaxBurst = 1024

// broadcastMux is the handler of the WebSocket endpoint ws and the two
// paths above (only of these if ws is nil: a Handler's Fallback): members
// counts the members, send broadcasts one message to them all.
//
// A POST to BroadcastPath?count=K (K 1 when absent) carries K messages of
// equal length, one after the other: the handler splits the body and calls
// send K times back to back, in order, as a program with K messages to
// broadcast would call its library's broadcast. The trigger is answered 204
// once the last send returns, which need not wait for any member's write.
func broadcastMux(ws http.Handler, members func() int, send func([]byte) error) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+BroadcastPath, func(w http.ResponseWriter, r *http.Request) {
		count := 1
		if v := r.URL.Query().Get("count"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxBurst {
				http.Error(w, fmt.Sprintf("count %q: want 1 to %d", v, MaxBurst), http.StatusBadRequest)
				return
			}
			count = n
		}
		// A slice of its own: the library may hold its messages until
		// every member has been written; nothing writes to it again.
		body, err := io.ReadAll(io.LimitReader(r.Body, ReadLimit))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if len(body)%count != 0 {
			http.Error(w, fmt.Sprintf("%d bytes are not %d messages of equal length", len(body), count),
				http.StatusBadRequest)
			return
		}
		size := len(body) / count
		for k := range count {
			if err := send(body[k*size : (k+1)*size : (k+1)*size]); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+MembersPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strconv.Itoa(members()))
	})
	if ws != nil {
		mux.Handle("/", ws)
	}
	return mux
}
