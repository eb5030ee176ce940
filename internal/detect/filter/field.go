package filter

import (
	"fmt"
	"strings"
)

// maxFieldName bounds a field name.
const maxFieldName = 256

// transform is a function applied to a field's values before comparing.
type transform uint8

const (
	fnNone transform = iota
	fnURLDecode
)

var transforms = map[string]transform{"urldecode": fnURLDecode}

func (t transform) String() string {
	switch t {
	case fnURLDecode:
		return "urldecode"
	}
	return ""
}

// Field is a compiled reference to a field by ECS dotted name, optionally
// through a transform: "source.ip", "labels.role", "urldecode(url.query)".
type Field struct {
	name string
	hash uint32 // hashString(name), for Doc's index
	fast fastField
	fn   transform
}

// ParseField compiles a field reference: a dotted name, or a transform
// applied to one ("urldecode(url.query)").
func ParseField(s string) (Field, error) {
	name, fn := s, fnNone
	if open := strings.IndexByte(s, '('); open >= 0 && strings.HasSuffix(s, ")") {
		t, ok := transforms[s[:open]]
		if !ok {
			return Field{}, fmt.Errorf("unknown function %q (known: urldecode)", s[:open])
		}
		name, fn = s[open+1:len(s)-1], t
	}
	if err := checkFieldName(name); err != nil {
		return Field{}, err
	}
	return newField(name, fn), nil
}

func newField(name string, fn transform) Field {
	return Field{name: name, hash: hashString(name), fast: fastFields[name], fn: fn}
}

// checkFieldName accepts letters, digits and _ . @ - (a name must not start
// with '-' or '.').
func checkFieldName(name string) error {
	if name == "" {
		return fmt.Errorf("empty field name")
	}
	if len(name) > maxFieldName {
		return fmt.Errorf("field name longer than %d bytes", maxFieldName)
	}
	for i := 0; i < len(name); i++ {
		if !isFieldByte(name[i]) || i == 0 && (name[i] == '-' || name[i] == '.') {
			return fmt.Errorf("field name %q: character %q not allowed", name, name[i])
		}
	}
	return nil
}

func isFieldByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '.' || c == '@' || c == '-'
}

// Name returns the dotted field name, without the transform.
func (f Field) Name() string { return f.name }

// String returns the field as written in a filter.
func (f Field) String() string {
	if f.fn == fnNone {
		return f.name
	}
	return f.fn.String() + "(" + f.name + ")"
}

// IsZero reports whether f is the zero Field (no field).
func (f Field) IsZero() bool { return f.name == "" }

// values returns the values of f in d, transformed; valid until the next
// lookup in d.
func (f *Field) values(d *Doc) []value {
	vs := d.values(f.name, f.hash, f.fast)
	if f.fn == fnURLDecode {
		for i := range vs {
			if s := vs[i].text(); strings.ContainsAny(s, "%+") {
				vs[i] = value{kind: kString, s: urlDecode(s), textOK: true}
			}
		}
	}
	return vs
}

// First returns the text of the first value of f in d.
func (f Field) First(d *Doc) (string, bool) {
	vs := f.values(d)
	if len(vs) == 0 {
		return "", false
	}
	return vs[0].text(), true
}

// AppendFirst appends the text of the first value of f in d to dst, without
// allocating for indexed fields, and reports whether there was one.
func (f Field) AppendFirst(dst []byte, d *Doc) ([]byte, bool) {
	vs := f.values(d)
	if len(vs) == 0 {
		return dst, false
	}
	if vs[0].kind == kAddr {
		return vs[0].addr.AppendTo(dst), true
	}
	return append(dst, vs[0].text()...), true
}

// Number returns the first value of f in d that is a number (a JSON number
// or a string holding one).
func (f Field) Number(d *Doc) (float64, bool) {
	vs := f.values(d)
	for i := range vs {
		if n, ok := vs[i].number(); ok {
			return n, true
		}
	}
	return 0, false
}

// urlDecode undoes percent-encoding and '+' for spaces, repeatedly (at most
// three rounds) so that double-encoded input ("%252e") is decoded too.
// Malformed escapes are kept as they are.
func urlDecode(s string) string {
	for range 3 {
		t := urlDecodeOnce(s)
		if t == s {
			break
		}
		s = t
	}
	return s
}

func urlDecodeOnce(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
