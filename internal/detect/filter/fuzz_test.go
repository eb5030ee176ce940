package filter

import (
	"testing"

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
