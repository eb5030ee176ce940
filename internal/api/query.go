// Package api serves Vigil's REST API for reading events: search, count,
// top-N and long-polling for new events.
package api

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/store"
)

// MaxLimit is the most events one search answer carries.
const MaxLimit = 10000

// ParseQuery turns URL parameters named after event fields into a store
// query. Unknown parameters are an error, so a typo never silently widens a
// search. Extra names the parameters the caller handles itself.
func ParseQuery(v url.Values, now time.Time, extra ...string) (store.Query, error) {
	var q store.Query
	for name, vals := range v {
		if len(vals) == 0 {
			continue
		}
		val := vals[len(vals)-1]
		if err := setParam(&q, name, val, now, extra); err != nil {
			return q, err
		}
	}
	return q, nil
}

func setParam(q *store.Query, name, val string, now time.Time, extra []string) error {
	var err error
	switch name {
	case "source.ip", "ip":
		q.SourceIP, err = ParsePrefix(val)
	case "user.name", "user":
		q.UserName = val
	case "user.id":
		q.UserID = val
	case "event.action", "action":
		q.Action = val
	case "event.category", "category":
		q.Category = val
	case "event.outcome", "outcome":
		q.Outcome = val
	case "http.request.method", "method":
		q.Method = strings.ToUpper(val)
	case "url.path", "path":
		q.Path = val
	case "http.response.status_code", "status":
		q.Status, err = strconv.Atoi(val)
		if err == nil && (q.Status < 100 || q.Status > 599) {
			err = fmt.Errorf("must be between 100 and 599")
		}
	case "http.request.id", "request_id":
		q.RequestID = val
	case "service.name", "service":
		q.Service = val
	case "related", "related.objects":
		q.Related = val
	case "q":
		q.Text = val
	case "from", "since":
		q.From, err = ParseTime(val, now)
	case "to", "until":
		q.To, err = ParseTime(val, now)
	case "after":
		q.AfterSeq, err = strconv.ParseUint(val, 10, 64)
	case "before":
		q.BeforeSeq, err = strconv.ParseUint(val, 10, 64)
	case "limit":
		q.Limit, err = strconv.Atoi(val)
		if err == nil && (q.Limit < 1 || q.Limit > MaxLimit) {
			err = fmt.Errorf("must be between 1 and %d", MaxLimit)
		}
	case "order":
		switch val {
		case "asc":
			q.Desc = false
		case "desc":
			q.Desc = true
		default:
			err = fmt.Errorf("must be asc or desc")
		}
	default:
		for _, e := range extra {
			if e == name {
				return nil
			}
		}
		return fmt.Errorf("unknown parameter %q", name)
	}
	if err != nil {
		return fmt.Errorf("parameter %s=%q: %v", name, val, err)
	}
	return nil
}

// ParsePrefix accepts an IP address or a CIDR prefix.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("not an IP address or CIDR prefix")
		}
		// Events hold IPv4 addresses unmapped: an IPv4-mapped prefix
		// (::ffff:192.0.2.0/120) means the IPv4 one (192.0.2.0/24).
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR prefix")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// maxDaysBack bounds a duration in days ("7d"), so that the product with a
// day cannot overflow: 100 years.
const maxDaysBack = 36500

// ParseTime accepts RFC 3339 ("2026-11-23T10:00:00Z"), a date
// ("2026-11-23"), or a duration back from now ("15m", "24h", "7d").
func ParseTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	d := strings.TrimPrefix(s, "-")
	if n, ok := strings.CutSuffix(d, "d"); ok {
		days, err := strconv.Atoi(n)
		if err == nil && days >= 0 && days <= maxDaysBack {
			return now.Add(-time.Duration(days) * 24 * time.Hour), nil
		}
	}
	if dur, err := time.ParseDuration(d); err == nil && dur >= 0 {
		return now.Add(-dur), nil
	}
	return time.Time{}, fmt.Errorf("not a time: use RFC 3339, YYYY-MM-DD, or a duration back from now such as 15m, 24h, 7d (at most %dd)", maxDaysBack)
}
