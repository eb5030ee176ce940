package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// eventsPath is where Vigil receives events over HTTP.
const eventsPath = "/api/v1/events"

// eventsURL checks that raw names a server on this machine and returns the
// URL to post events to: raw itself when it has a path, raw + eventsPath when
// it names only the server.
//
// Only loopback targets are allowed (127.0.0.0/8, ::1, "localhost"): this
// tool may load-test the machine it runs on and nothing else. Names other
// than "localhost" are refused without being resolved.
func eventsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("-url %q: scheme must be http or https", raw)
	}
	if u.User != nil {
		return nil, fmt.Errorf("-url %q: credentials in the URL are not supported; use -token", raw)
	}
	if err := checkLoopbackHost(u.Hostname()); err != nil {
		return nil, fmt.Errorf("-url %q: %w", raw, err)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = eventsPath
	}
	return u, nil
}

// checkLoopbackHost accepts "localhost" and loopback IP addresses.
func checkLoopbackHost(host string) error {
	if host == "" {
		return errors.New("no host")
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("host %q is not a loopback address; only 127.0.0.0/8, ::1 and localhost may be load-tested", host)
	}
	if !addr.Unmap().IsLoopback() {
		return fmt.Errorf("host %s is not a loopback address; only 127.0.0.0/8, ::1 and localhost may be load-tested", addr)
	}
	return nil
}

// loopbackOnly is a net.Dialer Control function that refuses to connect
// anywhere but a loopback address, whatever "localhost" resolves to.
func loopbackOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Unmap().IsLoopback() {
		return fmt.Errorf("dial %s: refusing a connection to a non-loopback address", address)
	}
	return nil
}
