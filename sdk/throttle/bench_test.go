package throttle

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

var nop = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

// BenchmarkMiddleware measures the overhead per request with the default
// validators, requests from 1,024 addresses (none limited).
func BenchmarkMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.Handle("GET /items/{id}", nop)
	cases := []struct {
		name string
		next http.Handler
		c    Config
	}{
		{"handler", nop, Config{}},
		{"servemux", mux, Config{Routes: map[string]RouteConfig{"GET /items/{id}": {Validators: DefaultValidators()}}}},
		{"bans", nop, Config{Enforcer: benchBans()}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var now atomic.Int64
			now.Store(t0.UnixNano())
			// 5 ms per request: each address sends one request per 5 s,
			// under both default limits, so no request is refused.
			tc.c.Now = func() time.Time { return time.Unix(0, now.Add(int64(5*time.Millisecond))) }
			l, err := New(tc.c)
			if err != nil {
				b.Fatal(err)
			}
			h := l.Middleware(tc.next)
			reqs := make([]*http.Request, 1024)
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", "/items/42", nil)
				reqs[i].RemoteAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 5000).String()
			}
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.ServeHTTP(w, reqs[i&1023])
				i++
			}
		})
	}
}

func benchBans() *StaticBans {
	var s StaticBans
	s.Add(Decision{Scope: "range", Value: "198.51.100.0/24"})
	s.Add(Decision{Scope: "range", Value: "2001:db8::/32"})
	s.Add(Decision{Scope: "ip", Value: "203.0.113.7"})
	return &s
}

// BenchmarkAllowParallel measures Allow+Record of one window under
// parallel load, over 16,384 addresses.
func BenchmarkAllowParallel(b *testing.B) {
	v := PerIP(1000, time.Hour)
	b.ReportAllocs()
	var seq atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		g := seq.Add(1) << 12
		i := uint32(0)
		now := t0
		for pb.Next() {
			i++
			k := (g + i) & 0x3fff
			r := Request{IP: netip.AddrFrom4([4]byte{10, 1, byte(k >> 8), byte(k)})}
			if _, ok := v.Allow(r, now); ok {
				v.Record(r, now)
			}
			now = now.Add(time.Microsecond)
		}
	})
}

func BenchmarkLogins(b *testing.B) {
	l := NewLogins(LoginConfig{})
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		l.Allow(ip, "alice", t0)
	}
}

func BenchmarkStaticBansCheck(b *testing.B) {
	s := benchBans()
	ip := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		s.Check(ip, "alice", t0)
	}
}
