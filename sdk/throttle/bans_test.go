package throttle

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStaticBans(t *testing.T) {
	var b StaticBans
	until := t0.Add(time.Hour)
	for _, d := range []Decision{
		{Scope: "ip", Value: "::ffff:192.0.2.1", Reason: "mapped", Until: until},
		{Type: "throttle", Scope: "range", Value: "192.0.2.0/24", Reason: "range throttle", Until: until},
		{Type: "ban", Scope: "range", Value: "2001:db8::/32", Reason: "v6 range"},
		{Type: "ban", Scope: "range", Value: "10.1.2.3/8", Reason: "unmasked", Until: until},
		{Type: "ban", Scope: "user", Value: " Eve ", Reason: "user", Until: until},
	} {
		if err := b.Add(d); err != nil {
			t.Fatalf("Add(%+v): %v", d, err)
		}
	}
	tests := []struct {
		ip, user string
		reason   string // "" = none
	}{
		{"192.0.2.1", "", "mapped"}, // ban wins over the range's throttle
		{"192.0.2.2", "", "range throttle"},
		{"2001:db8:5::1", "", "v6 range"},
		{"10.200.0.1", "", "unmasked"},
		{"192.0.3.1", "eve", "user"},
		{"192.0.3.1", "EVE", "user"},
		{"192.0.3.1", "steve", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		ip, _ := netip.ParseAddr(tt.ip)
		d, ok := b.Check(ip, tt.user, t0)
		if ok != (tt.reason != "") || d.Reason != tt.reason {
			t.Errorf("Check(%s, %q) = %q, %v; want %q", tt.ip, tt.user, d.Reason, ok, tt.reason)
		}
	}
	// Expired decisions are ignored, permanent ones stay.
	if _, ok := b.Check(netip.MustParseAddr("192.0.2.1"), "", until); ok {
		t.Error("expired ban applied")
	}
	if _, ok := b.Check(netip.MustParseAddr("2001:db8::1"), "", until.Add(1000*time.Hour)); !ok {
		t.Error("permanent ban expired")
	}
	if n := b.Prune(until); n != 4 || b.Len() != 1 {
		t.Errorf("Prune removed %d, %d left", n, b.Len())
	}
	if !b.Remove("range", "2001:db8:0::/32") || b.Len() != 0 || b.Remove("range", "2001:db8::/32") {
		t.Error("Remove")
	}
}

func TestStaticBansErrors(t *testing.T) {
	var b StaticBans
	for _, d := range []Decision{
		{Type: "jail", Scope: "ip", Value: "192.0.2.1"},
		{Scope: "host", Value: "x"},
		{Scope: "ip", Value: "192.0.2.0/24"},
		{Scope: "range", Value: "192.0.2.1"},
		{Scope: "user", Value: " "},
	} {
		if err := b.Add(d); err == nil {
			t.Errorf("Add(%+v): no error", d)
		}
	}
	err := b.Set([]Decision{{Scope: "ip", Value: "192.0.2.1"}, {Scope: "ip", Value: "nope"}})
	if err == nil || !strings.Contains(err.Error(), "decision 1") {
		t.Errorf("Set error = %v", err)
	}
	if b.Len() != 0 {
		t.Error("Set changed something despite an error")
	}
}

func TestStaticBansSetAndConcurrency(t *testing.T) {
	var b StaticBans
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if g == 0 {
					b.Set([]Decision{{Scope: "range", Value: "198.51.100.0/24"}})
				} else {
					b.Check(netip.MustParseAddr("198.51.100.9"), "x", t0)
					_ = i
				}
			}
		}()
	}
	wg.Wait()
	if _, ok := b.Check(netip.MustParseAddr("198.51.100.9"), "", t0); !ok {
		t.Error("range from Set not applied")
	}
}
