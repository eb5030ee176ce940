// Package filter is Vigil's one filter language, used by detection rules and
// by search:
//
//	event.action = authn_login_fail and source.ip in 10.0.0.0/8 and not url.path startswith "/health"
//
// A filter is parsed once (Parse) and matched against many events (Match,
// MatchDoc). Fields are named by their ECS dotted names; indexed fields are
// read from event.Event directly and every other field from the event's
// canonical JSON, decoded at most once per event (see Doc).
//
// The grammar, the operators and their exact semantics are documented in
// docs/rules.md. In short:
//
//	expr  = expr "or" expr | expr "and" expr | "not" expr | "(" expr ")" | cond
//	cond  = field op value
//	      | field ["not"] "in" ["~"] (value | list)
//	      | field ["not"] ("contains" | "startswith" | "endswith") ["~"] (value | list)
//	      | field ["not"] "matches" string
//	      | field ["not"] "exists"
//	op    = "=" | "!=" | "<" | "<=" | ">" | ">="
//	field = name | "urldecode(" name ")"
//	list  = "[" value {"," value} "]"
//	value = "double-quoted, with \\ escapes" | 'single-quoted, raw' | bare-word
//
// A "~" after an operator word makes it case-insensitive ("contains~").
package filter

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/vigilsec/vigil/internal/event"
)

// Limits bound what Parse accepts.
type Limits struct {
	MaxLength int // bytes of filter text
	MaxDepth  int // nesting of parentheses and "not"
	MaxNodes  int // conditions and operators
	MaxList   int // values in one list
	MaxRegex  int // bytes of one regular expression
}

// DefaultLimits are the limits of Parse.
var DefaultLimits = Limits{MaxLength: 64 << 10, MaxDepth: 32, MaxNodes: 4096, MaxList: 4096, MaxRegex: 4096}

// maxRegexProg bounds the compiled size of one regular expression
// (instructions of its program), on top of MaxRegex.
const maxRegexProg = 20000

// Filter is a parsed filter. It is safe for concurrent use.
type Filter struct {
	root node
	text string
}

// Parse parses a filter with DefaultLimits. Errors are *SyntaxError.
func Parse(s string) (*Filter, error) { return ParseLimits(s, DefaultLimits) }

// ParseLimits parses a filter within lim (a zero limit means the default).
func ParseLimits(s string, lim Limits) (*Filter, error) {
	lim = lim.withDefaults()
	if len(s) > lim.MaxLength {
		return nil, &SyntaxError{Column: 1, Msg: fmt.Sprintf("filter is %d bytes, limit is %d", len(s), lim.MaxLength)}
	}
	p := &parser{src: s, lim: lim}
	root, err := p.parse()
	if err != nil {
		return nil, err
	}
	f := &Filter{root: root}
	var b strings.Builder
	root.write(&b, 0)
	f.text = b.String()
	return f, nil
}

func (lim Limits) withDefaults() Limits {
	d := DefaultLimits
	if lim.MaxLength <= 0 {
		lim.MaxLength = d.MaxLength
	}
	if lim.MaxDepth <= 0 {
		lim.MaxDepth = d.MaxDepth
	}
	if lim.MaxNodes <= 0 {
		lim.MaxNodes = d.MaxNodes
	}
	if lim.MaxList <= 0 {
		lim.MaxList = d.MaxList
	}
	if lim.MaxRegex <= 0 {
		lim.MaxRegex = d.MaxRegex
	}
	return lim
}

// String returns the filter in canonical form: parsing it again gives the
// same filter and the same string.
func (f *Filter) String() string { return f.text }

var docPool = sync.Pool{New: func() any { return new(Doc) }}

// Match reports whether e matches the filter.
func (f *Filter) Match(e *event.Event) bool {
	d := docPool.Get().(*Doc)
	d.Reset(e)
	ok := f.root.match(d)
	d.Reset(nil)
	docPool.Put(d)
	return ok
}

// MatchDoc reports whether the event of d matches the filter. Several filters
// matched against one Doc share its decoded fields.
func (f *Filter) MatchDoc(d *Doc) bool { return f.root.match(d) }

// Fields returns the dotted names of the fields the filter reads, sorted,
// without duplicates.
func (f *Filter) Fields() []string {
	seen := map[string]bool{}
	var out []string
	f.root.walk(func(c *cond) {
		if !seen[c.field.name] {
			seen[c.field.name] = true
			out = append(out, c.field.name)
		}
	})
	slices.Sort(out)
	return out
}

// Requires reports the values field must have, case-sensitively and as
// text, for the filter to match: for "event.action = a and x > 1" and field
// "event.action" it returns [a], true. ok is false when the filter can match
// whatever the field holds (or when the values cannot be told as plain
// text). Engines use it to index rules by event.action.
func (f *Filter) Requires(field string) (values []string, ok bool) {
	return f.root.requires(field)
}

// SyntaxError is a filter that does not parse, with the 1-based column (in
// characters) where the problem was found.
type SyntaxError struct {
	Column int
	Msg    string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("column %d: %s", e.Column, e.Msg) }

// node is one node of the syntax tree.
type node interface {
	match(d *Doc) bool
	// write prints the node; prec is the precedence of the context: 0 top,
	// 1 inside "or", 2 inside "and", 3 after "not".
	write(b *strings.Builder, prec int)
	walk(fn func(*cond))
	requires(field string) ([]string, bool)
}

type andNode struct{ kids []node }
type orNode struct{ kids []node }
type notNode struct{ kid node }

func (n *andNode) match(d *Doc) bool {
	for _, k := range n.kids {
		if !k.match(d) {
			return false
		}
	}
	return true
}

func (n *orNode) match(d *Doc) bool {
	for _, k := range n.kids {
		if k.match(d) {
			return true
		}
	}
	return false
}

func (n *notNode) match(d *Doc) bool { return !n.kid.match(d) }

func (n *andNode) walk(fn func(*cond)) {
	for _, k := range n.kids {
		k.walk(fn)
	}
}

func (n *orNode) walk(fn func(*cond)) {
	for _, k := range n.kids {
		k.walk(fn)
	}
}

func (n *notNode) walk(fn func(*cond)) { n.kid.walk(fn) }

func (n *andNode) requires(field string) ([]string, bool) {
	var best []string
	found := false
	for _, k := range n.kids {
		if v, ok := k.requires(field); ok && (!found || len(v) < len(best)) {
			best, found = v, true
		}
	}
	return best, found
}

func (n *orNode) requires(field string) ([]string, bool) {
	var all []string
	for _, k := range n.kids {
		v, ok := k.requires(field)
		if !ok {
			return nil, false
		}
		all = append(all, v...)
	}
	return dedupe(all), true
}

func (n *notNode) requires(string) ([]string, bool) { return nil, false }

// op is the operator of a condition.
type op uint8

const (
	opEq op = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opIn
	opContains
	opStartsWith
	opEndsWith
	opMatches
	opExists
)

var opNames = [...]string{
	opEq: "=", opNe: "!=", opLt: "<", opLe: "<=", opGt: ">", opGe: ">=",
	opIn: "in", opContains: "contains", opStartsWith: "startswith", opEndsWith: "endswith",
	opMatches: "matches", opExists: "exists",
}

// wordOps are the operators written as words, with whether they take "~".
var wordOps = map[string]op{
	"in": opIn, "contains": opContains, "startswith": opStartsWith, "endswith": opEndsWith,
	"matches": opMatches, "exists": opExists,
}

// literal is one value written in a filter, with the forms it can take.
type literal struct {
	text     string
	quoted   bool
	lower    string // text lower-cased, for "~" operators
	lowerB   []byte
	num      float64
	isNum    bool // bare and a decimal number
	addr     netip.Addr
	isAddr   bool
	prefix   netip.Prefix
	isPrefix bool
}

func newLiteral(text string, quoted bool) literal {
	l := literal{text: text, quoted: quoted, lower: strings.ToLower(text)}
	l.lowerB = []byte(l.lower)
	if !quoted {
		l.num, l.isNum = parseNumber(text)
	}
	if strings.IndexByte(text, '/') > 0 {
		if p, err := netip.ParsePrefix(text); err == nil {
			l.prefix, l.isPrefix = p.Masked(), true
		}
	} else if a, err := netip.ParseAddr(text); err == nil && a.Zone() == "" {
		l.addr, l.isAddr = a, true
	}
	return l
}

// cond is one comparison of a field with literals.
type cond struct {
	field Field
	op    op
	fold  bool // "~": case-insensitive
	lits  []literal
	list  bool // written as a list
	re    *regexp.Regexp
	pre   *prefilter      // for re, when one can be derived
	set   map[string]bool // text forms of lits for large "in" lists (lower-cased when fold)
	// setAll is true when every literal is in set and has no number or
	// address form, so that a miss in set is final.
	setAll bool
}

// setMin is the list size from which "in" looks values up in a map.
const setMin = 8

func (c *cond) prepare() {
	if c.op != opIn || len(c.lits) < setMin {
		return
	}
	c.set = make(map[string]bool, len(c.lits))
	c.setAll = true
	for i := range c.lits {
		l := &c.lits[i]
		if c.fold {
			c.set[l.lower] = true
		} else {
			c.set[l.text] = true
		}
		if l.isNum || l.isAddr || l.isPrefix {
			c.setAll = false
		}
	}
}

func (c *cond) walk(fn func(*cond)) { fn(c) }

func (c *cond) requires(field string) ([]string, bool) {
	if c.field.name != field || c.field.fn != fnNone || c.fold {
		return nil, false
	}
	if c.op != opEq && c.op != opIn {
		return nil, false
	}
	out := make([]string, 0, len(c.lits))
	for _, l := range c.lits {
		if l.isNum || l.isAddr || l.isPrefix {
			return nil, false
		}
		out = append(out, l.text)
	}
	return dedupe(out), true
}

func (c *cond) match(d *Doc) bool {
	vs := c.field.values(d)
	switch c.op {
	case opExists:
		return len(vs) > 0
	case opNe:
		for i := range vs {
			if c.equal(d, &vs[i], &c.lits[0]) {
				return false
			}
		}
		return true
	}
	for i := range vs {
		if c.matchValue(d, &vs[i]) {
			return true
		}
	}
	return false
}

func (c *cond) matchValue(d *Doc, v *value) bool {
	switch c.op {
	case opEq:
		return c.equal(d, v, &c.lits[0])
	case opIn:
		return c.in(d, v)
	case opLt, opLe, opGt, opGe:
		r, ok := compare(v, &c.lits[0])
		if !ok {
			return false
		}
		switch c.op {
		case opLt:
			return r < 0
		case opLe:
			return r <= 0
		case opGt:
			return r > 0
		}
		return r >= 0
	case opMatches:
		if c.pre != nil {
			if low, ascii := d.lowerASCII(v.text()); !c.pre.pass(low, ascii) {
				return false
			}
		}
		return c.re.MatchString(v.text())
	case opContains, opStartsWith, opEndsWith:
		s := v.text()
		if c.fold {
			if low, ascii := d.lowerASCII(s); ascii {
				return c.textOpBytes(low)
			}
			s = strings.ToLower(s)
		}
		for i := range c.lits {
			needle := c.lits[i].text
			if c.fold {
				needle = c.lits[i].lower
			}
			var ok bool
			switch c.op {
			case opContains:
				ok = strings.Contains(s, needle)
			case opStartsWith:
				ok = strings.HasPrefix(s, needle)
			default:
				ok = strings.HasSuffix(s, needle)
			}
			if ok {
				return true
			}
		}
	}
	return false
}

// textOpBytes runs contains~, startswith~ or endswith~ on a lower-cased
// ASCII value.
func (c *cond) textOpBytes(low []byte) bool {
	for i := range c.lits {
		needle := c.lits[i].lowerB
		var ok bool
		switch c.op {
		case opContains:
			ok = bytes.Contains(low, needle)
		case opStartsWith:
			ok = bytes.HasPrefix(low, needle)
		default:
			ok = bytes.HasSuffix(low, needle)
		}
		if ok {
			return true
		}
	}
	return false
}

// equal compares one value with one literal: as numbers when both are
// numbers, as addresses when both are addresses, else as text.
func (c *cond) equal(d *Doc, v *value, l *literal) bool {
	if l.isNum {
		if n, ok := v.number(); ok {
			return n == l.num
		}
	}
	if l.isAddr && (v.kind == kAddr || v.kind == kString) {
		if a, ok := v.address(); ok {
			return a.Unmap() == l.addr.Unmap()
		}
	}
	if c.fold {
		if low, ascii := d.lowerASCII(v.text()); ascii {
			return string(low) == l.lower
		}
		return strings.ToLower(v.text()) == l.lower
	}
	return v.text() == l.text
}

func (c *cond) in(d *Doc, v *value) bool {
	if c.set != nil {
		hit := false
		if c.fold {
			if low, ascii := d.lowerASCII(v.text()); ascii {
				hit = c.set[string(low)]
			} else {
				hit = c.set[strings.ToLower(v.text())]
			}
		} else {
			hit = c.set[v.text()]
		}
		if hit {
			return true
		}
		if c.setAll {
			return false
		}
	}
	for i := range c.lits {
		l := &c.lits[i]
		if l.isPrefix {
			if a, ok := v.address(); ok && l.prefix.Contains(a.Unmap()) {
				return true
			}
			continue
		}
		if c.set != nil && !l.isNum && !l.isAddr {
			continue // looked up in set already
		}
		if c.equal(d, v, l) {
			return true
		}
	}
	return false
}

// compare orders a value against a literal: numerically when both are
// numbers, else by text.
func compare(v *value, l *literal) (int, bool) {
	if l.isNum {
		if n, ok := v.number(); ok {
			switch {
			case n < l.num:
				return -1, true
			case n > l.num:
				return 1, true
			}
			return 0, true
		}
	}
	return strings.Compare(v.text(), l.text), true
}

// bytesContains is bytes.Contains (named for the prefilter).
func bytesContains(b, sub []byte) bool { return bytes.Contains(b, sub) }

func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
