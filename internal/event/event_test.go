package event

import (
	"encoding/json"
	"errors"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)

// testTail is what Parse adds to an event that has an event.id and a
// @timestamp: written out to keep the expectations below readable.
const testIngested = `"ingested":"2025-03-01T12:00:00.0000005Z"`

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  string // canonical form
		check func(t *testing.T, ev Event)
	}{
		{
			name: "dotted keys merge with an object",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","source.ip":"1.2.3.4","source":{"port":5}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"source":{"ip":"1.2.3.4","port":5},"vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				if ev.SourceIP != netip.MustParseAddr("1.2.3.4") {
					t.Errorf("SourceIP = %v", ev.SourceIP)
				}
			},
		},
		{
			name: "keys sorted at every level, whitespace dropped, unknown fields kept",
			in: `{ "zeta" : [ 3 , {"b":1,"a":2} ], "event" : {"id":"a1"}, "@timestamp":"2025-01-02T03:04:05Z",
				"alpha": {"y": null, "x": true, "w": false, "v": 1.50e+3}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","alpha":{"v":1.50e+3,"w":false,"x":true,"y":null},"event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"},"zeta":[3,{"a":2,"b":1}]}`,
		},
		{
			name: "dotted keys inside nested objects and arrays expand too",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","x":{"a.b":1,"list":[{"c.d":2}]}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"},"x":{"a":{"b":1},"list":[{"c":{"d":2}}]}}`,
		},
		{
			name: "keys with an empty segment are kept whole",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","a..b":1,"":2,".c":3,"d.":4}`,
			want: `{"":2,".c":3,"@timestamp":"2025-01-02T03:04:05Z","a..b":1,"d.":4,"event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
		},
		{
			name: "segments sort before longer keys",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","ab":1,"a.b":2,"a-":3,"a":{"a":4}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","a":{"a":4,"b":2},"a-":3,"ab":1,"event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
		},
		{
			name: "a zero byte sorts after a dot",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","x\u0000y":1,"x.z":2,"x\u0000":3}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"},"x":{"z":2},"x\u0000":3,"x\u0000y":1}`,
		},
		{
			name: "strings re-escaped one way",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","message":"\u0041\/\b\f\n\r\t\u001f\u007f\"\\\u00e9\u2028\u2029\ud83d\ude00 é"}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"message":"A/\u0008\u000c\n\r\t\u001f` + "\x7f" + `\"\\é\u2028\u2029😀 é","vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				if want := "A/\b\f\n\r\t\x1f\x7f\"\\é\u2028\u2029😀 é"; ev.Message != want {
					t.Errorf("Message = %q, want %q", ev.Message, want)
				}
			},
		},
		{
			name: "escaped keys",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","k\u0065y\n":1,"user\u002ename":"bob"}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"key\n":1,"user":{"name":"bob"},"vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				if ev.UserName != "bob" {
					t.Errorf("UserName = %q", ev.UserName)
				}
			},
		},
		{
			name: "defaults filled",
			in:   `{}`,
			want: `{"@timestamp":"2025-03-01T12:00:00.0000005Z","event":{"id":"*",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				if !ev.Time.Equal(testNow) || ev.Kind != "event" {
					t.Errorf("Time, Kind = %v, %q", ev.Time, ev.Kind)
				}
				if !uuidV7.MatchString(ev.ID) {
					t.Errorf("ID = %q, not a UUIDv7", ev.ID)
				}
			},
		},
		{
			name: "event.ingested and vigil.schema overwritten, event.kind kept",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","event.ingested":{"x":1},"vigil":{"schema":"0","view":"home"},"event.kind":"alert"}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"alert"},"vigil":{"schema":"1","view":"home"}}`,
		},
		{
			name: "timestamp normalized to UTC",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05.120+02:00"}`,
			want: `{"@timestamp":"2025-01-02T01:04:05.12Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				if want := time.Date(2025, 1, 2, 1, 4, 5, 120e6, time.UTC); !ev.Time.Equal(want) {
					t.Errorf("Time = %v, want %v", ev.Time, want)
				}
			},
		},
		{
			name: "timestamp in epoch milliseconds",
			in:   `{"event.id":"a1","@timestamp":1735787045123}`,
			want: `{"@timestamp":"2025-01-02T03:04:05.123Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
		},
		{
			name: "timestamp in fractional epoch milliseconds",
			in:   `{"event.id":"a1","@timestamp":1735787045123.5}`,
			want: `{"@timestamp":"2025-01-02T03:04:05.1235Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"}}`,
		},
		{
			name: "known fields normalized and indexed",
			in: `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","http.request.method":"get","http.response.status_code":"404",
				"source.ip":"2001:DB8::0:1","source.port":443,"event.severity":-3,"event.category":["web","authentication"],
				"event.action":"authn_login_fail","event.outcome":"failure","user.id":"42","user.name":"alice","url.path":"/login",
				"http.request.id":"r1","service.name":"shop","host.name":"web-1","message":"login failed",
				"related.objects":["auth.user:42","shop.order:7"],"labels":{"env":"prod","n":1,"b":true}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"action":"authn_login_fail","category":["web","authentication"],"id":"a1",` + testIngested + `,"kind":"event","outcome":"failure","severity":-3},` +
				`"host":{"name":"web-1"},"http":{"request":{"id":"r1","method":"GET"},"response":{"status_code":404}},"labels":{"b":true,"env":"prod","n":1},"message":"login failed",` +
				`"related":{"objects":["auth.user:42","shop.order:7"]},"service":{"name":"shop"},"source":{"ip":"2001:db8::1","port":443},"url":{"path":"/login"},"user":{"id":"42","name":"alice"},"vigil":{"schema":"1"}}`,
			check: func(t *testing.T, ev Event) {
				want := Event{
					ID: "a1", Time: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Kind: "event", Category: "web",
					Action: "authn_login_fail", Outcome: "failure", Severity: -3, SourceIP: netip.MustParseAddr("2001:db8::1"),
					UserID: "42", UserName: "alice", Method: "GET", Path: "/login", Status: 404, RequestID: "r1",
					Service: "shop", Host: "web-1", Message: "login failed", Related: []string{"auth.user:42", "shop.order:7"},
				}
				ev.Canonical = nil
				if !ev.Time.Equal(want.Time) {
					t.Errorf("Time = %v, want %v", ev.Time, want.Time)
				}
				ev.Time = want.Time
				if !eventsEqual(ev, want) {
					t.Errorf("Event =\n%+v\nwant\n%+v", ev, want)
				}
			},
		},
		{
			name: "category as a string, numbers kept as written",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","event.category":"web","x":[-0,1E+2,0.10,123456789012345678901234567890]}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"category":"web","id":"a1",` + testIngested + `,"kind":"event"},"vigil":{"schema":"1"},"x":[-0,1E+2,0.10,123456789012345678901234567890]}`,
			check: func(t *testing.T, ev Event) {
				if ev.Category != "web" {
					t.Errorf("Category = %q", ev.Category)
				}
			},
		},
		{
			name: "IPv4 in IPv6 kept as sent",
			in:   `{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","source":{"ip":"::ffff:10.0.0.1"}}`,
			want: `{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a1",` + testIngested + `,"kind":"event"},"source":{"ip":"::ffff:10.0.0.1"},"vigil":{"schema":"1"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.in), DefaultLimits, testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := string(ev.Canonical)
			if strings.Contains(tt.want, `"id":"*"`) {
				got = strings.Replace(got, ev.ID, "*", 1)
			}
			if got != tt.want {
				t.Errorf("canonical\n got %s\nwant %s", got, tt.want)
			}
			if !json.Valid(ev.Canonical) {
				t.Errorf("canonical is not valid JSON")
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
			checkIdempotent(t, ev)
		})
	}
}

func eventsEqual(a, b Event) bool {
	return a.ID == b.ID && a.Time.Equal(b.Time) && a.Kind == b.Kind && a.Category == b.Category &&
		a.Action == b.Action && a.Outcome == b.Outcome && a.Severity == b.Severity && a.SourceIP == b.SourceIP &&
		a.UserID == b.UserID && a.UserName == b.UserName && a.Method == b.Method && a.Path == b.Path &&
		a.Status == b.Status && a.RequestID == b.RequestID && a.Service == b.Service && a.Host == b.Host &&
		a.Message == b.Message && slices.Equal(a.Related, b.Related)
}

// checkIdempotent parses the canonical form again, with the same now, and
// wants the same bytes and the same indexed fields.
func checkIdempotent(t *testing.T, ev Event) {
	t.Helper()
	again, err := Parse(ev.Canonical, DefaultLimits, testNow)
	if err != nil {
		t.Fatalf("Parse(canonical): %v\ncanonical: %s", err, ev.Canonical)
	}
	if string(again.Canonical) != string(ev.Canonical) {
		t.Fatalf("not idempotent:\n first %s\nsecond %s", ev.Canonical, again.Canonical)
	}
	if !eventsEqual(again, ev) {
		t.Fatalf("indexed fields differ on the canonical form:\n first %+v\nsecond %+v", ev, again)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		lim  Limits
		want string // the error message
		as   any    // pointer to the wanted error type
	}{
		{"empty", ``, Limits{}, `invalid JSON at byte 0: empty input, expected a JSON object`, new(*SyntaxError)},
		{"array", ` [1]`, Limits{}, `invalid JSON at byte 1: an event must be a JSON object, found an array`, new(*SyntaxError)},
		{"string", `"x"`, Limits{}, `invalid JSON at byte 0: an event must be a JSON object, found a string`, new(*SyntaxError)},
		{"word", `nope`, Limits{}, `invalid JSON at byte 0: an event must be a JSON object, found 'n'`, new(*SyntaxError)},
		{"boolean", `true`, Limits{}, `invalid JSON at byte 0: an event must be a JSON object, found a boolean`, new(*SyntaxError)},
		{"trailing garbage", `{"a":1} {}`, Limits{}, `invalid JSON at byte 8: unexpected '{' after the end of the object`, new(*SyntaxError)},
		{"trailing comma", `{"a":1,}`, Limits{}, `invalid JSON at byte 7: unexpected '}', expected a key in double quotes`, new(*SyntaxError)},
		{"missing colon", `{"a" 1}`, Limits{}, `invalid JSON at byte 5: unexpected '1', expected ':' after a key`, new(*SyntaxError)},
		{"unterminated", `{"a":"b`, Limits{}, `invalid JSON at byte 5: unterminated string`, new(*SyntaxError)},
		{"truncated", `{"a":[1,2`, Limits{}, `invalid JSON at byte 9: unexpected end of input, expected ',' or ']'`, new(*SyntaxError)},
		{"bad literal", `{"a":tru}`, Limits{}, `invalid JSON at byte 5: invalid literal, expected true`, new(*SyntaxError)},
		{"leading zero", `{"a":01}`, Limits{}, `invalid JSON at byte 6: unexpected '1', expected ',' or '}'`, new(*SyntaxError)},
		{"bare minus", `{"a":-}`, Limits{}, `invalid JSON at byte 6: invalid number, expected a digit, found '}'`, new(*SyntaxError)},
		{"fraction without digits", `{"a":1.}`, Limits{}, `invalid JSON at byte 7: invalid number, expected a digit after '.', found '}'`, new(*SyntaxError)},
		{"exponent without digits", `{"a":1e}`, Limits{}, `invalid JSON at byte 7: invalid number, expected a digit in the exponent, found '}'`, new(*SyntaxError)},
		{"raw control character", "{\"a\":\"x\ty\"}", Limits{}, `invalid JSON at byte 7: control character byte 0x09 in a string (escape it)`, new(*SyntaxError)},
		{"invalid UTF-8 in a value", "{\"a\":\"x\xffy\"}", Limits{}, `invalid JSON at byte 7: invalid UTF-8 in a string`, new(*SyntaxError)},
		{"invalid UTF-8 in a key", "{\"\xc3\":1}", Limits{}, `invalid JSON at byte 2: invalid UTF-8 in a string`, new(*SyntaxError)},
		{"invalid UTF-8 after an escape", "{\"a\":\"\\n\xed\xa0\x80\"}", Limits{}, `invalid JSON at byte 8: invalid UTF-8 in a string`, new(*SyntaxError)},
		{"bad escape", `{"a":"\x"}`, Limits{}, `invalid JSON at byte 6: invalid escape sequence \x`, new(*SyntaxError)},
		{"bad unicode escape", `{"a":"\u12G4"}`, Limits{}, `invalid JSON at byte 6: invalid \u escape, expected 4 hex digits`, new(*SyntaxError)},
		{"lone high surrogate", `{"a":"\ud800x"}`, Limits{}, `invalid JSON at byte 6: invalid \u escape: high surrogate not followed by a low surrogate`, new(*SyntaxError)},
		{"lone low surrogate", `{"a":"\udc00"}`, Limits{}, `invalid JSON at byte 6: invalid \u escape: lone low surrogate`, new(*SyntaxError)},
		{"byte order mark", "\xef\xbb\xbf{}", Limits{}, `invalid JSON at byte 0: an event must be a JSON object, found byte 0xef`, new(*SyntaxError)},

		{"too big", `{"message":"hello"}`, Limits{MaxBytes: 10}, `event is 19 bytes, limit is 10`, new(*LimitError)},
		{"canonical too big", `{"a":1}`, Limits{MaxBytes: 100}, `event is 185 bytes in canonical form, limit is 100`, new(*LimitError)},
		{"too deep", `{"a":{"b":[{"c":1}]}}`, Limits{MaxDepth: 3}, `nesting is deeper than 3 levels at byte 11`, new(*LimitError)},
		{"too deep after expansion", `{"a.b.c.d":1}`, Limits{MaxDepth: 3}, `nesting is deeper than 3 levels after expanding dotted keys`, new(*LimitError)},

		{"duplicate key", `{"a":1,"a":2}`, Limits{}, `field "a": duplicate key`, new(*FieldError)},
		{"duplicate objects", `{"a":{"x":1},"a":{"y":2}}`, Limits{}, `field "a": duplicate key`, new(*FieldError)},
		{"duplicate dotted key", `{"a.b":1,"a.b":2}`, Limits{}, `field "a.b": duplicate key`, new(*FieldError)},
		{"duplicate nested key", `{"x":[{"k":1,"k":1}]}`, Limits{}, `field "x[0].k": duplicate key`, new(*FieldError)},
		{"duplicate after expansion", `{"a.b":1,"a":{"b":2}}`, Limits{}, `field "a.b": set twice after expanding dotted keys`, new(*FieldError)},
		{"dotted key into a value", `{"a":1,"a.b.c":2}`, Limits{}, `field "a": is a number and cannot also hold "b.c" (from a dotted key)`, new(*FieldError)},
		{"known object is not one", `{"source":"x"}`, Limits{}, `field "source": must be an object, not a string`, new(*FieldError)},
		{"known object with a dotted key", `{"event":5}`, Limits{}, `field "event": must be an object, not a number`, new(*FieldError)},

		{"bad ip", `{"source.ip":"999.1.1.1"}`, Limits{}, `field "source.ip": "999.1.1.1" is not an IP address`, new(*FieldError)},
		{"ip not a string", `{"source":{"ip":7}}`, Limits{}, `field "source.ip": must be a string, not a number`, new(*FieldError)},
		{"ip set twice", `{"source.ip":"1.1.1.1","source":{"ip":"2.2.2.2"}}`, Limits{}, `field "source.ip": set twice after expanding dotted keys`, new(*FieldError)},
		{"string field given an object", `{"user.name":{"first":"a"}}`, Limits{}, `field "user.name": must be a string, not an object`, new(*FieldError)},
		{"string field under a dotted key", `{"user.name.first":"a"}`, Limits{}, `field "user.name": must be a string, not an object`, new(*FieldError)},
		{"null for a known field", `{"user.id":null}`, Limits{}, `field "user.id": must be a string, not null`, new(*FieldError)},
		{"port out of range", `{"source.port":65536}`, Limits{}, `field "source.port": 65536 is not between 0 and 65535`, new(*FieldError)},
		{"port not an integer", `{"source.port":80.5}`, Limits{}, `field "source.port": 80.5 is not an integer`, new(*FieldError)},
		{"status out of range", `{"http.response.status_code":99}`, Limits{}, `field "http.response.status_code": 99 is not between 100 and 599`, new(*FieldError)},
		{"status not numeric", `{"http.response.status_code":"OK"}`, Limits{}, `field "http.response.status_code": "OK" is not an integer`, new(*FieldError)},
		{"status as a boolean", `{"http.response.status_code":true}`, Limits{}, `field "http.response.status_code": must be an integer, not a boolean`, new(*FieldError)},
		{"severity huge", `{"event.severity":123456789012345678901}`, Limits{}, `field "event.severity": "123456789012345678901" is out of range`, new(*FieldError)},
		{"severity exponent", `{"event.severity":1e3}`, Limits{}, `field "event.severity": 1e3 is not an integer`, new(*FieldError)},
		{"negative duration", `{"event.duration":-1}`, Limits{}, `field "event.duration": -1 is negative`, new(*FieldError)},
		{"bad outcome", `{"event.outcome":"ok"}`, Limits{}, `field "event.outcome": "ok" is not one of success, failure, unknown`, new(*FieldError)},
		{"empty id", `{"event.id":""}`, Limits{}, `field "event.id": must be 1 to 128 bytes long, not 0`, new(*FieldError)},
		{"long id", `{"event.id":"` + strings.Repeat("x", 129) + `"}`, Limits{}, `field "event.id": must be 1 to 128 bytes long, not 129`, new(*FieldError)},
		{"id with a space", `{"event.id":"a b"}`, Limits{}, `field "event.id": "a b" has a character other than visible ASCII (no spaces)`, new(*FieldError)},
		{"bad timestamp", `{"@timestamp":"yesterday"}`, Limits{}, `field "@timestamp": "yesterday" is not an RFC 3339 time`, new(*FieldError)},
		{"timestamp out of range", `{"@timestamp":"0000-01-01T00:00:00+01:00"}`, Limits{}, `field "@timestamp": -0001-12-31T23:00:00Z is outside years 0000 to 9999`, new(*FieldError)},
		{"timestamp millis out of range", `{"@timestamp":1e300}`, Limits{}, `field "@timestamp": "1e300" is out of range for milliseconds since 1970`, new(*FieldError)},
		{"timestamp as an object", `{"@timestamp":{}}`, Limits{}, `field "@timestamp": must be an RFC 3339 time string or a number of milliseconds since 1970, not an object`, new(*FieldError)},
		{"category with a number", `{"event.category":["web",1]}`, Limits{}, `field "event.category": element 1 is a number, must be a string`, new(*FieldError)},
		{"related not an array", `{"related.objects":"user:1"}`, Limits{}, `field "related.objects": must be an array of strings, not a string`, new(*FieldError)},
		{"label object", `{"labels":{"a":{"b":1}}}`, Limits{}, `field "labels.a": must be a string, a number or a boolean, not an object`, new(*FieldError)},
		{"label dotted", `{"labels.a.b":1}`, Limits{}, `field "labels.a": must be a string, a number or a boolean, not an object`, new(*FieldError)},
		{"labels not an object", `{"labels":[]}`, Limits{}, `field "labels": must be an object, not an array`, new(*FieldError)},
		{"error deep in an array", `{"x":[1,{"y":[{"a":1,"a.b":2}]}]}`, Limits{}, `field "x[1].y[0].a": is a number and cannot also hold "b" (from a dotted key)`, new(*FieldError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in), tt.lim, testNow)
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			switch target := tt.as.(type) {
			case **SyntaxError:
				if !errors.As(err, target) {
					t.Errorf("error is %T, want *SyntaxError", err)
				}
			case **FieldError:
				if !errors.As(err, target) {
					t.Errorf("error is %T, want *FieldError", err)
				}
			case **LimitError:
				if !errors.As(err, target) {
					t.Errorf("error is %T, want *LimitError", err)
				}
			}
		})
	}
}

// TestParseDeep checks that deep nesting is refused without exhausting the
// stack, at the limit and far beyond it.
func TestParseDeep(t *testing.T) {
	for _, depth := range []int{32, 33, 100000} {
		in := `{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		_, err := Parse([]byte(in), DefaultLimits, testNow)
		var le *LimitError
		if depth <= DefaultLimits.MaxDepth {
			if err != nil {
				t.Errorf("depth %d: %v", depth, err)
			}
		} else if !errors.As(err, &le) || le.What != "depth" {
			t.Errorf("depth %d: error %v, want a depth LimitError", depth, err)
		}
	}
}

func TestParseKeepsInputIntact(t *testing.T) {
	in := []byte(`{"message":"a\nb","http.request.method":"get"}`)
	orig := string(in)
	ev, err := Parse(in, DefaultLimits, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if string(in) != orig {
		t.Errorf("input changed to %s", in)
	}
	// The event owns its bytes: a later Parse must not change them.
	canon := string(ev.Canonical)
	if _, err := Parse([]byte(`{"message":"other","http.request.method":"put"}`), DefaultLimits, testNow); err != nil {
		t.Fatal(err)
	}
	if string(ev.Canonical) != canon || ev.Message != "a\nb" || ev.Method != "GET" {
		t.Errorf("event changed by a later Parse: %s %q %q", ev.Canonical, ev.Message, ev.Method)
	}
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	before := time.Now().UnixMilli()
	seen := map[string]bool{}
	last := ""
	for range 1000 {
		id := NewID()
		if !uuidV7.MatchString(id) {
			t.Fatalf("NewID() = %q, not a UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("NewID() repeated %q", id)
		}
		if id <= last {
			t.Fatalf("NewID() = %q after %q: not in order", id, last)
		}
		seen[id], last = true, id
	}
	id := NewID()
	var ms int64
	for _, c := range strings.ReplaceAll(id[:13], "-", "") {
		ms = ms<<4 | int64(strings.IndexRune("0123456789abcdef", c))
	}
	if after := time.Now().UnixMilli(); ms < before || ms > after {
		t.Errorf("NewID() time %d not in [%d, %d]", ms, before, after)
	}
}

func TestActions(t *testing.T) {
	if len(OWASPActions) != 50 {
		t.Errorf("%d OWASP actions, want 50", len(OWASPActions))
	}
	for _, a := range OWASPActions {
		if !IsOWASPAction(a) || !IsKnownAction(a) {
			t.Errorf("%s not an OWASP action", a)
		}
	}
	for _, a := range VigilActions {
		if IsOWASPAction(a) || !IsKnownAction(a) {
			t.Errorf("%s: IsOWASPAction %v, IsKnownAction %v", a, IsOWASPAction(a), IsKnownAction(a))
		}
	}
	if IsKnownAction("authn_login_fail:joebob1") || IsKnownAction("") {
		t.Error("unknown actions reported known")
	}
	// Unknown actions are kept.
	ev, err := Parse([]byte(`{"event.action":"my_own_thing"}`), DefaultLimits, testNow)
	if err != nil || ev.Action != "my_own_thing" {
		t.Errorf("unknown action: %v, %q", err, ev.Action)
	}
}

func TestSplitArray(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{`[]`, nil, ""},
		{` [ ] `, nil, ""},
		{`[{"a":1}]`, []string{`{"a":1}`}, ""},
		{"[ {\"a\":\"],}\\\"\"} ,\n{\"b\":[1,{}]}\t]", []string{`{"a":"],}\""}`, `{"b":[1,{}]}`}, ""},
		{`[1, "x" ,null]`, []string{`1`, `"x"`, `null`}, ""},
		{`[{"a":1],{"b":2}]`, []string{`{"a":1]`, `{"b":2}`}, ""}, // cut wrong, Parse will say so
		{`{"a":1}`, nil, "invalid JSON at byte 0: expected a JSON array"},
		{``, nil, "invalid JSON at byte 0: expected a JSON array"},
		{`[{"a":1}`, []string{}, "invalid JSON at byte 8: unexpected end of input, expected ',' or ']'"},
		{`[{"a":1},]`, []string{`{"a":1}`}, "invalid JSON at byte 9: expected an array element"},
		{`[,]`, nil, "invalid JSON at byte 1: expected an array element"},
		{`[{"a":"x]`, nil, "invalid JSON at byte 6: unterminated string"},
		{`[1] x`, []string{"1"}, "invalid JSON at byte 4: unexpected data after the end of the array"},
		{`[1}`, []string{"1"}, "invalid JSON at byte 2: unexpected '}', expected ',' or ']'"},
	}
	for _, tt := range tests {
		var got []string
		err := SplitArray([]byte(tt.in), func(elem []byte) error {
			got = append(got, string(elem))
			return nil
		})
		errStr := ""
		if err != nil {
			errStr = err.Error()
		}
		if errStr != tt.wantErr {
			t.Errorf("SplitArray(%q) error %q, want %q", tt.in, errStr, tt.wantErr)
		}
		if tt.want != nil && !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Errorf("SplitArray(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// each's error stops the split.
	stop := errors.New("stop")
	n := 0
	err := SplitArray([]byte(`[1,2,3]`), func([]byte) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("SplitArray with a failing callback: %v after %d calls", err, n)
	}
	// Deep nesting costs no stack.
	deep := "[" + strings.Repeat("[", 1e6) + strings.Repeat("]", 1e6) + "]"
	if err := SplitArray([]byte(deep), func(elem []byte) error { n = len(elem); return nil }); err != nil || n != 2e6 {
		t.Errorf("deep array: %v, element of %d bytes", err, n)
	}
}

func TestParseIPv4(t *testing.T) {
	for _, s := range []string{
		"1.2.3.4", "0.0.0.0", "255.255.255.255", "203.0.113.7", "10.0.0.01", "01.2.3.4",
		"256.1.1.1", "1.2.3", "1.2.3.4.", ".1.2.3", "1..2.3", "1.2.3.4.5", "", "1.2.3.a",
		"1.2.3.4 ", "1234.1.1.1", "::1", "::ffff:1.2.3.4",
	} {
		want, err := netip.ParseAddr(s)
		got, ok := parseIPv4([]byte(s))
		if ok && (err != nil || got != want) {
			t.Errorf("parseIPv4(%q) = %v, netip.ParseAddr gives %v, %v", s, got, want, err)
		}
		if !ok && err == nil && want.Is4() && want.String() == s {
			t.Errorf("parseIPv4(%q) refused a canonical IPv4 address", s)
		}
	}
}

func TestFromDoc(t *testing.T) {
	now := time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)
	e, err := FromDoc(map[string]any{"event": map[string]any{"action": "authn_token_created"}, "user": map[string]any{"name": "admin"}}, now)
	if err != nil || e.Action != "authn_token_created" || e.UserName != "admin" || !e.Time.Equal(now) {
		t.Fatalf("FromDoc: %+v %v", e, err)
	}
	if _, err := FromDoc(map[string]any{"x": make(chan int)}, now); err == nil {
		t.Error("a document JSON cannot encode was accepted")
	}
}
