package throttle

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func req(ip string) Request {
	return Request{IP: netip.MustParseAddr(ip), Method: "GET", Path: "/", Route: "/"}
}

// allowRecord is what the middleware does with one validator.
func allowRecord(v Validator, r Request, now time.Time) (time.Duration, bool) {
	wait, ok := v.Allow(r, now)
	if ok {
		v.Record(r, now)
	}
	return wait, ok
}

func TestWindowNeverAllowsMoreThanLimitInAnyWindow(t *testing.T) {
	// Requests every 700 ms for 10 minutes, from one address: count, at
	// each accepted request, the accepted requests of the minute before.
	v := PerIP(20, time.Minute)
	var accepted []time.Time
	for now := t0; now.Before(t0.Add(10 * time.Minute)); now = now.Add(700 * time.Millisecond) {
		if _, ok := allowRecord(v, req("192.0.2.1"), now); !ok {
			continue
		}
		accepted = append(accepted, now)
		n := 0
		for _, a := range accepted {
			if now.Sub(a) < time.Minute {
				n++
			}
		}
		if n > 20 {
			t.Fatalf("%d requests accepted in the minute up to %v", n, now.Sub(t0))
		}
	}
	// Accuracy: at least 20 per 62 s are let through over 10 minutes.
	if len(accepted) < 10*60/62*20 {
		t.Errorf("only %d requests accepted in 10 minutes", len(accepted))
	}
}

func TestWindowRetryAfterIsExact(t *testing.T) {
	v := PerIP(3, time.Minute)
	r := req("192.0.2.1")
	allowRecord(v, r, t0)                     // bucket 0
	allowRecord(v, r, t0.Add(10*time.Second)) // bucket 5
	allowRecord(v, r, t0.Add(11*time.Second))
	wait, ok := v.Allow(r, t0.Add(30*time.Second))
	// The request at 0 s counts until the end of its bucket (2 s) is a
	// minute old: 62 s.
	if ok || wait != 32*time.Second {
		t.Fatalf("Allow = %v, %v; want 32s, false", wait, ok)
	}
	if _, ok := v.Allow(r, t0.Add(62*time.Second-time.Nanosecond)); ok {
		t.Error("allowed before Retry-After")
	}
	if _, ok := v.Allow(r, t0.Add(62*time.Second)); !ok {
		t.Error("refused at Retry-After")
	}
}

func TestWindowLimitZero(t *testing.T) {
	v := PerIP(0, time.Minute)
	if wait, ok := v.Allow(req("192.0.2.1"), t0); ok || wait != time.Minute {
		t.Errorf("limit 0: %v %v", wait, ok)
	}
}

func TestWindowKeys(t *testing.T) {
	tests := []struct {
		name  string
		v     Validator
		a, b  Request
		share bool
	}{
		{"ip: same address, other path", PerIP(1, time.Minute), req("192.0.2.1"), Request{IP: netip.MustParseAddr("192.0.2.1"), Path: "/x"}, true},
		{"ip: mapped and plain IPv4", PerIP(1, time.Minute), req("192.0.2.1"), req("::ffff:192.0.2.1"), true},
		{"ip: other address", PerIP(1, time.Minute), req("192.0.2.1"), req("192.0.2.2"), false},
		{"ip+route: other path", PerIPRoute(1, time.Minute), req("192.0.2.1"), Request{IP: netip.MustParseAddr("192.0.2.1"), Method: "GET", Path: "/x", Route: "/"}, false},
		{"ip+route: other method", PerIPRoute(1, time.Minute), req("192.0.2.1"), Request{IP: netip.MustParseAddr("192.0.2.1"), Method: "POST", Path: "/", Route: "/"}, false},
		{"ip+route: same", PerIPRoute(1, time.Minute), req("192.0.2.1"), req("192.0.2.1"), true},
		{"network: same /64", PerNetwork(1, time.Minute, 24, 64), req("2001:db8::1"), req("2001:db8::ffff:2"), true},
		{"network: other /64", PerNetwork(1, time.Minute, 24, 64), req("2001:db8::1"), req("2001:db8:0:1::1"), false},
		{"network: same /24", PerNetwork(1, time.Minute, 24, 64), req("192.0.2.1"), req("192.0.2.200"), true},
		{"user: case", PerUser(1, time.Minute), Request{User: "Alice"}, Request{User: "alice"}, true},
		{"user: other", PerUser(1, time.Minute), Request{User: "alice"}, Request{User: "bob"}, false},
	}
	for _, tt := range tests {
		allowRecord(tt.v, tt.a, t0)
		_, ok := tt.v.Allow(tt.b, t0)
		if ok == tt.share {
			t.Errorf("%s: second request allowed = %v", tt.name, ok)
		}
	}
	// Requests without a key are not counted.
	for _, v := range []Validator{PerIP(1, time.Minute), PerUser(1, time.Minute)} {
		for range 3 {
			if _, ok := allowRecord(v, Request{}, t0); !ok {
				t.Errorf("%s: request without key refused", v.Name())
			}
		}
	}
}

func TestNewWindow(t *testing.T) {
	w, err := NewWindow(WindowConfig{
		Name: "api_key", Limit: 2, Window: time.Second,
		Key: func(r Request) (string, bool) { return r.Path, strings.HasPrefix(r.Path, "/api/") },
	})
	if err != nil {
		t.Fatal(err)
	}
	r := Request{Path: "/api/x"}
	allowRecord(w, r, t0)
	allowRecord(w, r, t0)
	if _, ok := w.Allow(r, t0); ok {
		t.Error("third request allowed")
	}
	if _, ok := w.Allow(Request{Path: "/other"}, t0); !ok {
		t.Error("request the key does not apply to refused")
	}
	if _, err := NewWindow(WindowConfig{Limit: 1, Window: time.Second}); err == nil {
		t.Error("no error without Key")
	}
}

func TestWindowMemoryIsBounded(t *testing.T) {
	w := newWindow("test", 5, time.Minute, keyIP, 1000)
	now := t0
	// An active offender, then 10,000 other addresses.
	off := req("203.0.113.1")
	for range 5 {
		allowRecord(w, off, now)
	}
	for i := range 10000 {
		if i%100 == 0 {
			w.Allow(off, now) // the offender keeps knocking, and stays known
			allowRecord(w, req("203.0.113.1"), now)
		}
		allowRecord(w, req(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)), now)
		now = now.Add(time.Millisecond)
	}
	if n := w.Len(); n > 1000 {
		t.Errorf("%d keys tracked, cap 1000", n)
	}
	if _, ok := w.Allow(off, now); ok {
		t.Error("the flood of new addresses made the window forget an active offender")
	}
	// Everything idle for a window is swept when new keys come.
	now = now.Add(3 * time.Minute)
	for i := range 300 {
		allowRecord(w, req(fmt.Sprintf("172.16.%d.%d", i>>8, i&255)), now)
	}
	if n := w.Len(); n > 300 {
		t.Errorf("%d keys tracked after sweeping, want at most the 300 new ones", n)
	}
}

func TestWindowConcurrent(t *testing.T) {
	v := PerIP(1000, time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				allowRecord(v, req(fmt.Sprintf("192.0.2.%d", (g*500+i)%50)), t0.Add(time.Duration(i)*time.Millisecond))
			}
		}()
	}
	wg.Wait()
	if n := v.(*Window).Len(); n != 50 {
		t.Errorf("%d keys, want 50", n)
	}
}
