package filter

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokKind is the kind of a token.
type tokKind uint8

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tLBrack
	tRBrack
	tComma
	tOp     // = != < <= > >=
	tString // quoted
	tWord   // bare
)

type token struct {
	kind tokKind
	text string // tOp, tWord: as written; tString: unescaped
	pos  int    // byte offset
}

func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "end of filter"
	case tString:
		return strconv.Quote(t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

type parser struct {
	src   string
	lim   Limits
	pos   int
	tok   token
	ahead bool
	nodes int
}

func (p *parser) errAt(pos int, format string, args ...any) error {
	col := utf8.RuneCountInString(p.src[:min(pos, len(p.src))]) + 1
	return &SyntaxError{Column: col, Msg: fmt.Sprintf(format, args...)}
}

// isDelim reports whether c ends a bare word.
func isDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '(', ')', '[', ']', ',', '"', '\'', '=', '!', '<', '>':
		return true
	}
	return false
}

// next returns the next token.
func (p *parser) next() (token, error) {
	if p.ahead {
		p.ahead = false
		return p.tok, nil
	}
	t, err := p.scan()
	p.tok = t
	return t, err
}

// peek returns the next token without consuming it.
func (p *parser) peek() (token, error) {
	if p.ahead {
		return p.tok, nil
	}
	t, err := p.scan()
	if err != nil {
		return t, err
	}
	p.tok, p.ahead = t, true
	return t, nil
}

func (p *parser) scan() (token, error) {
	s := p.src
	for p.pos < len(s) && (s[p.pos] == ' ' || s[p.pos] == '\t' || s[p.pos] == '\n' || s[p.pos] == '\r') {
		p.pos++
	}
	start := p.pos
	if p.pos >= len(s) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := s[p.pos]
	one := func(k tokKind) (token, error) {
		p.pos++
		return token{kind: k, text: s[start:p.pos], pos: start}, nil
	}
	switch c {
	case '(':
		return one(tLParen)
	case ')':
		return one(tRParen)
	case '[':
		return one(tLBrack)
	case ']':
		return one(tRBrack)
	case ',':
		return one(tComma)
	case '=':
		return one(tOp)
	case '!', '<', '>':
		p.pos++
		if p.pos < len(s) && s[p.pos] == '=' {
			p.pos++
		} else if c == '!' {
			return token{}, p.errAt(start, "unexpected '!' (use != or not)")
		}
		return token{kind: tOp, text: s[start:p.pos], pos: start}, nil
	case '"':
		return p.doubleQuoted()
	case '\'':
		return p.singleQuoted()
	}
	for p.pos < len(s) && !isDelim(s[p.pos]) {
		p.pos++
	}
	return token{kind: tWord, text: s[start:p.pos], pos: start}, nil
}

// singleQuoted reads a raw string: no escapes, ” stands for one quote.
func (p *parser) singleQuoted() (token, error) {
	s, start := p.src, p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(s) {
		c := s[p.pos]
		if c == '\'' {
			if p.pos+1 < len(s) && s[p.pos+1] == '\'' {
				b.WriteByte('\'')
				p.pos += 2
				continue
			}
			p.pos++
			return token{kind: tString, text: b.String(), pos: start}, nil
		}
		b.WriteByte(c)
		p.pos++
	}
	return token{}, p.errAt(start, "string not terminated")
}

// doubleQuoted reads a string with escapes: \" \\ \n \r \t \xHH \uHHHH
// \UHHHHHHHH.
func (p *parser) doubleQuoted() (token, error) {
	s, start := p.src, p.pos
	p.pos++
	var b strings.Builder
	for p.pos < len(s) {
		c := s[p.pos]
		switch c {
		case '"':
			p.pos++
			return token{kind: tString, text: b.String(), pos: start}, nil
		case '\\':
		default:
			b.WriteByte(c)
			p.pos++
			continue
		}
		esc := p.pos
		if p.pos+1 >= len(s) {
			break
		}
		e := s[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\':
			b.WriteByte(e)
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if p.pos+n > len(s) {
				return token{}, p.errAt(esc, "escape \\%c needs %d hex digits", e, n)
			}
			v, err := strconv.ParseUint(s[p.pos:p.pos+n], 16, 32)
			if err != nil {
				return token{}, p.errAt(esc, "escape \\%c needs %d hex digits", e, n)
			}
			p.pos += n
			if e == 'x' {
				b.WriteByte(byte(v))
			} else if r := rune(v); utf8.ValidRune(r) {
				b.WriteRune(r)
			} else {
				return token{}, p.errAt(esc, "escape %s is not a valid character", s[esc:p.pos])
			}
		default:
			return token{}, p.errAt(esc, "unknown escape \\%c (use \\\" \\\\ \\n \\r \\t \\xHH \\uHHHH, or a 'raw string')", e)
		}
	}
	return token{}, p.errAt(start, "string not terminated")
}

func isKeyword(t token, word string) bool {
	return t.kind == tWord && strings.EqualFold(t.text, word)
}

func (p *parser) parse() (node, error) {
	t, err := p.peek()
	if err != nil {
		return nil, err
	}
	if t.kind == tEOF {
		return nil, p.errAt(t.pos, "empty filter")
	}
	n, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	t, err = p.next()
	if err != nil {
		return nil, err
	}
	if t.kind != tEOF {
		return nil, p.errAt(t.pos, "unexpected %s (expected and, or, or the end)", t.describe())
	}
	return n, nil
}

func (p *parser) count() error {
	p.nodes++
	if p.nodes > p.lim.MaxNodes {
		return p.errAt(p.pos, "more than %d conditions and operators", p.lim.MaxNodes)
	}
	return nil
}

func (p *parser) parseOr(depth int) (node, error) {
	return p.parseChain(depth, "or", p.parseAnd, func(kids []node) node { return &orNode{kids: kids} })
}

func (p *parser) parseAnd(depth int) (node, error) {
	return p.parseChain(depth, "and", p.parseUnary, func(kids []node) node { return &andNode{kids: kids} })
}

// parseChain parses operands joined by keyword ("a or b or c"), each with
// sub; more than one becomes join(operands).
func (p *parser) parseChain(depth int, keyword string, sub func(int) (node, error), join func([]node) node) (node, error) {
	first, err := sub(depth)
	if err != nil {
		return nil, err
	}
	kids := []node{first}
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if !isKeyword(t, keyword) {
			break
		}
		p.next()
		if err := p.count(); err != nil {
			return nil, err
		}
		n, err := sub(depth)
		if err != nil {
			return nil, err
		}
		kids = append(kids, n)
	}
	if len(kids) == 1 {
		return first, nil
	}
	return join(kids), nil
}

func (p *parser) parseUnary(depth int) (node, error) {
	t, err := p.peek()
	if err != nil {
		return nil, err
	}
	if depth >= p.lim.MaxDepth {
		return nil, p.errAt(t.pos, "nested deeper than %d levels", p.lim.MaxDepth)
	}
	switch {
	case t.kind == tLParen:
		p.next()
		n, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		c, err := p.next()
		if err != nil {
			return nil, err
		}
		if c.kind != tRParen {
			return nil, p.errAt(c.pos, "expected ')' to close the '(' at column %d, found %s",
				utf8.RuneCountInString(p.src[:t.pos])+1, c.describe())
		}
		return n, nil
	case isKeyword(t, "not"):
		p.next()
		if err := p.count(); err != nil {
			return nil, err
		}
		n, err := p.parseUnary(depth + 1)
		if err != nil {
			return nil, err
		}
		return &notNode{kid: n}, nil
	}
	return p.parseCond()
}

func reserved(w string) bool {
	return strings.EqualFold(w, "and") || strings.EqualFold(w, "or") || strings.EqualFold(w, "not")
}

func (p *parser) parseField() (Field, error) {
	t, err := p.next()
	if err != nil {
		return Field{}, err
	}
	if t.kind != tWord || reserved(t.text) {
		return Field{}, p.errAt(t.pos, "expected a field name, found %s", t.describe())
	}
	name, fn := t.text, fnNone
	if n, err := p.peek(); err != nil {
		return Field{}, err
	} else if n.kind == tLParen {
		f, ok := transforms[strings.ToLower(t.text)]
		if !ok {
			return Field{}, p.errAt(t.pos, "unknown function %q (known: urldecode)", t.text)
		}
		p.next()
		inner, err := p.next()
		if err != nil {
			return Field{}, err
		}
		if inner.kind != tWord || reserved(inner.text) {
			return Field{}, p.errAt(inner.pos, "expected a field name in %s(), found %s", t.text, inner.describe())
		}
		if err := checkFieldName(inner.text); err != nil {
			return Field{}, p.errAt(inner.pos, "%v", err)
		}
		c, err := p.next()
		if err != nil {
			return Field{}, err
		}
		if c.kind != tRParen {
			return Field{}, p.errAt(c.pos, "expected ')' after the field of %s(, found %s", t.text, c.describe())
		}
		name, fn = inner.text, f
	} else if err := checkFieldName(name); err != nil {
		return Field{}, p.errAt(t.pos, "%v", err)
	}
	return newField(name, fn), nil
}

func (p *parser) parseCond() (node, error) {
	if err := p.count(); err != nil {
		return nil, err
	}
	field, err := p.parseField()
	if err != nil {
		return nil, err
	}
	c := &cond{field: field}
	t, err := p.next()
	if err != nil {
		return nil, err
	}
	if t.kind == tOp {
		c.op = map[string]op{"=": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe}[t.text]
		v, err := p.parseValue(field, t)
		if err != nil {
			return nil, err
		}
		c.lits = []literal{v}
		return c, nil
	}
	negate := false
	if isKeyword(t, "not") {
		negate = true
		if t, err = p.next(); err != nil {
			return nil, err
		}
	}
	word := strings.ToLower(t.text)
	word, fold := strings.CutSuffix(word, "~")
	o, ok := wordOps[word]
	if t.kind != tWord || !ok {
		return nil, p.errAt(t.pos, "expected an operator after %s (= != < <= > >= in contains startswith endswith matches exists), found %s", field, t.describe())
	}
	if fold && (o == opExists || o == opMatches) {
		return nil, p.errAt(t.pos, "%s takes no ~ (for matches, use (?i) in the expression)", word)
	}
	c.op, c.fold = o, fold
	switch o {
	case opExists:
	case opMatches:
		v, err := p.parseValue(field, t)
		if err != nil {
			return nil, err
		}
		if len(v.text) > p.lim.MaxRegex {
			return nil, p.errAt(p.tok.pos, "regular expression is %d bytes, limit is %d", len(v.text), p.lim.MaxRegex)
		}
		re, pre, err := compileRegex(v.text)
		if err != nil {
			return nil, p.errAt(p.tok.pos, "%v", err)
		}
		c.lits, c.re, c.pre = []literal{v}, re, pre
	default:
		n, err := p.peek()
		if err != nil {
			return nil, err
		}
		if n.kind == tLBrack {
			c.list = true
			if c.lits, err = p.parseList(field, t); err != nil {
				return nil, err
			}
		} else {
			v, err := p.parseValue(field, t)
			if err != nil {
				return nil, err
			}
			c.lits = []literal{v}
		}
	}
	c.prepare()
	if negate {
		return &notNode{kid: c}, nil
	}
	return c, nil
}

func (p *parser) parseValue(field Field, after token) (literal, error) {
	t, err := p.next()
	if err != nil {
		return literal{}, err
	}
	switch t.kind {
	case tString:
		return newLiteral(t.text, true), nil
	case tWord:
		return newLiteral(t.text, false), nil
	case tLBrack:
		return literal{}, p.errAt(t.pos, "a list needs the in operator: %s in [a, b]", field)
	}
	return literal{}, p.errAt(t.pos, "expected a value after %s %s, found %s", field, after.text, t.describe())
}

func (p *parser) parseList(field Field, after token) ([]literal, error) {
	open, _ := p.next() // '['
	var lits []literal
	for {
		t, err := p.peek()
		if err != nil {
			return nil, err
		}
		if t.kind == tRBrack {
			p.next()
			break
		}
		if len(lits) >= p.lim.MaxList {
			return nil, p.errAt(t.pos, "list longer than %d values", p.lim.MaxList)
		}
		v, err := p.parseValue(field, after)
		if err != nil {
			return nil, err
		}
		lits = append(lits, v)
		t, err = p.next()
		if err != nil {
			return nil, err
		}
		if t.kind == tRBrack {
			break
		}
		if t.kind != tComma {
			return nil, p.errAt(t.pos, "expected ',' or ']' in the list opened at column %d, found %s",
				utf8.RuneCountInString(p.src[:open.pos])+1, t.describe())
		}
	}
	if len(lits) == 0 {
		return nil, p.errAt(open.pos, "empty list")
	}
	return lits, nil
}

// compileRegex compiles an RE2 expression, bounds the size of its program
// and derives its prefilter.
func compileRegex(expr string) (*regexp.Regexp, *prefilter, error) {
	sre, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, nil, fmt.Errorf("bad regular expression: %v", err)
	}
	simple := sre.Simplify()
	prog, err := syntax.Compile(simple)
	if err != nil {
		return nil, nil, fmt.Errorf("bad regular expression: %v", err)
	}
	if len(prog.Inst) > maxRegexProg {
		return nil, nil, fmt.Errorf("regular expression too large (%d instructions, limit %d)", len(prog.Inst), maxRegexProg)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, nil, fmt.Errorf("bad regular expression: %v", err)
	}
	return re, newPrefilter(simple), nil
}
