package respond

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/sdk/throttle"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		d         Decision
		wantValue string
		wantType  string
		errField  string // "" = valid
	}{
		{Decision{Scope: "ip", Value: " 203.0.113.7 ", Origin: "r"}, "203.0.113.7", "ban", ""},
		{Decision{Scope: "ip", Value: "::ffff:192.0.2.1", Origin: "r"}, "192.0.2.1", "ban", ""},
		{Decision{Scope: "ip", Value: "2001:DB8::0:1", Origin: "r"}, "2001:db8::1", "ban", ""},
		{Decision{Scope: "ip", Value: "fe80::1%eth0", Origin: "r"}, "fe80::1", "ban", ""},
		{Decision{Type: "throttle", Scope: "range", Value: "198.51.100.77/24", Origin: "r"}, "198.51.100.0/24", "throttle", ""},
		{Decision{Scope: "range", Value: "::ffff:10.1.0.0/112", Origin: "r"}, "10.1.0.0/16", "ban", ""},
		{Decision{Scope: "range", Value: "10.0.0.0/7", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "range", Value: "0.0.0.0/0", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "range", Value: "2001:db8::/15", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "range", Value: "203.0.113.7", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "user", Value: " Eve ", Origin: "r"}, "eve", "ban", ""},
		{Decision{Scope: "user", Value: "ÉVE", Origin: "r"}, "éve", "ban", ""},
		{Decision{Scope: "user", Value: "eve\nadmin", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "user", Value: strings.Repeat("a", 257), Origin: "r"}, "", "", "value"},
		{Decision{Scope: "ip", Value: "300.1.1.1", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "ip", Value: "", Origin: "r"}, "", "", "value"},
		{Decision{Scope: "host", Value: "x", Origin: "r"}, "", "", "scope"},
		{Decision{Value: "1.2.3.4", Origin: "r"}, "", "", "scope"},
		{Decision{Type: "block", Scope: "ip", Value: "1.2.3.4", Origin: "r"}, "", "", "type"},
		{Decision{Scope: "ip", Value: "1.2.3.4"}, "", "", "origin"},
		{Decision{Scope: "ip", Value: "1.2.3.4", Origin: "r", AlertFingerprint: "a\x00"}, "", "", "alert_fingerprint"},
	}
	for _, tt := range tests {
		got, err := normalize(tt.d)
		if tt.errField != "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.errField {
				t.Errorf("normalize(%+v) = %v; want an error on field %s", tt.d, err, tt.errField)
			}
			continue
		}
		if err != nil || got.Value != tt.wantValue || got.Type != tt.wantType {
			t.Errorf("normalize(%+v) = %q %q, %v; want %q %q", tt.d, got.Type, got.Value, err, tt.wantType, tt.wantValue)
			continue
		}
		// The SDK must find the decision under the same value.
		var b throttle.StaticBans
		if err := b.Add(got.throttleDecision()); err != nil {
			t.Errorf("SDK refuses %+v: %v", got, err)
		}
		if !b.Remove(got.Scope, got.Value) {
			t.Errorf("SDK keeps %s %s under another value", got.Scope, got.Value)
		}
	}
	long := Decision{Scope: "ip", Value: "1.2.3.4", Origin: "r", Reason: strings.Repeat("é", 600)}
	if got, err := normalize(long); err != nil || len(got.Reason) > MaxReasonBytes || !strings.HasPrefix(long.Reason, got.Reason) {
		t.Errorf("long reason: %d bytes, %v", len(got.Reason), err)
	}
}

func TestAllowlist(t *testing.T) {
	al, err := Allowlist{IPs: []string{"192.0.2.10", "10.0.0.0/8", "::ffff:172.16.0.0/108", "2001:db8:1::/48"}, Users: []string{" Admin "}}.parse()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		scope, value string
		entry        string // "" = allowed
	}{
		{"ip", "192.0.2.10", "192.0.2.10"},
		{"ip", "192.0.2.11", ""},
		{"ip", "10.200.3.4", "10.0.0.0/8"},
		{"ip", "172.16.9.9", "::ffff:172.16.0.0/108"},
		{"ip", "2001:db8:1::5", "2001:db8:1::/48"},
		{"ip", "2001:db8:2::5", ""},
		{"range", "192.0.2.0/24", "192.0.2.10"},       // holds an allowlisted address
		{"range", "10.1.0.0/16", "10.0.0.0/8"},        // inside an allowlisted range
		{"range", "2001:db8::/32", "2001:db8:1::/48"}, // holds an allowlisted range
		{"range", "198.51.100.0/24", ""},
		{"user", "admin", "admin"},
		{"user", "eve", ""},
	}
	for _, tt := range tests {
		d, err := normalize(Decision{Scope: tt.scope, Value: tt.value, Origin: "r"})
		if err != nil {
			t.Fatal(err)
		}
		entry, hit := al.conflict(d)
		if hit != (tt.entry != "") || entry != tt.entry {
			t.Errorf("conflict(%s %s) = %q, %v; want %q", tt.scope, tt.value, entry, hit, tt.entry)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		yaml string
		err  string // "" = valid
	}{
		{"", ""},
		{"allowlist:\n  ips: [127.0.0.1, 10.0.0.0/8, '::1']\n  users: [admin]\nmax_active: 500\n", ""},
		{"allowlist:\n  ips: [127.0.0.1, nope]\n", "field respond.allowlist.ips[1]: \"nope\" is not an IP address or CIDR range"},
		{"allowlist:\n  users: ['a\tb']\n", "field respond.allowlist.users[0]"},
		{"max_active: -1\n", "field respond.max_active: -1 is outside 1..1000000"},
		{"stream_buffer: 2\n", "field respond.stream_buffer"},
		{"allowlist:\n  addresses: [1.2.3.4]\n", "field addresses not found"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
		dec.KnownFields(true)
		err := dec.Decode(&c)
		if err == nil || tt.yaml == "" {
			err = c.Validate()
		}
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("config %q: %v; want %q", tt.yaml, err, tt.err)
		}
	}
	if c := (Config{}).withDefaults(); !reflect.DeepEqual(c, DefaultConfig()) {
		t.Errorf("zero Config with defaults = %+v; want %+v", c, DefaultConfig())
	}
}

func TestDefaultAllowlistIsEmpty(t *testing.T) {
	// The demo and tests send from 127.0.0.1, and their brute force must
	// be banned: nothing is allowlisted unless configured.
	al, err := DefaultConfig().Allowlist.parse()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"127.0.0.1", "::1", "10.0.0.1", "192.168.1.1"} {
		if _, hit := al.conflict(Decision{Scope: "ip", Value: netip.MustParseAddr(v).String()}); hit {
			t.Errorf("%s is allowlisted by default", v)
		}
	}
}
