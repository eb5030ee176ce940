package alert

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Limits of the matcher syntax. Matchers come from configuration files, API
// requests and the command line, so the parser bounds what it accepts.
const (
	MaxMatcherInput   = 4096 // bytes of one matcher string or list
	MaxMatchersInList = 32   // matchers in one list
	MaxLabelNameLen   = 256  // bytes of a label name
	MaxLabelValueLen  = 1024 // bytes of a label value or regular expression
)

// MatchType is the operator of a matcher.
type MatchType int

// Matcher operators, written =, !=, =~ and !~.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

func (t MatchType) String() string {
	switch t {
	case MatchEqual:
		return "="
	case MatchNotEqual:
		return "!="
	case MatchRegexp:
		return "=~"
	case MatchNotRegexp:
		return "!~"
	}
	return "?"
}

// Matcher tests one label: name="value", name!="value", name=~"regexp" or
// name!~"regexp" (Alertmanager's syntax). A label that is absent has the
// value "". Regular expressions are anchored at both ends and use Go's RE2
// syntax, which runs in linear time.
type Matcher struct {
	Name  string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

// NewMatcher builds a matcher, compiling the regular expression of =~ and !~.
func NewMatcher(name string, t MatchType, value string) (*Matcher, error) {
	if name == "" {
		return nil, errors.New("empty label name")
	}
	if len(name) > MaxLabelNameLen {
		return nil, fmt.Errorf("label name longer than %d bytes", MaxLabelNameLen)
	}
	if len(value) > MaxLabelValueLen {
		return nil, fmt.Errorf("value of %s longer than %d bytes", name, MaxLabelValueLen)
	}
	if !utf8.ValidString(name) || !utf8.ValidString(value) {
		return nil, errors.New("not valid UTF-8")
	}
	m := &Matcher{Name: name, Type: t, Value: value}
	switch t {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := regexp.Compile("^(?:" + value + ")$")
		if err != nil {
			return nil, fmt.Errorf("regular expression of %s: %w", name, err)
		}
		m.re = re
	default:
		return nil, fmt.Errorf("unknown operator %d", t)
	}
	return m, nil
}

// Matches reports whether the label value v satisfies the matcher.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	return false
}

// String writes the matcher in the syntax ParseMatcher reads, the value
// always quoted.
func (m *Matcher) String() string {
	name := m.Name
	if !isPlainName(name) {
		name = quote(name)
	}
	return name + m.Type.String() + quote(m.Value)
}

// MarshalJSON writes the matcher as its string form.
func (m *Matcher) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// UnmarshalJSON reads a matcher string.
func (m *Matcher) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a matcher is a string such as severity=\"critical\"")
	}
	p, err := ParseMatcher(s)
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

// Matchers is a conjunction: all must match.
type Matchers []*Matcher

// Matches reports whether labels satisfy every matcher.
func (ms Matchers) Matches(labels map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(labels[m.Name]) {
			return false
		}
	}
	return true
}

// String writes the list as {a="b", c=~"d"}.
func (ms Matchers) String() string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// ParseMatcher reads exactly one matcher, such as severity=~"critical|error".
func ParseMatcher(s string) (*Matcher, error) {
	ms, err := ParseMatchers(s)
	if err != nil {
		return nil, err
	}
	if len(ms) != 1 {
		return nil, fmt.Errorf("%q: want one matcher, found %d", s, len(ms))
	}
	return ms[0], nil
}

// ParseMatchers reads a list of matchers separated by commas, optionally in
// braces: `{severity="critical", source.ip=~"203\\.0\\.113\\..*"}`. Values
// are double-quoted strings (escapes \\, \" and \n) or unquoted words that
// end at a comma, a brace or the end; a regular expression containing a
// comma or a brace must be quoted. Label names are letters, digits, '_', '.',
// ':' and '-' not starting with a digit, or any quoted string. The empty
// list ("" or "{}") is allowed.
func ParseMatchers(s string) (Matchers, error) {
	if len(s) > MaxMatcherInput {
		return nil, fmt.Errorf("matchers longer than %d bytes", MaxMatcherInput)
	}
	if !utf8.ValidString(s) {
		return nil, errors.New("matchers are not valid UTF-8")
	}
	p := &matcherParser{s: s}
	p.skipSpace()
	braced := p.peek() == '{'
	if braced {
		p.i++
	}
	var ms Matchers
	for {
		p.skipSpace()
		if p.eof() {
			if braced {
				return nil, p.errorf("missing closing '}'")
			}
			break
		}
		if braced && p.peek() == '}' {
			p.i++
			p.skipSpace()
			if !p.eof() {
				return nil, p.errorf("unexpected text after '}'")
			}
			break
		}
		if len(ms) == MaxMatchersInList {
			return nil, fmt.Errorf("more than %d matchers", MaxMatchersInList)
		}
		m, err := p.matcher()
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
		p.skipSpace()
		switch {
		case p.eof():
		case p.peek() == ',':
			p.i++
		case braced && p.peek() == '}':
		default:
			return nil, p.errorf("expected ',' after matcher %s", m)
		}
	}
	return ms, nil
}

type matcherParser struct {
	s string
	i int
}

func (p *matcherParser) eof() bool { return p.i >= len(p.s) }

func (p *matcherParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

func (p *matcherParser) skipSpace() {
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *matcherParser) errorf(format string, args ...any) error {
	return fmt.Errorf("matcher %q at byte %d: %s", p.s, p.i+1, fmt.Sprintf(format, args...))
}

func (p *matcherParser) matcher() (*Matcher, error) {
	var name string
	if p.peek() == '"' {
		n, err := p.quoted()
		if err != nil {
			return nil, err
		}
		name = n
	} else {
		start := p.i
		for !p.eof() && isNameByte(p.s[p.i], p.i == start) {
			p.i++
		}
		name = p.s[start:p.i]
		if name == "" {
			return nil, p.errorf("expected a label name")
		}
	}
	p.skipSpace()
	var t MatchType
	switch {
	case strings.HasPrefix(p.s[p.i:], "=~"):
		t, p.i = MatchRegexp, p.i+2
	case strings.HasPrefix(p.s[p.i:], "!~"):
		t, p.i = MatchNotRegexp, p.i+2
	case strings.HasPrefix(p.s[p.i:], "!="):
		t, p.i = MatchNotEqual, p.i+2
	case strings.HasPrefix(p.s[p.i:], "="):
		t, p.i = MatchEqual, p.i+1
	default:
		return nil, p.errorf("expected one of =, !=, =~, !~ after label %q", name)
	}
	p.skipSpace()
	var value string
	if p.peek() == '"' {
		v, err := p.quoted()
		if err != nil {
			return nil, err
		}
		value = v
	} else {
		start := p.i
		for !p.eof() && !strings.ContainsRune(",{}\"", rune(p.s[p.i])) {
			p.i++
		}
		value = strings.TrimRight(p.s[start:p.i], " \t\r\n")
	}
	m, err := NewMatcher(name, t, value)
	if err != nil {
		return nil, p.errorf("%v", err)
	}
	return m, nil
}

// quoted reads a double-quoted string at p.i.
func (p *matcherParser) quoted() (string, error) {
	start := p.i
	p.i++ // opening quote
	var b strings.Builder
	for {
		if p.eof() {
			p.i = start
			return "", p.errorf("unterminated quoted string")
		}
		c := p.s[p.i]
		switch c {
		case '"':
			p.i++
			return b.String(), nil
		case '\\':
			p.i++
			if p.eof() {
				p.i = start
				return "", p.errorf("unterminated quoted string")
			}
			switch e := p.s[p.i]; e {
			case '\\', '"':
				b.WriteByte(e)
			case 'n':
				b.WriteByte('\n')
			default:
				return "", p.errorf(`unknown escape \%c (use \\, \" or \n)`, e)
			}
			p.i++
		default:
			b.WriteByte(c)
			p.i++
		}
	}
}

func isNameByte(c byte, first bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		return true
	case c >= '0' && c <= '9', c == '.', c == ':', c == '-':
		return !first
	}
	return false
}

func isPlainName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

func quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// sortedLabelString writes labels as {a="b", c="d"} sorted by name.
func sortedLabelString(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		if isPlainName(n) {
			b.WriteString(n)
		} else {
			b.WriteString(quote(n))
		}
		b.WriteByte('=')
		b.WriteString(quote(labels[n]))
	}
	b.WriteByte('}')
	return b.String()
}
