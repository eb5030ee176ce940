package api

import (
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	q, err := ParseQuery(url.Values{
		"source.ip": {"203.0.113.9/24"}, "user": {"alice"}, "event.action": {"authn_login_fail"},
		"status": {"401"}, "method": {"post"}, "since": {"15m"}, "to": {"2026-11-23T11:59:00Z"},
		"after": {"42"}, "limit": {"5"}, "order": {"desc"}, "q": {"bad password"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if q.SourceIP != netip.MustParsePrefix("203.0.113.0/24") || q.UserName != "alice" || q.Action != "authn_login_fail" ||
		q.Status != 401 || q.Method != "POST" || !q.From.Equal(now.Add(-15*time.Minute)) ||
		!q.To.Equal(time.Date(2026, 11, 23, 11, 59, 0, 0, time.UTC)) || q.AfterSeq != 42 || q.Limit != 5 || !q.Desc || q.Text != "bad password" {
		t.Errorf("parsed %+v", q)
	}
	single, _ := ParseQuery(url.Values{"ip": {"::ffff:192.0.2.1"}}, now)
	if single.SourceIP != netip.MustParsePrefix("192.0.2.1/32") {
		t.Errorf("mapped address: %v", single.SourceIP)
	}
	mapped, _ := ParseQuery(url.Values{"ip": {"::ffff:192.0.2.7/120"}}, now)
	if mapped.SourceIP != netip.MustParsePrefix("192.0.2.0/24") {
		t.Errorf("mapped prefix: %v", mapped.SourceIP)
	}
	if _, err := ParseQuery(url.Values{"since": {"99999999999d"}}, now); err == nil {
		t.Error("a duration of 99999999999 days was accepted")
	}

	bad := []struct {
		v    url.Values
		want string
	}{
		{url.Values{"sourceip": {"1.2.3.4"}}, `unknown parameter "sourceip"`},
		{url.Values{"source.ip": {"1.2.3"}}, "not an IP address"},
		{url.Values{"status": {"999"}}, "between 100 and 599"},
		{url.Values{"limit": {"0"}}, "between 1 and"},
		{url.Values{"since": {"yesterday"}}, "not a time"},
		{url.Values{"order": {"up"}}, "asc or desc"},
		{url.Values{"after": {"-1"}}, "parameter after"},
	}
	for _, b := range bad {
		if _, err := ParseQuery(b.v, now); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%v: error %v, want %q", b.v, err, b.want)
		}
	}
}

func TestParseTimeDays(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	got, err := ParseTime("7d", now)
	if err != nil || !got.Equal(now.AddDate(0, 0, -7)) {
		t.Errorf("7d: %v %v", got, err)
	}
}

// FuzzParseQuery: search parameters from a URL never panic the parser, and
// what it accepts is within bounds: a masked prefix, a limit in range, and
// a duration back from now that is not after now.
func FuzzParseQuery(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{
		"ip=203.0.113.9/24&user=alice&since=15m&limit=5&order=desc&q=bad+password",
		"ip=::ffff:192.0.2.1/120&to=2026-11-23&status=404",
		"since=99999999999d", "since=-7d", "after=18446744073709551615&before=1",
		"limit=0", "method=get&path=/login&request_id=x&related=order:1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, now)
		if err != nil {
			return
		}
		if q.SourceIP.IsValid() && (q.SourceIP != q.SourceIP.Masked() || q.SourceIP.Addr().Is4In6() && q.SourceIP.Bits() >= 96) {
			t.Fatalf("prefix %v from %q", q.SourceIP, raw)
		}
		if q.Limit < 0 || q.Limit > MaxLimit {
			t.Fatalf("limit %d from %q", q.Limit, raw)
		}
		for _, name := range []string{"since", "from", "to", "until"} {
			val := v.Get(name)
			if val == "" || strings.Contains(val, ":") || strings.Count(val, "-") == 2 {
				continue // a timestamp or a date, not a duration
			}
			if tm, err := ParseTime(val, now); err == nil && tm.After(now) {
				t.Fatalf("%s=%q is after now: %v", name, val, tm)
			}
		}
	})
}
