package websocket

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
)

// acceptGUID is the fixed GUID of RFC 6455 section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// supportedVersions is sent with 426 to a client of any other version.
const supportedVersions = "13, 8, 7"

// hybiDialect maps Sec-WebSocket-Version to the dialect.
func hybiDialect(version string) (Dialect, bool) {
	switch version {
	case "13":
		return RFC6455, true
	case "8":
		return Hybi08, true
	case "7":
		return Hybi07, true
	}
	return 0, false
}

// parseHybi checks the RFC 6455 fields of the request into hs.
func parseHybi(r *http.Request, hs *handshake) *refusal {
	key := r.Header.Get("Sec-WebSocket-Key")
	if decoded, err := base64.StdEncoding.DecodeString(key); err != nil || len(decoded) != 16 {
		return &refusal{refBadHandshake, http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"}
	}
	hs.accept = acceptKey(key)
	if hs.dialect == RFC6455 {
		hs.origin = r.Header.Get("Origin")
	} else if hs.origin = r.Header.Get("Sec-WebSocket-Origin"); hs.origin == "" {
		hs.origin = r.Header.Get("Origin")
	}
	hs.offered = headerTokens(r.Header, "Sec-WebSocket-Protocol")
	return nil
}

// acceptKey computes Sec-WebSocket-Accept for a client's key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(key))
	h.Write([]byte(acceptGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func writeHybiAnswer(w *bufio.Writer, hs *handshake) {
	w.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
	w.WriteString(hs.accept)
	w.WriteString("\r\n")
	if hs.protocol != "" {
		w.WriteString("Sec-WebSocket-Protocol: " + hs.protocol + "\r\n")
	}
	if hs.extensions != "" {
		w.WriteString("Sec-WebSocket-Extensions: " + hs.extensions + "\r\n")
	}
	w.WriteString("\r\n")
}
