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
