package websocket

import (
	"bufio"
	crand "crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
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

// Header names as net/http stores them (textproto's canonical form): a
// lookup spelt any other way first makes a canonical copy of the name.
const (
	headerKey        = "Sec-Websocket-Key"
	headerVersion    = "Sec-Websocket-Version"
	headerProtocol   = "Sec-Websocket-Protocol"
	headerExtensions = "Sec-Websocket-Extensions"
	headerOrigin8    = "Sec-Websocket-Origin" // hybi-07 and -08's Origin
)

// parseHybi checks the RFC 6455 fields of the request into hs.
func parseHybi(r *http.Request, hs *handshake) *refusal {
	key := r.Header.Get(headerKey)
	if !validKey(key) {
		return &refusal{refBadHandshake, http.StatusBadRequest, "Sec-WebSocket-Key must be 16 bytes in base64"}
	}
	hs.accept = acceptKey(key)
	if hs.dialect == RFC6455 {
		hs.origin = r.Header.Get("Origin")
	} else if hs.origin = r.Header.Get(headerOrigin8); hs.origin == "" {
		hs.origin = r.Header.Get("Origin")
	}
	hs.offered = slices.Collect(headerTokens(r.Header, headerProtocol))
	return nil
}

// validKey reports whether key is 16 bytes in padded base64, decoding it
// on the stack.
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	var nonce [18]byte
	n, err := base64.StdEncoding.Decode(nonce[:], []byte(key))
	return err == nil && n == 16
}

// acceptKey computes Sec-WebSocket-Accept for a client's key.
func acceptKey(key string) string {
	var buf [64]byte
	sum := sha1.Sum(append(append(buf[:0], key...), acceptGUID...))
	var accept [28]byte
	base64.StdEncoding.Encode(accept[:], sum[:])
	return string(accept[:])
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

// newHybiKey is a Sec-WebSocket-Key: 16 random bytes in base64.
func newHybiKey() string {
	var nonce [16]byte
	crand.Read(nonce[:])
	return base64.StdEncoding.EncodeToString(nonce[:])
}

// appendHybiRequest appends the handshake request of RFC 6455 and of
// hybi-07/08, which name the origin Sec-WebSocket-Origin.
func appendHybiRequest(b []byte, r *clientRequest) []byte {
	b = fmt.Appendf(b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n", r.resource, r.host, r.key)
	switch {
	case r.origin == "":
	case r.dialect == RFC6455:
		b = append(b, "Origin: "+r.origin+"\r\n"...)
	default:
		b = append(b, "Sec-WebSocket-Origin: "+r.origin+"\r\n"...)
	}
	b = append(b, "Sec-WebSocket-Version: "+hybiVersions[r.dialect]+"\r\n"...)
	if len(r.protocols) > 0 {
		b = append(b, "Sec-WebSocket-Protocol: "+strings.Join(r.protocols, ", ")+"\r\n"...)
	}
	if r.compression != nil {
		b = append(b, "Sec-WebSocket-Extensions: "+deflateOffer(r.compression)+"\r\n"...)
	}
	return b
}

var hybiVersions = map[Dialect]string{RFC6455: "13", Hybi08: "8", Hybi07: "7"}

// checkHybiAnswer verifies a 101 answer to r, as a browser would, and
// returns what was agreed, or what is wrong.
func checkHybiAnswer(resp *http.Response, r *clientRequest) (*handshake, string) {
	switch problem := upgradeProblem(resp, "websocket"); {
	case problem != "":
		return nil, problem
	case resp.Header.Get("Sec-Websocket-Accept") != acceptKey(r.key):
		return nil, "Sec-WebSocket-Accept does not match the key sent"
	}
	return checkAgreed(resp, r)
}

// checkAgreed checks the subprotocol and extensions an accepting answer
// to r agreed to (RFC 6455's 101, RFC 8441's 200), and returns them.
func checkAgreed(resp *http.Response, r *clientRequest) (*handshake, string) {
	hs := &handshake{dialect: r.dialect}
	var problem string
	if hs.protocol, problem = checkProtocol(resp.Header.Values(headerProtocol), r.protocols); problem != "" {
		return nil, problem
	}
	if ext := resp.Header.Values(headerExtensions); len(ext) > 0 {
		if r.compression == nil {
			return nil, "the server answered extensions not offered: " + strings.Join(ext, ", ")
		}
		p, problem := acceptDeflate(ext, r.compression)
		if problem != "" {
			return nil, problem
		}
		hs.deflate, hs.extensions = &p, strings.Join(ext, ", ")
	}
	return hs, ""
}

// checkProtocol checks the subprotocol answered (values of the field) to
// be one of those offered, and returns it.
func checkProtocol(values, offered []string) (string, string) {
	switch {
	case len(values) == 0:
		return "", ""
	case len(values) == 1 && slices.Contains(offered, values[0]):
		return values[0], ""
	}
	return "", fmt.Sprintf("the server chose subprotocol %q, not offered", strings.Join(values, ", "))
}

// upgradeProblem says what is wrong with the Upgrade and Connection fields
// of an answer, or "": upgrade is the token as the dialect spells it.
func upgradeProblem(resp *http.Response, upgrade string) string {
	switch {
	case !hasToken(resp.Header, "Upgrade", upgrade):
		return "the answer lacks Upgrade: " + upgrade
	case !hasToken(resp.Header, "Connection", "upgrade"):
		return "the answer lacks Connection: Upgrade"
	}
	return ""
}
