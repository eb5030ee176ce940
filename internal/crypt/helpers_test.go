package crypt

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

// testNow is the ingest time of every parse in the tests, so that parsing
// the same content twice gives the same bytes.
var testNow = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// testMaster returns a master key made of one repeated byte.
func testMaster(b byte) []byte { return bytes.Repeat([]byte{b}, MasterKeySize) }

func openRing(t testing.TB, dir string, master []byte) *Keyring {
	t.Helper()
	k, err := Open(dir, master)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return k
}

func newEncrypter(t testing.TB, ring *Keyring, extra ...string) *Encrypter {
	t.Helper()
	e, err := NewEncrypter(ring, append(DefaultFields(), extra...))
	if err != nil {
		t.Fatalf("NewEncrypter: %v", err)
	}
	return e
}

// parse returns the canonical event of raw JSON, at testNow, with room for
// the envelopes.
func parse(t testing.TB, raw string) event.Event {
	t.Helper()
	ev, err := event.Parse([]byte(raw), event.Limits{}, testNow)
	if err != nil {
		t.Fatalf("event.Parse: %v\n%s", err, raw)
	}
	return ev
}

// webEvent is a request log with bodies and headers holding secrets.
const webEvent = `{
  "@timestamp": "2026-11-23T09:59:59.873Z",
  "event.id": "0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d",
  "event.category": ["web"],
  "event.action": "http_request",
  "event.outcome": "success",
  "http.request.id": "req-81f2",
  "http.request.method": "POST",
  "http.request.headers": {"authorization": "Bearer SECRET-TOKEN-4242", "content-type": "application/json"},
  "http.request.body.content": "{\"card\":\"4111111111111111\",\"cvv\":\"737\"}",
  "http.response.status_code": 201,
  "http.response.headers": {"set-cookie": "session=SECRET-SESSION-9999"},
  "http.response.body.content": "{\"id\":981,\"iban\":\"DE89370400440532013000\"}",
  "url.path": "/api/v1/orders",
  "source.ip": "203.0.113.7",
  "user.id": "42",
  "user.name": "alice",
  "service.name": "shop",
  "message": "POST /api/v1/orders answered 201"
}`

// secrets are strings of webEvent that must not be stored in clear.
var secrets = []string{"SECRET-TOKEN-4242", "4111111111111111", "SECRET-SESSION-9999", "DE89370400440532013000"}

// valueAt returns the value at a dotted path of a JSON object, and whether
// it is there.
func valueAt(t testing.TB, canonical []byte, path string) (any, bool) {
	t.Helper()
	var v any
	if err := json.Unmarshal(canonical, &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, canonical)
	}
	for _, seg := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[seg]; !ok {
			return nil, false
		}
	}
	return v, true
}

// envelopeAt returns the envelope at path, failing when there is none.
func envelopeAt(t testing.TB, canonical []byte, path string) string {
	t.Helper()
	v, ok := valueAt(t, canonical, path)
	if !ok {
		t.Fatalf("no field %s in %s", path, canonical)
	}
	s, ok := v.(string)
	if !ok || !strings.HasPrefix(s, envelopePrefix) {
		t.Fatalf("field %s is %#v, not an envelope", path, v)
	}
	return s
}
