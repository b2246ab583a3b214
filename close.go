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

// browserSendable reports whether a browser's WebSocket.close takes code:
// 1000 and the 3000–4999 range only.
func browserSendable(code StatusCode) bool {
	return code == StatusNormalClosure || code >= 3000 && code <= 4999
}

// unsupported is the error of what the browser cannot do (ws_js.go).
func unsupported(what string) error {
	return fmt.Errorf("websocket: %s is not available in the browser: %w", what, errors.ErrUnsupported)
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

// Causes of a close (see Conn.CloseCause) besides the keepalive timeouts
// and ErrSlowConsumer. ErrDropped and ErrWriteTimeout come wrapped with the
// error of the read or write that met them.
var (
	// ErrDropped: the peer ended the connection without a close (the TCP
	// connection closed or reset, or the network failed). A hixie-75
	// client has no other way to close.
	ErrDropped = errors.New("websocket: peer dropped the connection without a close")
	// ErrWriteTimeout: a write did not complete within WriteTimeout or the
	// write deadline. The frame was cut short, so the connection is closed
	// at once; the write that timed out returns this too.
	ErrWriteTimeout = errors.New("websocket: write timed out")
	// ErrShutdown: Handler.Shutdown closed the connection (1001 Going
	// Away, or the hixie close); a read that the peer's answer did not end
	// returns it.
	ErrShutdown = errors.New("websocket: server shutting down")
)

// LocalCloseError is the cause of a close this end made of its own
// accord: Serve returned (1000) or panicked (1011, with Panic its value),
// or the application called Close (its code and reason) or CloseNow
// (1006). The hixie dialects carry no code: Code is what was asked for.
type LocalCloseError struct {
	Code   StatusCode
	Reason string
	Panic  any // what Serve panicked with; nil if it did not
}

func (e *LocalCloseError) Error() string {
	s := "closed with " + e.Code.String()
	if e.Reason != "" {
		s += fmt.Sprintf(": %q", e.Reason)
	}
	if e.Panic != nil {
		return fmt.Sprintf("websocket: Serve panicked: %v; %s", e.Panic, s)
	}
	return "websocket: " + s
}

// causeError is a cause (ErrDropped, ErrWriteTimeout) with the error that
// revealed it: errors.Is finds either.
type causeError struct{ cause, err error }

func (e *causeError) Error() string   { return e.cause.Error() + ": " + e.err.Error() }
func (e *causeError) Unwrap() []error { return []error{e.cause, e.err} }

// closeCause classifies the causes of a close, for Stats and the log.
type closeCause int

const (
	causePeerClose closeCause = iota
	causeDropped
	causeProtocolError
	causeReadLimit
	causeWriteTimeout
	causeIdleTimeout
	causePongTimeout
	causeSlowConsumer
	causeShutdown
	causeServerClose
	causePanic
	numCauses
)

// causeNames are the words the log gives causes, those of Closes's JSON.
var causeNames = [numCauses]string{"peer_close", "dropped", "protocol_error", "read_limit", "write_timeout",
	"idle_timeout", "pong_timeout", "slow_consumer", "shutdown", "server_close", "panic"}

// causeOf classifies a cause as Conn.setCause recorded it, and returns the
// close code and reason that went with it, received or sent (0 and "" for
// none). A cause it does not know, or none, counts as the server's close.
func causeOf(err error) (kind closeCause, code StatusCode, reason string) {
	switch e := err.(type) {
	case *CloseError:
		return causePeerClose, e.Code, e.Reason
	case *ProtocolError:
		if e.Code == StatusMessageTooBig {
			return causeReadLimit, e.Code, e.Reason
		}
		return causeProtocolError, e.Code, e.Reason
	case *LocalCloseError:
		if e.Panic != nil {
			return causePanic, e.Code, e.Reason
		}
		return causeServerClose, e.Code, e.Reason
	case *causeError:
		kind, _, _ = causeOf(e.cause)
		return kind, 0, ""
	}
	switch err {
	case ErrDropped:
		return causeDropped, 0, ""
	case ErrWriteTimeout:
		return causeWriteTimeout, 0, ""
	case ErrIdleTimeout:
		return causeIdleTimeout, StatusGoingAway, "idle timeout"
	case ErrPongTimeout:
		return causePongTimeout, 0, ""
	case ErrSlowConsumer:
		return causeSlowConsumer, 0, ""
	case ErrShutdown:
		return causeShutdown, StatusGoingAway, "server shutting down"
	}
	return causeServerClose, 0, ""
}

// CloseStatus returns the code of the peer's close carried by err, or -1 if
// err does not come from a close received from the peer.
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}
