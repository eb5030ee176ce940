package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
)

// FuzzParse checks that Parse never panics, and that the canonical form of
// what it accepts parses again to the same canonical form and matches the
// same events.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`event.action = authn_login_fail and source.ip in 10.0.0.0/8 and not url.path startswith "/health"`,
		`a in~ [x, 'y''z', "\u00e9\x00"] or not (b > 1.5e3)`,
		`urldecode(url.query) matches '(?i)union\s+select'`,
		`a not contains~ [b, c] and d exists`,
		`((a = 1) or (b != "2"))`,
		`a = "\U0001F600"`,
	} {
		f.Add(s)
	}
	e, err := event.Parse([]byte(loginFail), event.Limits{}, testNow)
	if err != nil {
		f.Fatal(err)
	}
	lim := Limits{MaxLength: 4096, MaxDepth: 16, MaxNodes: 256, MaxList: 64, MaxRegex: 256}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := ParseLimits(s, lim)
		if err != nil {
			if _, ok := err.(*SyntaxError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		text := flt.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("canonical form %q of %q refused: %v", text, s, err)
		}
		if again.String() != text {
			t.Fatalf("not stable: %q -> %q -> %q", s, text, again.String())
		}
		if flt.Match(&e) != again.Match(&e) {
			t.Fatalf("%q and its canonical form %q disagree", s, text)
		}
	})
}

// FuzzDoc checks that reading fields from any canonical bytes never panics.
func FuzzDoc(f *testing.F) {
	f.Add([]byte(loginFail))
	f.Add([]byte(`{"a":{"b":[1,{"c":"\ud83d\ude00"}]},"d":null}`))
	f.Add([]byte(`{"a":"\u`))
	flt, err := Parse(`a exists or a.b > 1 or a.b.c contains x or url.original exists`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e := &event.Event{Canonical: data, Path: "/p"}
		flt.Match(e)
	})
}

// FuzzDocValues checks the flattening of a Doc against encoding/json: for
// valid JSON, every dotted path holds the values the standard decoder reads
// there, in order (null and "" absent, numbers as written).
func FuzzDocValues(f *testing.F) {
	f.Add([]byte(loginFail))
	f.Add([]byte(`{"a":{"b":[1,{"c":"\ud83d\ude00"}]},"d":null,"e":["x","y"],"k\"ey":true}`))
	f.Add([]byte(`{"url":{"query":"q=1&r=%41"},"url.query":"flat","user_agent":{"original":"sqlmap/1.0 \"x\""}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		want, ok := flattenJSON(data)
		if !ok {
			return
		}
		d := NewDoc(&event.Event{Canonical: data})
		for path, vals := range want {
			var got []string
			for _, v := range d.values(path, hashString(path), fastNone) {
				got = append(got, v.text())
			}
			if !slices.Equal(got, vals) {
				t.Fatalf("%s: got %q, want %q (input %s)", path, got, vals, data)
			}
		}
	})
}

// surrogateEscape matches \u escapes of UTF-16 surrogates, which the
// standard decoder replaces when unpaired.
var surrogateEscape = regexp.MustCompile(`(?i)\\ud[89a-f]`)

// flattenJSON reads a JSON object into dotted paths and their values, with
// the standard decoder. ok is false for input the comparison does not cover:
// not an object, invalid, invalid UTF-8, surrogate escapes, beyond the Doc's
// limits.
func flattenJSON(data []byte) (map[string][]string, bool) {
	if !json.Valid(data) || !utf8.Valid(data) || surrogateEscape.Match(data) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	out := map[string][]string{}
	entries := 0
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		if depth > maxDocDepth-2 {
			return errors.New("too deep")
		}
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					p := k.(string)
					if path != "" {
						p = path + "." + p
					}
					if err := walk(p, depth+1); err != nil {
						return err
					}
				}
			case '[':
				for dec.More() {
					if err := walk(path, depth+1); err != nil {
						return err
					}
				}
			}
			_, err := dec.Token() // the closing delimiter
			return err
		case nil:
		case string:
			if v != "" {
				out[path] = append(out[path], v)
				entries++
			}
		case json.Number:
			out[path] = append(out[path], v.String())
			entries++
		case bool:
			out[path] = append(out[path], map[bool]string{true: "true", false: "false"}[v])
			entries++
		}
		if entries >= maxDocEntries {
			return errors.New("too many entries")
		}
		return nil
	}
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		return nil, false
	}
	if err := walk("", 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, false
	}
	return out, true
}
