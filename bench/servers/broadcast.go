package servers

import (
	"io"
	"net"
	"net/http"
	"strconv"
)

// Broadcast is the mode of the broadcast servers (no compression): every
// WebSocket client joins one broadcast set; a POST to BroadcastPath sends
// its body to every member as one binary message, the library's way; a GET
// of MembersPath answers the number of members.
const Broadcast Mode = "broadcast"

// Paths of the broadcast servers, beside the WebSocket endpoint (any other
// path).
const (
	BroadcastPath = "/broadcast"
	MembersPath   = "/members"
)

// broadcastMux serves the WebSocket endpoint ws and the two paths above:
// members counts the members, send broadcasts a message to them all. The
// trigger is answered 204 once send returns, which need not wait for any
// member's write.
func broadcastMux(ln net.Listener, ws http.Handler, members func() int, send func([]byte) error) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+BroadcastPath, func(w http.ResponseWriter, r *http.Request) {
		// A slice of its own: the library may hold it until every member
		// has been written.
		msg, err := io.ReadAll(io.LimitReader(r.Body, ReadLimit))
		if err == nil {
			err = send(msg)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+MembersPath, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strconv.Itoa(members()))
	})
	mux.Handle("/", ws)
	return httpServe(ln, mux)
}
