package websocket

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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

// appendHixieRequest appends the handshake request of both hixie drafts,
// fields in the order browsers sent them; -76's key3 follows the empty line.
func appendHixieRequest(b []byte, r *clientRequest) []byte {
	b = append(b, "GET "+r.resource+" HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: Upgrade\r\nHost: "+r.host+"\r\n"...)
	if r.origin != "" {
		b = append(b, "Origin: "+r.origin+"\r\n"...)
	}
	prefix := ""
	if r.dialect == Hixie76 {
		prefix = "Sec-"
	}
	if len(r.protocols) > 0 {
		b = append(b, prefix+"WebSocket-Protocol: "+r.protocols[0]+"\r\n"...)
	}
	if r.dialect == Hixie76 {
		b = append(b, "Sec-WebSocket-Key1: "+r.key1+"\r\nSec-WebSocket-Key2: "+r.key2+"\r\n"...)
	}
	return b
}

// checkHixieAnswer verifies the fields of a 101 answer to r as the
// browsers of the hixie drafts did: -75's first three lines byte for byte,
// and for both, the origin and the URL asked for echoed. The -76 challenge
// that follows is read by the caller.
func checkHixieAnswer(resp *http.Response, r *clientRequest) (*handshake, string) {
	prefix := "Sec-"
	if r.dialect == Hixie75 {
		prefix = ""
		if resp.Proto != "HTTP/1.1" || resp.Status != "101 Web Socket Protocol Handshake" ||
			resp.Header.Get("Upgrade") != "WebSocket" || resp.Header.Get("Connection") != "Upgrade" {
			return nil, "the answer's first lines are not draft-hixie-75's"
		}
	}
	hs := &handshake{dialect: r.dialect}
	switch problem := upgradeProblem(resp, "WebSocket"); {
	case problem != "":
		return nil, problem
	case resp.Header.Get(prefix+"WebSocket-Origin") != r.origin:
		return nil, fmt.Sprintf("%sWebSocket-Origin %q is not the origin sent, %q", prefix, resp.Header.Get(prefix+"WebSocket-Origin"), r.origin)
	case !sameLocation(resp.Header.Get(prefix+"WebSocket-Location"), r.location):
		return nil, fmt.Sprintf("%sWebSocket-Location %q is not the URL asked for, %q", prefix, resp.Header.Get(prefix+"WebSocket-Location"), r.location)
	}
	var problem string
	hs.protocol, problem = checkProtocol(resp.Header.Values(prefix+"WebSocket-Protocol"), r.protocols)
	return hs, problem
}

// sameLocation reports whether a Location answered names the URL asked
// for: the same scheme and host (a default port or not) and the same
// request target.
func sameLocation(answered, asked string) bool {
	a, err1 := url.Parse(answered)
	b, err2 := url.Parse(asked)
	return err1 == nil && err2 == nil && strings.EqualFold(a.Scheme, b.Scheme) &&
		hostWithoutDefaultPort(a.Scheme, a.Host) == hostWithoutDefaultPort(b.Scheme, b.Host) &&
		a.RequestURI() == b.RequestURI()
}
