package websocket

import (
	"errors"
	"fmt"
	"strconv"
)

// StatusCode is an RFC 6455 close code (section 7.4).
type StatusCode int

// Close codes from RFC 6455 section 7.4.1 and the IANA registry.
const (
	StatusNormalClosure   StatusCode = 1000
	StatusGoingAway       StatusCode = 1001
	StatusProtocolError   StatusCode = 1002
	StatusUnsupportedData StatusCode = 1003
	// StatusNoStatusRcvd is reported, never sent: the peer's close had no code,
	// or the dialect (hixie-76) has none.
	StatusNoStatusRcvd StatusCode = 1005
	// StatusAbnormalClosure is reported, never sent: the connection ended
	// without a closing handshake.
	StatusAbnormalClosure     StatusCode = 1006
	StatusInvalidPayload      StatusCode = 1007
	StatusPolicyViolation     StatusCode = 1008
	StatusMessageTooBig       StatusCode = 1009
	StatusMandatoryExtension  StatusCode = 1010
	StatusInternalError       StatusCode = 1011
	StatusServiceRestart      StatusCode = 1012
	StatusTryAgainLater       StatusCode = 1013
	StatusBadGateway          StatusCode = 1014
	statusTLSHandshakeFailure StatusCode = 1015
)

var statusNames = map[StatusCode]string{
	StatusNormalClosure:       "normal closure",
	StatusGoingAway:           "going away",
	StatusProtocolError:       "protocol error",
	StatusUnsupportedData:     "unsupported data",
	StatusNoStatusRcvd:        "no status received",
	StatusAbnormalClosure:     "abnormal closure",
	StatusInvalidPayload:      "invalid payload data",
	StatusPolicyViolation:     "policy violation",
	StatusMessageTooBig:       "message too big",
	StatusMandatoryExtension:  "mandatory extension",
	StatusInternalError:       "internal error",
	StatusServiceRestart:      "service restart",
	StatusTryAgainLater:       "try again later",
	StatusBadGateway:          "bad gateway",
	statusTLSHandshakeFailure: "TLS handshake failure",
}

func (s StatusCode) String() string {
	if name, ok := statusNames[s]; ok {
		return strconv.Itoa(int(s)) + " (" + name + ")"
	}
	return strconv.Itoa(int(s))
}

// sendable reports whether s may appear in a close frame on the wire: the
// codes RFC 6455 assigns for sending, and the registered (3000-3999) and
// private (4000-4999) ranges.
func (s StatusCode) sendable() bool {
	switch {
	case s >= 1000 && s <= 1003, s >= 1007 && s <= 1014:
		return true
	case s >= 3000 && s <= 4999:
		return true
	}
	return false
}

// CloseError is the close the peer sent: its code and reason. ReadMessage
// and the readers it hands out return it once the peer has closed.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return "websocket: closed by peer: " + e.Code.String()
	}
	return fmt.Sprintf("websocket: closed by peer: %s: %q", e.Code, e.Reason)
}

// ProtocolError means the peer broke the protocol (or a limit) and the
// connection was failed: Code is the close code sent to the peer (1002, 1007,
// 1009) where the dialect has codes.
type ProtocolError struct {
	Code   StatusCode
	Reason string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("websocket: %s (failed with %s)", e.Reason, e.Code)
}

// ErrClosed is returned by a Conn method called after the connection closed
// (or, for a write, after a close was sent).
var ErrClosed = errors.New("websocket: connection closed")

// CloseStatus returns the code of the peer's close carried by err, or -1 if
// err does not come from a close received from the peer.
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}
