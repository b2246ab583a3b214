package websocket

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
)

// dialProxy returns a connection tunnelled to addr (host:port) through an
// http/https CONNECT or socks5/socks5h proxy.
func dialProxy(ctx context.Context, proxy *url.URL, addr string, dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConfig *tls.Config) (net.Conn, error) {
	return nil, fmt.Errorf("websocket: proxy %s: not supported yet", proxy.Scheme)
}
