package retention

import (
	"testing"
	"time"
)

// FuzzParse feeds the retention section parser and the duration parser
// arbitrary input: they must not panic, and a config they accept validates.
func FuzzParse(f *testing.F) {
	f.Add([]byte("retention:\n  default: 90d\n  floor: 7d\n  policies:\n    - match: {category: authentication}\n      keep: 1y\n"))
	f.Add([]byte("retention:\n  holds:\n    - id: h\n      incident: INC-1\n"))
	f.Add([]byte("retention:\n  fields:\n    - paths: [http.request.body.content]\n      keep: 30d\n"))
	f.Add([]byte("retention: {policies: [{match: {type: job}, keep: 1d, force: true}]}"))
	f.Add([]byte("retention: {unknown: 1}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err == nil {
			if err := c.Validate("retention"); err != nil {
				t.Fatalf("accepted config fails Validate: %v", err)
			}
		}
		if d, err := ParseDuration(string(data)); err == nil && (d < 0 || d > maxDuration) {
			t.Fatalf("ParseDuration(%q) = %v", data, d)
		}
		_, _ = PurgeRequest{OlderThan: string(data), Before: string(data)}.Request(time.Unix(0, 0))
	})
}

func TestConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		yaml, want string
	}{
		{"retention: {policies: [{match: {category: x}, keep: 3d}]}", "retention.policies[0].keep: 3d is shorter than the floor 7d"},
		{"retention: {policies: [{match: {}, keep: 30d}]}", "retention.policies[0].match"},
		{"retention: {policies: [{match: {type: nope}, keep: 30d}]}", "retention.policies[0].match.type"},
		{"retention: {default: 1d}", "retention.default"},
		{"retention: {fields: [{paths: [a.b], keep: 1d}]}", "retention.fields[0].keep"},
		{"retention: {holds: [{id: a, query: 'x = '}]}", "retention.holds[0]"},
		{"retention: {holds: [{id: a, incident: I}, {id: a, incident: J}]}", "retention.holds[1].id"},
		{"retention: {bogus: 1}", "field bogus not found"},
		{"retention: {default: 12x}", "duration"},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.yaml))
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Parse([]byte("retention: {policies: [{match: {type: job}, keep: 1d, force: true}]}")); err != nil {
		t.Errorf("forced short policy refused: %v", err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}
