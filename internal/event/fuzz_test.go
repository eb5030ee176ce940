package event

import (
	"encoding/json"
	"testing"
)

// FuzzParse checks that Parse never panics, accepts only valid JSON, and that
// what it accepts has a canonical form that is valid JSON and parses again to
// the same bytes.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"source.ip":"1.2.3.4","source":{"port":5}}`))
	f.Add(benchEvent)
	f.Add([]byte(`{"a":[{"b.c":1}],"labels":{"x":true},"related.objects":["user:1"]}`))
	f.Add([]byte(`{"@timestamp":1700000000000.5,"http.response.status_code":"200","message":"\u2028\ud83d\ude00"}`))
	lim := Limits{MaxBytes: 1 << 16, MaxDepth: 10}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Parse(data, lim, testNow)
		if err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("accepted invalid JSON %q", data)
		}
		if !json.Valid(ev.Canonical) {
			t.Fatalf("canonical form is not valid JSON: %q", ev.Canonical)
		}
		again, err := Parse(ev.Canonical, lim, testNow)
		if err != nil {
			t.Fatalf("canonical form refused: %v\ninput: %q\ncanonical: %q", err, data, ev.Canonical)
		}
		if string(again.Canonical) != string(ev.Canonical) {
			t.Fatalf("not idempotent\ninput: %q\n first: %q\nsecond: %q", data, ev.Canonical, again.Canonical)
		}
		if !eventsEqual(again, ev) {
			t.Fatalf("indexed fields differ\n first: %+v\nsecond: %+v", ev, again)
		}
	})
}
