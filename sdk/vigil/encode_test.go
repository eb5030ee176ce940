package vigil

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "alice", `"alice"`},
		{"empty", "", `""`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"short escapes", "a\nb\rc\td", `"a\nb\rc\td"`},
		{"control chars", "\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"slash kept", "</script>", `"</script>"`},
		{"utf-8 kept", "žluťoučký 日本 🎉", `"žluťoučký 日本 🎉"`},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"invalid byte", "a\xffb", "\"a\ufffdb\""},
		{"each invalid byte replaced", "\xc3\x28\xa0\xa1", "\"\ufffd(\ufffd\ufffd\""},
		{"truncated rune at end", "ok\xe6\x97", "\"ok\ufffd\ufffd\""},
		{"surrogate half as UTF-8", "\xed\xa0\x80", "\"\ufffd\ufffd\ufffd\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendJSONString(nil, tt.in))
			if got != tt.want {
				t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.want)
			}
			if gotB := string(appendJSONString(nil, []byte(tt.in))); gotB != got {
				t.Errorf("bytes variant = %s, string variant = %s", gotB, got)
			}
			var back string
			if err := json.Unmarshal([]byte(got), &back); err != nil {
				t.Fatalf("not valid JSON: %v", err)
			}
			if want := validUTF8(tt.in); back != want {
				t.Errorf("decodes to %q, want %q", back, want)
			}
		})
	}
}

func TestEncodeBudget(t *testing.T) {
	e := getEnc()
	defer putEnc(e)
	big := strings.Repeat("x", 3*maxStringBytes)
	e.b = append(e.b, '{', '"', 'a', '"', ':')
	e.b = appendStr(e, e.b, big)
	e.b = append(e.b, '}')
	if len(e.b) > maxStringBytes+10 {
		t.Errorf("one string took %d bytes, want at most %d", len(e.b), maxStringBytes+10)
	}
}

func TestUUIDv7(t *testing.T) {
	seen := make(map[string]bool)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 100000; i++ {
		id := string(appendUUIDv7(nil, now))
		if len(id) != 36 || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("%s is not a UUIDv7", id)
		}
		if !strings.HasPrefix(id, "01955193-de00-7") {
			t.Fatalf("%s does not start with the time 2025-03-01T12:00Z", id)
		}
		if seen[id] {
			t.Fatalf("duplicate ID %s after %d", id, i)
		}
		seen[id] = true
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ff::/48")}
	tests := []struct {
		name   string
		header string // proxy header used
		peer   string
		values []string
		want   string
		port   uint16
	}{
		{"direct client", "", "203.0.113.7:5000", nil, "203.0.113.7", 5000},
		{"spoofed XFF from untrusted peer ignored", "", "203.0.113.7:5000", []string{"1.2.3.4"}, "203.0.113.7", 5000},
		{"trusted proxy", "", "10.0.0.1:80", []string{"198.51.100.9"}, "198.51.100.9", 0},
		{"client forged left part", "", "10.0.0.1:80", []string{"1.2.3.4, 198.51.100.9"}, "198.51.100.9", 0},
		{"two trusted hops skipped", "", "10.0.0.1:80", []string{"1.2.3.4, 198.51.100.9, 10.1.1.1"}, "198.51.100.9", 0},
		{"several header lines", "", "10.0.0.1:80", []string{"1.2.3.4", "198.51.100.9, 10.2.2.2"}, "198.51.100.9", 0},
		{"all hops trusted: leftmost", "", "10.0.0.1:80", []string{"10.9.9.9, 10.1.1.1"}, "10.9.9.9", 0},
		{"garbage stops the walk", "", "10.0.0.1:80", []string{"198.51.100.9, nonsense, 10.1.1.1"}, "10.1.1.1", 0},
		{"entry with port", "", "10.0.0.1:80", []string{"198.51.100.9:4242"}, "198.51.100.9", 4242},
		{"ipv6 entry", "", "[2001:db8:ff::1]:443", []string{"2001:db8::17"}, "2001:db8::17", 0},
		{"mapped peer unmapped", "", "[::ffff:10.0.0.1]:80", []string{"198.51.100.9"}, "198.51.100.9", 0},
		{"no header from trusted proxy", "", "10.0.0.1:80", nil, "10.0.0.1", 80},
		{"forwarded", HeaderForwarded, "10.0.0.1:80", []string{`for=192.0.2.60;proto=http;by=203.0.113.43`}, "192.0.2.60", 0},
		{"forwarded ipv6 with port", HeaderForwarded, "10.0.0.1:80", []string{`for="[2001:db8:cafe::17]:4711"`}, "2001:db8:cafe::17", 4711},
		{"forwarded list", HeaderForwarded, "10.0.0.1:80", []string{`for=1.2.3.4, for=198.51.100.9;proto=https, for=10.3.3.3`}, "198.51.100.9", 0},
		{"forwarded obfuscated stops", HeaderForwarded, "10.0.0.1:80", []string{`for=198.51.100.9, for=_hidden`}, "10.0.0.1", 80},
		{"XFF ignored when Forwarded configured", HeaderForwarded, "10.0.0.1:80", nil, "10.0.0.1", 80},
		{"x-real-ip", HeaderXRealIP, "10.0.0.1:80", []string{"198.51.100.9"}, "198.51.100.9", 0},
		{"unparsable peer", "", "@", nil, "invalid IP", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Sink: discard{}, TrustedProxies: trusted, ProxyHeader: tt.header})
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.peer
			name := c.proxyHeader
			for _, v := range tt.values {
				r.Header.Add(name, v)
			}
			if tt.header == HeaderForwarded {
				r.Header.Add(HeaderXForwardedFor, "6.6.6.6")
			}
			ip, port := c.clientAddr(r)
			if ip.String() != tt.want || port != tt.port {
				t.Errorf("clientAddr = %v, %d; want %s, %d", ip, port, tt.want, tt.port)
			}
		})
	}
}

type discard struct{}

func (discard) Send(_ context.Context, _ []byte, _ bool) error { return nil }

// lastLine keeps the last line sent.
type lastLine struct{ line []byte }

func (l *lastLine) Send(_ context.Context, line []byte, _ bool) error {
	l.line = append(l.line[:0], line...)
	return nil
}

// FuzzEncodeString checks that any string, as a value and in the name of a
// field, gives an event Vigil accepts, holding the string with invalid UTF-8
// replaced.
func FuzzEncodeString(f *testing.F) {
	for _, s := range []string{"", "alice", "a\"b\\c", "\x00\x1f\x7f", "\xff\xfe", "a\u2028b", "日本", "a.b", "..", "x.", "message", "user", "event.outcome", strings.Repeat("a.", 40)} {
		f.Add(s, s)
	}
	sink := &lastLine{}
	c, err := New(Config{Sink: sink, Service: "fuzz", Host: "h"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		err := c.Audit(context.Background(), "fuzz",
			String("message", value),
			String("labels."+key, value),
			String("vigil.fuzz."+key, value),
			String(key, value),
			Any("vigil.any", map[string]any{key: value, "list": []any{value, 1.5, nil}}))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Parse(sink.line, event.DefaultLimits, time.Now())
		if err != nil {
			t.Fatalf("Vigil refused %s: %v", sink.line, err)
		}
		want := validUTF8(value)
		if key != "message" && len(want) <= maxStringBytes && ev.Message != c.red.Text(want) {
			t.Errorf("message = %q, want %q", ev.Message, want)
		}

		e := getEnc()
		defer putEnc(e)
		c.begin(e, time.Now(), value, `["web"]`)
		e.str("message", value)
		e.bytes("vigil.bytes", []byte(value))
		e.b = append(e.b, '}')
		if _, err := event.Parse(e.b, event.DefaultLimits, time.Now()); err != nil {
			t.Fatalf("Vigil refused %s: %v", e.b, err)
		}
	})
}

func TestSpecial8(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			var b [8]byte
			for i := range b {
				b[i] = 'a'
			}
			b[pos] = byte(c)
			want := !safe[c]
			if got := special8(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]); got != want {
				t.Fatalf("byte %#x at %d: special8 = %v, want %v", c, pos, got, want)
			}
		}
	}
}

func BenchmarkAppendJSONString(b *testing.B) {
	s := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
	buf := make([]byte, 0, 256)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = appendJSONString(buf[:0], s)
	}
}

func TestAppendTime(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000000000Z07:00"
	times := []time.Time{
		time.Date(2025, 3, 1, 11, 59, 59, 873000000, time.UTC),
		time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
		time.Date(2025, 3, 1, 12, 0, 0, 1, time.UTC),
		time.Date(2025, 3, 1, 12, 0, 59, 999999999, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 5, time.UTC),
		time.Now(),
	}
	for i := 0; i < 1000; i++ {
		times = append(times, time.Unix(1740830400+int64(i)*37, int64(i)*7919))
	}
	for _, tm := range times {
		got := string(appendTime(nil, tm))
		want := `"` + tm.UTC().Format(layout) + `"`
		if got != want {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
	// Outside 1970–9999: Go's own RFC 3339 (Vigil refuses years past 9999
	// anyway, and the SDK never makes such times itself).
	old := time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)
	if got := string(appendTime(nil, old)); got != `"1969-12-31T23:59:59Z"` {
		t.Errorf("appendTime(%v) = %s", old, got)
	}
}
