package redact

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name           string
		in             string
		maxChars, maxS int
		want           string
	}{
		{"short kept", "hello", 10, 5, "hello"},
		{"exact kept", "hello", 5, 5, "hello"},
		{"plain cut", "hello world", 5, 5, "hello"},
		{"runes counted, not bytes", "žluťoučký kůň", 13, 5, "žluťoučký kůň"},
		{"cut on rune boundary", "žluťoučký kůň", 4, 5, "žluť"},
		{"emoji not split", "a😀b😀c", 2, 5, "a😀"},
		{"invalid UTF-8 counts a byte as a character", "ab\xffcd", 3, 5, "ab\xff"},
		{"no limit", long, 0, 5, long},
		{"json strings cut and compacted",
			`{"a": "` + long + `", "b": [1, 2.50, "` + long + `"], "c": true}`, 100, 10,
			`{"a":"xxxxxxxxxx…","b":[1,2.50,"xxxxxxxxxx…"],"c":true}`},
		{"json keys kept",
			`{"` + long + `": "short"}`, 100, 10,
			(`{"` + long + `":"short"}`)[:100]},
		{"json string with escapes",
			`{"a":"` + strings.Repeat(`\u00e9\"`, 20) + `"}`, 30, 5,
			`{"a":"é\"é\"é…"}`},
		{"json still too long is cut",
			`[` + strings.Repeat(`"abcdefghijkl",`, 20) + `1]`, 50, 3,
			firstRunes(`[`+strings.Repeat(`"abc…",`, 20)+`1]`, 50)},
		{"json shortening off", `{"a":"` + long + `"}`, 20, 0, (`{"a":"` + long)[:20]},
		{"not json is cut", `{"a":"` + long, 20, 5, (`{"a":"` + long)[:20]},
		{"json with control characters and U+2028",
			`{"a":"` + strings.Repeat(`\n\u2028\u0001`, 10) + `"}`, 30, 3,
			`{"a":"\n\u2028\u0001…"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(Truncate([]byte(tt.in), tt.maxChars, tt.maxS))
			if got != tt.want {
				t.Errorf("Truncate(%q, %d, %d)\n got %q\nwant %q", tt.in, tt.maxChars, tt.maxS, got, tt.want)
			}
			if tt.maxChars > 0 && utf8.RuneCountInString(got) > tt.maxChars {
				t.Errorf("result has %d characters, more than %d", utf8.RuneCountInString(got), tt.maxChars)
			}
		})
	}
}

func TestTruncateJSONStaysValid(t *testing.T) {
	in := `{"message": "` + strings.Repeat("ü", 2000) + `", "n": 12345678901234567890, "nested": {"s": "` + strings.Repeat("a", 400) + `"}}`
	out := Truncate([]byte(in), DefaultMaxBody, DefaultMaxString)
	if !json.Valid(out) {
		t.Fatalf("not valid JSON: %s", out)
	}
	var m struct {
		Message string
		N       json.Number
		Nested  struct{ S string }
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if n := utf8.RuneCountInString(m.Message); n != DefaultMaxString+1 || !strings.HasSuffix(m.Message, "…") {
		t.Errorf("message has %d characters: %q", n, m.Message)
	}
	if m.N != "12345678901234567890" {
		t.Errorf("number changed to %s", m.N)
	}
}

func TestTruncateReturnsInputWhenShort(t *testing.T) {
	in := []byte(`{"a":"b"}`)
	if out := Truncate(in, 100, 10); &out[0] != &in[0] {
		t.Error("a new slice was returned")
	}
	cut := Truncate([]byte("abcdef"), 3, 0)
	_ = append(cut, 'X')
	if string(cut) != "abc" || cap(cut) != 3 {
		t.Errorf("cut = %q, cap %d", cut, cap(cut))
	}
}

func TestPrepareOrder(t *testing.T) {
	// Hiding comes before truncating: a password cut in half is not left
	// for a reader.
	in := `password=` + strings.Repeat("s", 50)
	if got := string(Default().Prepare([]byte(in+"\x00"), 15, 5)); got != "password="+F[:6] {
		t.Errorf("Prepare = %q", got)
	}
}

func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
