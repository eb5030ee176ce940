package vigil

import (
	"net/http"
	"net/netip"
	"strings"
)

// Proxy headers understood by Config.ProxyHeader.
const (
	HeaderXForwardedFor = "X-Forwarded-For"
	HeaderForwarded     = "Forwarded" // RFC 7239
	HeaderXRealIP       = "X-Real-Ip"
)

// clientAddr returns the client's address and port for r.
//
// The peer (r.RemoteAddr) is the client unless it is one of the trusted
// proxies. Then the proxy header is read from the right, each entry having
// been added by the hop before it: trusted hops are skipped, and the first
// untrusted address is the client. An entry that is not an address stops
// the walk (everything left of it may be forged); the last trusted hop is
// then taken. When every hop is trusted, the leftmost is the client. The
// port is known only for the peer and for Forwarded entries that carry one.
func (c *Client) clientAddr(r *http.Request) (netip.Addr, uint16) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, 0
	}
	ip, port := ap.Addr().Unmap(), ap.Port()
	if len(c.trusted) == 0 || !c.isTrusted(ip) {
		return ip, port
	}
	values := r.Header[c.proxyHeader]
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			entry := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				entry, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			hop, hopPort, ok := c.parseHop(strings.TrimSpace(entry))
			if !ok {
				return ip, port
			}
			ip, port = hop, hopPort
			if !c.isTrusted(ip) {
				return ip, port
			}
		}
	}
	return ip, port
}

func (c *Client) isTrusted(ip netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseHop reads one entry of the proxy header.
func (c *Client) parseHop(s string) (netip.Addr, uint16, bool) {
	if c.proxyHeader == HeaderForwarded {
		return parseForwardedFor(s)
	}
	return parseAddr(s)
}

// parseAddr reads "192.0.2.1", "192.0.2.1:8080", "2001:db8::1" or
// "[2001:db8::1]:8080".
func parseAddr(s string) (netip.Addr, uint16, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap(), 0, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Port(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if ip, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return ip.Unmap(), 0, true
		}
	}
	return netip.Addr{}, 0, false
}

// parseForwardedFor reads the for= parameter of one Forwarded element
// (RFC 7239: for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8::1]:4711").
// An element without for=, or with an obfuscated or "unknown" node, is not an
// address.
func parseForwardedFor(elem string) (netip.Addr, uint16, bool) {
	for elem != "" {
		pair := elem
		if j := strings.IndexByte(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			elem = ""
		}
		pair = strings.TrimSpace(pair)
		if len(pair) < 4 || !strings.EqualFold(pair[:4], "for=") {
			continue
		}
		v := pair[4:]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		return parseAddr(v)
	}
	return netip.Addr{}, 0, false
}
