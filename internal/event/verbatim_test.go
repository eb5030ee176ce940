package event

import (
	"reflect"
	"testing"
	"time"
)

// checkCanonicalTime wants canonicalTime to accept exactly the strings that
// time.Parse reads as RFC 3339 and that are written back the same in UTC
// with time.RFC3339Nano, in years 0000 to 9999, and to read them as
// time.Parse does.
func checkCanonicalTime(t *testing.T, s string) {
	t.Helper()
	got, ok := canonicalTime([]byte(s))
	want, err := time.Parse(time.RFC3339, s)
	canonical := err == nil && want.UTC().Format(time.RFC3339Nano) == s && !want.Before(minTime) && want.Before(maxTime)
	if ok != canonical {
		t.Fatalf("canonicalTime(%q) ok = %v, want %v (time.Parse: %v, %v)", s, ok, canonical, want, err)
	}
	if ok && !reflect.DeepEqual(got, want.UTC()) {
		t.Fatalf("canonicalTime(%q) = %#v, time.Parse gives %#v", s, got, want.UTC())
	}
}

func TestCanonicalTime(t *testing.T) {
	for _, s := range timeCases {
		checkCanonicalTime(t, s)
	}
}

var timeCases = []string{
	"2025-03-01T12:00:00Z", "2025-03-01T12:00:00.1Z", "2025-03-01T12:00:00.123456789Z",
	"2025-03-01T12:00:00.120Z", "2025-03-01T12:00:00.Z", "2025-03-01T12:00:00.0Z",
	"2025-03-01T12:00:00.1234567891Z", "2025-03-01T12:00:00+00:00", "2025-03-01T12:00:00z",
	"2025-03-01t12:00:00Z", "2025-03-01 12:00:00Z", "2025-3-01T12:00:00Z",
	"0000-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z", "2024-02-29T00:00:00Z",
	"2025-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2025-04-31T00:00:00Z",
	"2025-00-10T00:00:00Z", "2025-13-10T00:00:00Z", "2025-01-00T00:00:00Z", "2025-01-32T00:00:00Z",
	"2025-01-01T24:00:00Z", "2025-01-01T23:60:00Z", "2025-01-01T23:59:60Z", "2025-01-01T23:59:59,5Z",
	"+025-01-01T00:00:00Z", "-025-01-01T00:00:00Z", "2025-01-01T00:00:00.+1Z", "2025-01-01T00:00:00.-1Z",
	"2025-01-01T0:00:00Z", "", "Z", "2025-01-01T00:00:00.00000000Z", "2025-01-01T00:00:00.000000001Z",
}

func FuzzCanonicalTime(f *testing.F) {
	for _, s := range timeCases {
		f.Add(s)
	}
	f.Fuzz(checkCanonicalTime)
}
