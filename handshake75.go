package websocket

import (
	"bufio"
	"net/http"
)

// parseHixie75 reads the draft-hixie-75 fields of the request into hs.
func parseHixie75(r *http.Request, hs *handshake) *refusal {
	hs.origin = r.Header.Get("Origin")
	if p := r.Header.Get("WebSocket-Protocol"); p != "" {
		hs.offered = []string{p}
	}
	return nil
}

// writeHixieAnswer writes the answer of both hixie drafts, which differ in
// the status line and in the Sec- prefix of the fields. Browsers compared
// the first three lines byte for byte, and web-socket-js wants exactly one
// space after each colon.
func writeHixieAnswer(w *bufio.Writer, hs *handshake) {
	prefix := ""
	if hs.dialect == Hixie75 {
		w.WriteString("HTTP/1.1 101 Web Socket Protocol Handshake\r\n")
	} else {
		w.WriteString("HTTP/1.1 101 WebSocket Protocol Handshake\r\n")
		prefix = "Sec-"
	}
	w.WriteString("Upgrade: WebSocket\r\nConnection: Upgrade\r\n")
	if hs.origin != "" {
		w.WriteString(prefix + "WebSocket-Origin: " + hs.origin + "\r\n")
	}
	w.WriteString(prefix + "WebSocket-Location: " + hs.location + "\r\n")
	if hs.protocol != "" {
		w.WriteString(prefix + "WebSocket-Protocol: " + hs.protocol + "\r\n")
	}
	w.WriteString("\r\n")
}
