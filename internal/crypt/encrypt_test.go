package crypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

func TestRoundTrip(t *testing.T) {
	ring := openRing(t, t.TempDir(), testMaster(1))
	enc := newEncrypter(t, ring, "user.name", "vigil.command.output", "error.stack_trace", "vigil.job.kwargs")
	tests := []struct {
		name      string
		raw       string
		encrypted []string // fields that must hold an envelope
		secrets   []string // strings that must not be in the encrypted bytes
	}{
		{"web request", webEvent, DefaultFields(), secrets},
		{"request body only", `{"event.id":"e1","http.request.body.content":"password=hunter2"}`,
			[]string{"http.request.body.content"}, []string{"hunter2"}},
		{"escapes and unicode", `{"event.id":"e2","http.request.body.content":"line1\nline2 \"q\" \\ \u2028 ž 😀 TOPSECRET"}`,
			[]string{"http.request.body.content"}, []string{"TOPSECRET", "line1"}},
		{"body that is a number, headers empty", `{"event.id":"e3","http.response.body.content":12.50e3,"http.request.headers":{}}`,
			[]string{"http.response.body.content", "http.request.headers"}, []string{"12.50e3"}},
		{"nested headers with dotted names", `{"event.id":"e4","http.request.headers":{"x.api.key":"KEY-777","accept":["a","b"]}}`,
			[]string{"http.request.headers"}, []string{"KEY-777"}},
		{"configured string field", `{"event.id":"e5","user.name":"mallory-the-user","vigil.command.output":"dumped 3 rows of PII-ROW"}`,
			[]string{"user.name", "vigil.command.output"}, []string{"mallory-the-user", "PII-ROW"}},
		{"configured object field", `{"event.id":"e6","vigil.job":{"kwargs":{"email":"bob@example.org","n":1},"name":"mail"}}`,
			[]string{"vigil.job.kwargs"}, []string{"bob@example.org"}},
		{"id with quote and backslash", `{"event.id":"a\"b\\c","http.request.body.content":"x-SECRET-x"}`,
			[]string{"http.request.body.content"}, []string{"x-SECRET-x"}},
		{"no sensitive field", `{"event.id":"e7","message":"nothing to hide","labels":{"a":"b"}}`, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := parse(t, tt.raw)
			out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
			if err != nil {
				t.Fatalf("EncryptEvent: %v", err)
			}
			for _, f := range tt.encrypted {
				env := envelopeAt(t, out, f)
				if !strings.HasPrefix(env, envelopePrefix+ring.Current()+":") {
					t.Errorf("field %s: envelope %q does not name the current key %s", f, env, ring.Current())
				}
			}
			for _, s := range tt.secrets {
				if bytes.Contains(out, []byte(s)) {
					t.Errorf("encrypted event still holds %q:\n%s", s, out)
				}
			}
			// The encrypted event is canonical: parsing it again changes
			// nothing, so the bytes the ledger hashes are these.
			again, err := event.Parse(out, event.Limits{}, testNow)
			if err != nil {
				t.Fatalf("event.Parse of the encrypted event: %v\n%s", err, out)
			}
			if !bytes.Equal(again.Canonical, out) {
				t.Errorf("encrypted event is not canonical:\n got %s\nwant %s", out, again.Canonical)
			}
			for _, id := range []string{ev.ID, ""} {
				back, err := enc.DecryptEvent(out, id)
				if err != nil {
					t.Fatalf("DecryptEvent(id %q): %v", id, err)
				}
				if !bytes.Equal(back, ev.Canonical) {
					t.Errorf("DecryptEvent(id %q):\n got %s\nwant %s", id, back, ev.Canonical)
				}
			}
			if len(tt.encrypted) == 0 && &out[0] != &ev.Canonical[0] {
				t.Error("EncryptEvent copied an event with nothing to encrypt")
			}
		})
	}
}

func TestEnvelopesDiffer(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	ev := parse(t, `{"event.id":"e1","http.request.body.content":"same"}`)
	a, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Error("two encryptions of the same event are equal: the nonce is not fresh")
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	enc := newEncrypter(t, ring)
	first := ring.Current()
	old := parse(t, `{"event.id":"old","http.request.body.content":"before rotation"}`)
	oldEnc, err := enc.EncryptEvent(old.Canonical, old.ID)
	if err != nil {
		t.Fatal(err)
	}

	second, err := ring.Rotate()
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if second == first || ring.Current() != second {
		t.Fatalf("after Rotate: new key %q, current %q, first %q", second, ring.Current(), first)
	}
	young := parse(t, `{"event.id":"new","http.request.body.content":"after rotation"}`)
	youngEnc, err := enc.EncryptEvent(young.Canonical, young.ID)
	if err != nil {
		t.Fatal(err)
	}
	if env := envelopeAt(t, youngEnc, "http.request.body.content"); !strings.HasPrefix(env, envelopePrefix+second+":") {
		t.Errorf("new event encrypted as %q, want key %s", env, second)
	}
	if env := envelopeAt(t, oldEnc, "http.request.body.content"); !strings.HasPrefix(env, envelopePrefix+first+":") {
		t.Errorf("old event encrypted as %q, want key %s", env, first)
	}

	// Both read back, with this keyring and with one opened again from
	// keys.json.
	reopened := newEncrypter(t, openRing(t, dir, testMaster(1)))
	for _, e := range []*Encrypter{enc, reopened} {
		for _, c := range []struct{ enc, want []byte }{{oldEnc, old.Canonical}, {youngEnc, young.Canonical}} {
			got, err := e.DecryptEvent(c.enc, "")
			if err != nil || !bytes.Equal(got, c.want) {
				t.Errorf("DecryptEvent = %s, %v; want %s", got, err, c.want)
			}
		}
	}
	if reopened.Keyring().Current() != second {
		t.Errorf("reopened keyring's current key is %q, want %q", reopened.Keyring().Current(), second)
	}
	keys := reopened.Keyring().Keys()
	if len(keys) != 2 || keys[0].ID != first || keys[1].ID != second || keys[0].Current || !keys[1].Current {
		t.Errorf("Keys() = %+v", keys)
	}
}

// replaceEnvelope returns canonical with the envelope at path replaced by
// what edit makes of it.
func replaceEnvelope(t *testing.T, canonical []byte, path string, edit func(string) string) []byte {
	t.Helper()
	env := envelopeAt(t, canonical, path)
	return bytes.Replace(canonical, []byte(`"`+env+`"`), []byte(`"`+edit(env)+`"`), 1)
}

func TestTamperedAndMoved(t *testing.T) {
	dir := t.TempDir()
	ring := openRing(t, dir, testMaster(1))
	enc := newEncrypter(t, ring)
	first := ring.Current()
	ev := parse(t, webEvent)
	out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ring.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	const body = "http.request.body.content"
	payloadStart := len(envelopePrefix) + len(first) + 1
	tests := []struct {
		name    string
		data    func() []byte
		eventID string
		field   string
		want    error
	}{
		{"flipped payload byte", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string {
				b := []byte(s)
				i := payloadStart + 40
				if b[i] == 'A' {
					b[i] = 'B'
				} else {
					b[i] = 'A'
				}
				return string(b)
			})
		}, "", body, ErrNotAuthentic},
		{"truncated payload", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return s[:len(s)-4] })
		}, "", body, ErrNotAuthentic},
		{"payload shorter than nonce and tag", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return s[:payloadStart+10] })
		}, "", body, errMalformed},
		{"not base64", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return s[:payloadStart] + "!!!!" + s[payloadStart+4:] })
		}, "", body, errMalformed},
		{"other existing key named", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return strings.Replace(s, first, second, 1) })
		}, "", body, ErrNotAuthentic},
		{"unknown key", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return strings.Replace(s, first, "0123456789ab", 1) })
		}, "", body, ErrUnknownKey},
		{"later envelope version", func() []byte {
			return replaceEnvelope(t, out, body, func(s string) string { return strings.Replace(s, ":v1:", ":v2:", 1) })
		}, "", body, ErrUnsupported},
		{"moved to another event", func() []byte {
			return bytes.Replace(out, []byte(`"`+ev.ID+`"`), []byte(`"another-event"`), 1)
		}, "", "http.request.body.content", ErrNotAuthentic},
		{"decrypted under another event ID", func() []byte {
			b := bytes.Replace(out, []byte(`"`+ev.ID+`"`), []byte(`"another-event"`), 1)
			return b
		}, "another-event", "http.request.body.content", ErrNotAuthentic},
		{"swapped with the response body", func() []byte {
			req := envelopeAt(t, out, body)
			resp := envelopeAt(t, out, "http.response.body.content")
			b := bytes.Replace(out, []byte(req), []byte("REQ"), 1)
			b = bytes.Replace(b, []byte(resp), []byte(req), 1)
			return bytes.Replace(b, []byte("REQ"), []byte(resp), 1)
		}, "", "http.request.body.content", ErrNotAuthentic},
		{"copied to a field of the sender's", func() []byte {
			req := envelopeAt(t, out, body)
			return bytes.Replace(out, []byte(`"message":"POST /api/v1/orders answered 201"`), []byte(`"message":"`+req+`"`), 1)
		}, "", "message", ErrNotAuthentic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.data()
			if bytes.Equal(data, out) {
				t.Fatal("the mutation changed nothing")
			}
			_, err := enc.DecryptEvent(data, tt.eventID)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, tt.want) {
				t.Fatalf("DecryptEvent error = %v, want a FieldError wrapping %v", err, tt.want)
			}
			if fe.Field != tt.field {
				t.Errorf("error names field %q, want %q", fe.Field, tt.field)
			}
			if !strings.Contains(err.Error(), "field "+tt.field+":") {
				t.Errorf("message %q does not name the field", err)
			}
			// KeepUnknownKeys forgives an unknown key, nothing else.
			got, err := enc.DecryptEvent(data, tt.eventID, KeepUnknownKeys)
			if tt.want == ErrUnknownKey {
				if err != nil {
					t.Fatalf("with KeepUnknownKeys: %v", err)
				}
				envelopeAt(t, got, tt.field) // still there
				if v, _ := valueAt(t, got, "http.response.body.content"); v != `{"id":981,"iban":"DE89370400440532013000"}` {
					t.Errorf("other fields not decrypted: %v", v)
				}
			} else if !errors.Is(err, tt.want) {
				t.Errorf("with KeepUnknownKeys: error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncryptRefuses(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	tests := []struct {
		name    string
		data    string
		eventID string
		want    string // in the error
	}{
		{"envelope-like message", `{"event":{"id":"e"},"message":"vigil:enc:v1:abc:AAAA"}`, "", `field message: value at byte 30 starts with "vigil:enc:"`},
		{"envelope-like string in an array", `{"event":{"id":"e"},"x":{"y":[1,{"z":"vigil:enc:v9"}]}}`, "", `field x.y: value at byte 37`},
		{"escaped envelope-like string", `{"event":{"id":"e"},"m":"vigil\u003aenc:v1:k:x"}`, "", "field m: value at byte 24"},
		{"selected field split by a dotted key", `{"event":{"id":"e"},"http.request.headers.cookie":"c=SECRET"}`, "", "field http.request.headers: is split across dotted keys"},
		{"selected field split further down", `{"event":{"id":"e"},"http":{"request":{"headers":{"a":"1"}}},"http.request":{"headers.b":"2"}}`, "", "field http.request.headers: is split"},
		{"event ID differs", `{"event":{"id":"e"}}`, "f", `event ID "f" given, but the event's event.id is "e"`},
		{"no event ID", `{"message":"x"}`, "", "no event ID"},
		{"bad event ID", `{"message":"x"}`, "has space", "character other than visible ASCII"},
		{"two event IDs", `{"event":{"id":"e"},"event.id":"e"}`, "", "field event.id: appears twice"},
		{"not an object", `["event"]`, "e", "invalid JSON at byte 0: unexpected '[', expected '{'"},
		{"trailing data", `{"event":{"id":"e"}} x`, "", "invalid JSON at byte 21: data after the event"},
		{"bad string", `{"event":{"id":"e"},"m":"a` + "\x01" + `"}`, "", "control character"},
		{"bad number", `{"event":{"id":"e"},"m":01}`, "", "invalid JSON at byte 25"},
		{"truncated", `{"event":{"id":"e"},"http":{"request":{"body":{"content":"abc`, "", "unterminated string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := enc.EncryptEvent([]byte(tt.data), tt.eventID)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("EncryptEvent = %s, %v; want an error with %q", out, err, tt.want)
			}
		})
	}
	// Inside a selected field, such a string is encrypted like any other.
	ev := parse(t, `{"event.id":"e","http.request.body.content":"vigil:enc:v1:abc:AAAA"}`)
	out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
	if err != nil {
		t.Fatalf("envelope-like body: %v", err)
	}
	if back, err := enc.DecryptEvent(out, ""); err != nil || !bytes.Equal(back, ev.Canonical) {
		t.Errorf("envelope-like body: DecryptEvent = %s, %v", back, err)
	}
}

// TestDottedInput checks input that is not canonical: a selected field
// written with a dotted key, and whitespace, is found.
func TestDottedInput(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	raw := "{ \"event.id\" : \"d1\",\n \"http.request\": {\"headers\": {\"cookie\": \"SECRET\"}},\n \"http.response.body.content\" : \"SECRET2\" }"
	out, err := enc.EncryptEvent([]byte(raw), "")
	if err != nil {
		t.Fatal(err)
	}
	ev := parse(t, string(out))
	envelopeAt(t, ev.Canonical, "http.request.headers")
	envelopeAt(t, ev.Canonical, "http.response.body.content")
	if back, err := enc.DecryptEvent(out, "d1"); err != nil || string(back) != raw {
		t.Errorf("DecryptEvent = %s, %v; want the input back", back, err)
	}
}

func TestDecryptSyntaxErrors(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	deepArray := `{"event":{"id":"e"},"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "}"
	tests := []struct {
		name, data, want string
	}{
		{"empty", ``, "unexpected end, expected '{'"},
		{"missing colon", `{"a" 1}`, "expected ':'"},
		{"missing comma", `{"a":1 "b":2}`, "expected ',' or '}'"},
		{"bad literal", `{"a":tru}`, "bad literal"},
		{"bad escape", `{"a":"\x"}`, "bad escape"},
		{"bad unicode escape", `{"a":"\u12g4"}`, `bad \u escape`},
		{"array not closed", `{"a":[1,2}`, "expected ',' or ']'"},
		{"too deep", deep, "nesting deeper than 1000"},
		{"arrays too deep", deepArray, "nesting deeper than 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := enc.DecryptEvent([]byte(tt.data), "e")
			var se *SyntaxError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DecryptEvent error = %v, want a SyntaxError with %q", err, tt.want)
			}
		})
	}
}

func TestNilEncrypter(t *testing.T) {
	var enc *Encrypter
	in := []byte(`{"http":{"request":{"body":{"content":"x"}}}}`)
	for name, f := range map[string]func([]byte, string) ([]byte, error){
		"EncryptEvent": enc.EncryptEvent,
		"DecryptEvent": func(b []byte, id string) ([]byte, error) { return enc.DecryptEvent(b, id) },
	} {
		out, err := f(in, "e")
		if err != nil || !bytes.Equal(out, in) {
			t.Errorf("nil %s = %s, %v; want the input", name, out, err)
		}
	}
	got, err := New(Config{Enabled: false, Fields: []string{"user.name"}}, t.TempDir())
	if got != nil || err != nil {
		t.Errorf("New of a disabled config = %v, %v; want nil, nil", got, err)
	}
}

func TestNew(t *testing.T) {
	t.Setenv("VIGIL_TEST_MASTER_KEY", base64.StdEncoding.EncodeToString(testMaster(1)))
	dir := t.TempDir()
	enc, err := New(Config{Enabled: true, Fields: []string{"error.stack_trace"}, MasterKeyEnv: "VIGIL_TEST_MASTER_KEY"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(enc.Fields(), ","); got != strings.Join(append(DefaultFields(), "error.stack_trace"), ",") {
		t.Errorf("Fields() = %s", got)
	}
	// The key from the environment is testMaster(1).
	if _, err := Open(dir, testMaster(1)); err != nil {
		t.Errorf("keyring made by New does not open with the master key: %v", err)
	}
	if _, err := New(Config{Enabled: true, Fields: []string{"event.id"}, MasterKeyEnv: "VIGIL_TEST_MASTER_KEY"}, dir); err == nil ||
		!strings.Contains(err.Error(), "field encryption.fields[0]") {
		t.Errorf("New with a bad field: %v", err)
	}
}

func TestEncryptParsed(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)), "user.name", "message")
	ev := parse(t, webEvent)
	lim := event.Limits{MaxBytes: len(webEvent)} // the envelopes need more: EncryptParsed makes room
	sealed, err := enc.EncryptParsed(ev, lim)
	if err != nil {
		t.Fatal(err)
	}
	// The indexed fields hold the envelopes, the others are as parsed.
	if !IsEnvelope(sealed.UserName) || !IsEnvelope(sealed.Message) {
		t.Errorf("indexed fields in clear: user.name %q, message %q", sealed.UserName, sealed.Message)
	}
	if sealed.ID != ev.ID || sealed.Path != ev.Path || sealed.SourceIP != ev.SourceIP || sealed.Status != ev.Status || !sealed.Time.Equal(ev.Time) {
		t.Errorf("other fields changed:\n got %+v\nwant %+v", sealed, ev)
	}
	envelopeAt(t, sealed.Canonical, "user.name")
	back, err := enc.DecryptEvent(sealed.Canonical, sealed.ID)
	if err != nil || !bytes.Equal(back, ev.Canonical) {
		t.Errorf("DecryptEvent = %s, %v\nwant %s (event.ingested kept)", back, err, ev.Canonical)
	}
	// Nothing to encrypt, or no Encrypter: the event as it was.
	plain := parse(t, `{"event.id":"p","url.path":"/"}`)
	for _, e := range []*Encrypter{enc, nil} {
		got, err := e.EncryptParsed(plain, event.Limits{})
		if err != nil || !bytes.Equal(got.Canonical, plain.Canonical) {
			t.Errorf("EncryptParsed of an event with nothing to encrypt = %s, %v", got.Canonical, err)
		}
	}
	if _, err := enc.EncryptParsed(parse(t, `{"event.id":"r","error.message":"vigil:enc:v1:x:y"}`), event.Limits{}); err == nil {
		t.Error("EncryptParsed accepted a reserved value")
	}
}

func TestDepthBoundary(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	// The event object is depth 1: MaxDepth levels in all are accepted.
	objects := `{"event":{"id":"e"},"x":` + strings.Repeat(`{"a":`, MaxDepth-2) + "1" + strings.Repeat("}", MaxDepth-2) + "}"
	arrays := `{"event":{"id":"e"},"x":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + "}"
	for name, data := range map[string]string{"objects": objects, "arrays": arrays} {
		if _, err := enc.DecryptEvent([]byte(data), ""); err != nil {
			t.Errorf("%s at depth %d: DecryptEvent: %v", name, MaxDepth, err)
		}
		if _, err := enc.EncryptEvent([]byte(data), ""); err != nil {
			t.Errorf("%s at depth %d: EncryptEvent: %v", name, MaxDepth, err)
		}
	}
}

// TestConcurrentUse encrypts and decrypts from several goroutines while the
// key rotates (run with -race).
func TestConcurrentUse(t *testing.T) {
	ring := openRing(t, t.TempDir(), testMaster(1))
	enc := newEncrypter(t, ring)
	ev := parse(t, webEvent)
	done := make(chan error, 2)
	for g := 0; g < 2; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				out, err := enc.EncryptEvent(ev.Canonical, ev.ID)
				if err == nil {
					var back []byte
					back, err = enc.DecryptEvent(out, ev.ID)
					if err == nil && !bytes.Equal(back, ev.Canonical) {
						err = errors.New("round trip changed the event")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for i := 0; i < 5; i++ {
		if _, err := ring.Rotate(); err != nil {
			t.Error(err)
		}
	}
	for g := 0; g < 2; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestSizeLimit(t *testing.T) {
	enc := newEncrypter(t, openRing(t, t.TempDir(), testMaster(1)))
	huge := make([]byte, MaxEventBytes+1) // fresh pages: never touched, as the length is checked first
	for name, f := range map[string]func([]byte, string) ([]byte, error){
		"EncryptEvent": enc.EncryptEvent,
		"DecryptEvent": func(b []byte, id string) ([]byte, error) { return enc.DecryptEvent(b, id) },
	} {
		if _, err := f(huge, "e"); err == nil || !strings.Contains(err.Error(), "is larger than 134217728") {
			t.Errorf("%s of %d bytes: %v", name, len(huge), err)
		}
	}
}
