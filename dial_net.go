//go:build !js

package websocket

import (
	"context"
	"fmt"
	"net/http"
)

// dial is Dial over TCP (and TLS, and proxies): the handshake written and
// verified here.
func dial(ctx context.Context, url string, opts *DialOptions) (*Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(opts.HandshakeTimeout, DefaultHandshakeTimeout))
	defer cancel()
	u, err := dialURL(url)
	if err != nil {
		return nil, nil, err
	}
	for redirects := 0; ; redirects++ {
		c, resp, next, err := opts.dialOnce(ctx, u)
		if next == nil {
			return c, resp, err
		}
		if redirects == maxRedirects {
			he := err.(*HandshakeError) // a redirect is an answer read
			he.Reason = fmt.Sprintf("stopped after %d redirects (the last to %s)", maxRedirects, next)
			return nil, resp, he
		}
		u = next
	}
}

// unsupportedHere is nil: every feature works over a socket.
func (c *Conn) unsupportedHere(what string) error { return nil }

// transportExtensions is "": the extensions in force are the Conn's own.
func (c *Conn) transportExtensions() string { return "" }
