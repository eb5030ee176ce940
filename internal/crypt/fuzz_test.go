package crypt

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// fuzzEncrypter returns an Encrypter with two data keys, and an encrypted
// event of each for the seed corpus.
func fuzzEncrypter(f *testing.F) (*Encrypter, [][]byte) {
	ring := openRing(f, f.TempDir(), testMaster(3))
	enc := newEncrypter(f, ring, "user.name", "vigil.job.kwargs")
	var seeds [][]byte
	for i, raw := range []string{
		webEvent,
		`{"event.id":"f1","user.name":"bob","vigil.job":{"kwargs":{"a":[1,{"b":null}]}}}`,
	} {
		if i == 1 {
			if _, err := ring.Rotate(); err != nil {
				f.Fatal(err)
			}
		}
		ev := parse(f, raw)
		c, err := enc.EncryptEvent(ev.Canonical, ev.ID)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, c)
	}
	return enc, seeds
}

// FuzzDecryptEvent checks that DecryptEvent never panics on any input, and
// that what it returns for valid JSON is valid JSON.
func FuzzDecryptEvent(f *testing.F) {
	enc, seeds := fuzzEncrypter(f)
	for _, s := range seeds {
		f.Add(s, "")
		f.Add(bytes.Replace(s, []byte("vigil:enc:v1:"), []byte("vigil:enc:v1:0"), 1), "")
		f.Add(s[:len(s)/2], "")
		f.Add(s, "other-id")
	}
	f.Add([]byte(`{"a":"vigil:enc:v1:abc:"}`), "e")
	f.Add([]byte(`{"a":"vigil:enc:"}`), "e")
	f.Add([]byte(`{"a":"vigil:enc:v1::::"}`), "e")
	f.Add([]byte(`{"event":{"id":"x"},"a":{"b":[{"c":"vigil:enc:v1:k:AAAA"}]}}`), "")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, data []byte, id string) {
		for _, opts := range [][]DecryptOption{nil, {KeepUnknownKeys}} {
			out, err := enc.DecryptEvent(data, id, opts...)
			if err != nil {
				continue
			}
			if json.Valid(data) && !json.Valid(out) {
				t.Fatalf("valid JSON in, invalid out:\n in %q\nout %q", data, out)
			}
		}
	})
}

// FuzzEncryptRoundTrip checks, for every event that event.Parse accepts:
// EncryptEvent of its canonical form puts an envelope in every selected
// field present, the result is canonical, and DecryptEvent gives the
// canonical form back. EncryptEvent of the raw input, when Parse accepts
// the result, leaves no selected field in clear either.
func FuzzEncryptRoundTrip(f *testing.F) {
	enc, _ := fuzzEncrypter(f)
	f.Add([]byte(webEvent))
	f.Add([]byte(`{"event.id":"a","http.request":{"headers.x":"1"},"http.request.body.content":{"k":[1,2]}}`))
	f.Add([]byte(`{"http":{"response":{"headers":{"a.b":"c"},"body":{"content":"x"}}},"user.name":"n"}`))
	f.Add([]byte(`{"message":"vigil:enc:v1:abc:AAAA"}`))
	f.Add([]byte(`{"vigil.job.kwargs":"s","vigil":{"job":{"name":"j"}},"http.request..x":"y","http.":{"request":1}}`))
	lim := event.Limits{MaxBytes: 1 << 16, MaxDepth: 20}
	big := event.Limits{MaxBytes: 1 << 18, MaxDepth: 20}
	fields := enc.Fields()
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := event.Parse(raw, lim, testNow)
		if err != nil {
			return
		}
		out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
		if err != nil {
			var re *ReservedError
			if errors.As(err, &re) {
				return
			}
			t.Fatalf("EncryptEvent of a canonical event: %v\n%s", err, ev.Canonical)
		}
		again, err := event.Parse(out, big, testNow)
		if err != nil {
			t.Fatalf("encrypted event refused: %v\n%s", err, out)
		}
		if !bytes.Equal(again.Canonical, out) {
			t.Fatalf("encrypted event not canonical:\n got %s\nwant %s", out, again.Canonical)
		}
		checkSealed(t, out, fields)
		back, err := enc.DecryptEvent(out, "")
		if err != nil || !bytes.Equal(back, ev.Canonical) {
			t.Fatalf("DecryptEvent = %s, %v\nwant %s", back, err, ev.Canonical)
		}

		// The raw input, with its dotted keys and whitespace.
		rawOut, err := enc.EncryptEvent(raw, ev.ID)
		if err != nil {
			return
		}
		parsed, err := event.Parse(rawOut, big, testNow)
		if err != nil {
			return
		}
		checkSealed(t, parsed.Canonical, fields)
	})
}

// checkSealed fails unless every selected field of the canonical event c
// that is present holds an envelope.
func checkSealed(t *testing.T, c []byte, fields []string) {
	t.Helper()
	for _, f := range fields {
		if v, ok := valueAt(t, c, f); ok {
			if s, ok := v.(string); !ok || !IsEnvelope(s) {
				t.Fatalf("field %s in clear: %#v\n%s", f, v, c)
			}
		}
	}
}
