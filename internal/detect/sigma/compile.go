package sigma

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/detect/filter"
)

// selection compiles one named selection to filter text.
func selection(n *yaml.Node) (string, error) {
	switch n.Kind {
	case yaml.MappingNode:
		return mapping(n)
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return "", errAt(n, "empty selection")
		}
		if n.Content[0].Kind == yaml.ScalarNode {
			return keywords(n.Content)
		}
		var parts []string
		for _, c := range n.Content {
			if c.Kind != yaml.MappingNode {
				return "", errAt(c, "a selection list holds either maps or keywords, not both")
			}
			t, err := mapping(c)
			if err != nil {
				return "", err
			}
			parts = append(parts, t)
		}
		return join(parts, "or"), nil
	case yaml.ScalarNode:
		return keywords([]*yaml.Node{n})
	}
	return "", errAt(n, "a selection must be a map, a list of maps or a list of keywords")
}

// keywords compiles a keyword list: any of the words appears in the message.
func keywords(ns []*yaml.Node) (string, error) {
	if len(ns) > maxValues {
		return "", errAt(ns[0], "more than %d keywords", maxValues)
	}
	var vals []value
	for _, k := range ns {
		if k.Kind != yaml.ScalarNode {
			return "", errAt(k, "a selection list holds either maps or keywords, not both")
		}
		vals = append(vals, value{node: k})
	}
	return fieldText("message", vals, mods{contains: true}, ns[0])
}

// mapping compiles a map of field conditions, all of which must hold.
func mapping(n *yaml.Node) (string, error) {
	if len(n.Content) == 0 {
		return "", errAt(n, "empty selection")
	}
	var parts []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, modNames, _ := strings.Cut(k.Value, "|")
		var m mods
		if modNames != "" {
			if err := m.parse(strings.Split(modNames, "|")); err != nil {
				return "", errAt(k, "%s: %v", k.Value, err)
			}
		}
		field := "message"
		if name != "" {
			var err error
			if field, err = MapField(name); err != nil {
				return "", errAt(k, "%v", err)
			}
		} else {
			m.contains = true // "|contains: x" with no field: keywords
		}
		var vals []value
		switch v.Kind {
		case yaml.ScalarNode:
			vals = []value{{node: v}}
		case yaml.SequenceNode:
			if len(v.Content) == 0 {
				return "", errAt(v, "%s: empty list of values", k.Value)
			}
			if len(v.Content) > maxValues {
				return "", errAt(v, "%s: more than %d values", k.Value, maxValues)
			}
			for _, c := range v.Content {
				if c.Kind != yaml.ScalarNode {
					return "", errAt(c, "%s: values must be strings, numbers, booleans or null", k.Value)
				}
				vals = append(vals, value{node: c})
			}
		default:
			return "", errAt(v, "%s: values must be strings, numbers, booleans or null", k.Value)
		}
		t, err := fieldText(field, vals, m, k)
		if err != nil {
			return "", err
		}
		parts = append(parts, t)
	}
	return join(parts, "and"), nil
}

// mods are the modifiers of one field.
type mods struct {
	contains, startswith, endswith bool
	all, re, cidr, exists, cased   bool
	reFlags                        string
	cmp                            string // gt, gte, lt, lte
}

// unsupported modifiers known to Sigma, for a clearer error.
var unsupported = map[string]bool{
	"base64": true, "base64offset": true, "utf16le": true, "utf16be": true, "utf16": true,
	"wide": true, "windash": true, "expand": true, "fieldref": true,
}

func (m *mods) parse(names []string) error {
	for _, name := range names {
		switch name {
		case "contains":
			m.contains = true
		case "startswith":
			m.startswith = true
		case "endswith":
			m.endswith = true
		case "all":
			m.all = true
		case "re":
			m.re = true
		case "i", "m", "s":
			if !m.re {
				return fmt.Errorf("modifier %q needs re before it", name)
			}
			m.reFlags += name
		case "cidr":
			m.cidr = true
		case "exists":
			m.exists = true
		case "cased":
			m.cased = true
		case "gt", "gte", "lt", "lte":
			m.cmp = name
		default:
			if unsupported[name] {
				return fmt.Errorf("Sigma modifier %q is not supported by Vigil", name)
			}
			return fmt.Errorf("unknown Sigma modifier %q", name)
		}
	}
	n := 0
	for _, b := range []bool{m.contains, m.startswith, m.endswith, m.re, m.cidr, m.exists, m.cmp != ""} {
		if b {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("modifiers %q cannot be combined", strings.Join(names, "|"))
	}
	return nil
}

type value struct{ node *yaml.Node }

func (v value) isNull() bool { return v.node.Tag == "!!null" }

// fieldText compiles the values of one field into filter text: any value
// matches (every value with the all modifier).
func fieldText(field string, vals []value, m mods, at *yaml.Node) (string, error) {
	f := field
	switch {
	case m.exists:
		if len(vals) != 1 || (vals[0].node.Value != "true" && vals[0].node.Value != "false") {
			return "", errAt(at, "exists takes true or false")
		}
		if vals[0].node.Value == "true" {
			return f + " exists", nil
		}
		return "not " + f + " exists", nil
	case m.cmp != "":
		op := map[string]string{"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[m.cmp]
		var parts []string
		for _, v := range vals {
			if !isDecimal(v.node.Value) {
				return "", errAt(v.node, "%s takes a number, not %q", m.cmp, v.node.Value)
			}
			parts = append(parts, f+" "+op+" "+v.node.Value)
		}
		return joinValues(parts, m.all), nil
	case m.cidr:
		var lits []string
		for _, v := range vals {
			p, err := netip.ParsePrefix(v.node.Value)
			if err != nil {
				return "", errAt(v.node, "cidr: %q is not a network (use 10.0.0.0/8)", v.node.Value)
			}
			lits = append(lits, p.String())
		}
		if m.all {
			return "", errAt(at, "cidr cannot be combined with all")
		}
		return f + " in [" + strings.Join(lits, ", ") + "]", nil
	case m.re:
		var parts []string
		for _, v := range vals {
			expr := v.node.Value
			if m.reFlags != "" {
				expr = "(?" + m.reFlags + ")" + expr
			}
			if _, err := regexp.Compile(expr); err != nil {
				return "", errAt(v.node, "re: %v", err)
			}
			parts = append(parts, f+" matches "+filter.Quote(expr))
		}
		return joinValues(parts, m.all), nil
	}

	fold := "~"
	if m.cased {
		fold = ""
	}
	// Group plain values by the operator they compile to, so that a list
	// becomes one condition per operator: a in~ [x, y] or a contains~ [z].
	type group struct {
		op   string
		lits []string
	}
	var groups []*group
	var other []string // conditions that are not a plain operator
	add := func(op, lit string) {
		if !m.all {
			for _, g := range groups {
				if g.op == op {
					g.lits = append(g.lits, lit)
					return
				}
			}
		}
		groups = append(groups, &group{op: op, lits: []string{lit}})
	}
	for _, v := range vals {
		if v.isNull() {
			other = append(other, "not "+f+" exists")
			continue
		}
		if v.node.Tag == "!!int" || v.node.Tag == "!!float" || v.node.Tag == "!!bool" {
			if !m.contains && !m.startswith && !m.endswith {
				add("in", v.node.Value)
				continue
			}
		}
		pat := parseWildcards(v.node.Value)
		if m.contains || m.endswith {
			pat = pat.prependStar()
		}
		if m.contains || m.startswith {
			pat = pat.appendStar()
		}
		op, lit, ok := pat.simple()
		switch {
		case ok && op == "exists":
			other = append(other, f+" exists")
		case ok && lit == "":
			// Vigil treats an empty string as absent.
			other = append(other, "not "+f+" exists")
		case ok:
			add(op+fold, filter.Quote(lit))
		default:
			flags := "(?s"
			if !m.cased {
				flags += "i"
			}
			other = append(other, f+" matches "+filter.Quote(flags+")^"+pat.regexp()+"$"))
		}
	}
	var parts []string
	for _, g := range groups {
		if len(g.lits) == 1 && g.op != "in"+fold && g.op != "in" {
			parts = append(parts, f+" "+g.op+" "+g.lits[0])
		} else {
			parts = append(parts, f+" "+g.op+" ["+strings.Join(g.lits, ", ")+"]")
		}
	}
	parts = append(parts, other...)
	return joinValues(parts, m.all), nil
}

// isDecimal reports whether s is a plain decimal number (the filter
// language reads it as a number).
func isDecimal(s string) bool {
	if s == "" || strings.Trim(s, "+-.eE0123456789") != "" {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

func joinValues(parts []string, all bool) string {
	if all {
		return join(parts, "and")
	}
	return join(parts, "or")
}

// join combines filter texts with and/or, parenthesizing each.
func join(parts []string, op string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ") "+op+" (") + ")"
}

// pattern is a Sigma value: literal text with * (any run) and ? (any
// character) wildcards.
type pattern []piece

type piece struct {
	lit  string
	wild byte // '*' or '?'; 0 for literal text
}

// parseWildcards reads a Sigma string: * and ? are wildcards, \* \? and \\
// escape them; any other backslash is a plain backslash.
func parseWildcards(s string) pattern {
	var p pattern
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			p = append(p, piece{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '*' || s[i+1] == '?' || s[i+1] == '\\'):
			lit.WriteByte(s[i+1])
			i++
		case c == '*' || c == '?':
			flush()
			if c == '*' && len(p) > 0 && p[len(p)-1].wild == '*' {
				continue
			}
			p = append(p, piece{wild: c})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return p
}

func (p pattern) prependStar() pattern {
	if len(p) > 0 && p[0].wild == '*' {
		return p
	}
	return append(pattern{{wild: '*'}}, p...)
}

func (p pattern) appendStar() pattern {
	if len(p) > 0 && p[len(p)-1].wild == '*' {
		return p
	}
	return append(p, piece{wild: '*'})
}

// simple reports whether p is one of: text (=), *text* (contains), text*
// (startswith), *text (endswith), * (exists).
func (p pattern) simple() (op, lit string, ok bool) {
	switch {
	case len(p) == 0:
		return "in", "", true
	case len(p) == 1 && p[0].wild == 0:
		return "in", p[0].lit, true
	case len(p) == 1 && p[0].wild == '*':
		return "exists", "", true
	case len(p) == 2 && p[0].wild == 0 && p[1].wild == '*':
		return "startswith", p[0].lit, true
	case len(p) == 2 && p[0].wild == '*' && p[1].wild == 0:
		return "endswith", p[1].lit, true
	case len(p) == 3 && p[0].wild == '*' && p[1].wild == 0 && p[2].wild == '*':
		return "contains", p[1].lit, true
	}
	return "", "", false
}

func (p pattern) regexp() string {
	var b strings.Builder
	for _, pc := range p {
		switch pc.wild {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(pc.lit))
		}
	}
	return b.String()
}

// condParser parses a Sigma condition into filter text.
type condParser struct {
	src   string // the condition without its aggregation
	full  string // the whole condition, for messages
	pos   int
	sels  map[string]string
	names []string
	node  *yaml.Node
	depth int
}

func (p *condParser) errf(format string, args ...any) error {
	return errAt(p.node, "condition %q: %s", abbreviate(p.full), fmt.Sprintf(format, args...))
}

func (p *condParser) parse() (string, *Aggregation, error) {
	if len(p.src) > maxCondition {
		p.full = p.src[:200]
		return "", nil, p.errf("longer than %d bytes", maxCondition)
	}
	p.full = p.src
	expr, aggText, hasAgg := strings.Cut(p.src, "|")
	p.src = expr
	text, err := p.or()
	if err != nil {
		return "", nil, err
	}
	if t := p.word(); t != "" {
		return "", nil, p.errf("unexpected %q", t)
	}
	if !hasAgg {
		return text, nil, nil
	}
	if strings.TrimSpace(aggText) == "" {
		return "", nil, p.errf("empty aggregation after |")
	}
	agg, err := parseAggregation(aggText)
	if err != nil {
		return "", nil, p.errf("%v", err)
	}
	return text, agg, nil
}

// word returns the next token: ( ) or a run of other non-space characters.
func (p *condParser) word() string {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n') {
		p.pos++
	}
	if p.pos >= len(p.src) {
		return ""
	}
	start := p.pos
	if c := p.src[p.pos]; c == '(' || c == ')' {
		p.pos++
		return p.src[start:p.pos]
	}
	for p.pos < len(p.src) && !strings.ContainsRune(" \t\n()", rune(p.src[p.pos])) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *condParser) peek() string {
	save := p.pos
	w := p.word()
	p.pos = save
	return w
}

func (p *condParser) or() (string, error) {
	first, err := p.and()
	if err != nil {
		return "", err
	}
	parts := []string{first}
	for strings.EqualFold(p.peek(), "or") {
		p.word()
		n, err := p.and()
		if err != nil {
			return "", err
		}
		parts = append(parts, n)
	}
	return join(parts, "or"), nil
}

func (p *condParser) and() (string, error) {
	first, err := p.not()
	if err != nil {
		return "", err
	}
	parts := []string{first}
	for strings.EqualFold(p.peek(), "and") {
		p.word()
		n, err := p.not()
		if err != nil {
			return "", err
		}
		parts = append(parts, n)
	}
	return join(parts, "and"), nil
}

func (p *condParser) not() (string, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxCondDepth {
		return "", p.errf("nested deeper than %d levels", maxCondDepth)
	}
	w := p.word()
	switch {
	case w == "":
		return "", p.errf("unexpected end")
	case strings.EqualFold(w, "not"):
		n, err := p.not()
		if err != nil {
			return "", err
		}
		return "not (" + n + ")", nil
	case w == "(":
		n, err := p.or()
		if err != nil {
			return "", err
		}
		if c := p.word(); c != ")" {
			return "", p.errf("expected ), found %q", c)
		}
		return n, nil
	case w == "1" || strings.EqualFold(w, "all") || strings.EqualFold(w, "any"):
		if !strings.EqualFold(p.word(), "of") {
			return "", p.errf("expected \"of\" after %q", w)
		}
		target := p.word()
		var matched []string
		for _, name := range p.names {
			ok := target == "them"
			if !ok {
				ok, _ = path.Match(target, name)
			}
			if ok {
				matched = append(matched, "("+p.sels[name]+")")
			}
		}
		if len(matched) == 0 {
			return "", p.errf("%s of %s: no selection matches", w, target)
		}
		op := " or "
		if strings.EqualFold(w, "all") {
			op = " and "
		}
		return strings.Join(matched, op), nil
	case w == ")":
		return "", p.errf("unexpected )")
	}
	s, ok := p.sels[w]
	if !ok {
		return "", p.errf("unknown selection %q", w)
	}
	return "(" + s + ")", nil
}

// parseAggregation reads "count([field]) [by field] op N".
func parseAggregation(s string) (*Aggregation, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "count(")
	if !ok {
		fn, _, _ := strings.Cut(s, "(")
		return nil, fmt.Errorf("aggregation %q is not supported (only count() [by field] > N)", strings.TrimSpace(fn))
	}
	inner, rest, ok := strings.Cut(rest, ")")
	if !ok {
		return nil, fmt.Errorf("count( is not closed")
	}
	agg := &Aggregation{}
	if inner = strings.TrimSpace(inner); inner != "" {
		f, err := MapField(inner)
		if err != nil {
			return nil, err
		}
		agg.Distinct = f
	}
	fields := strings.Fields(rest)
	if len(fields) >= 2 && fields[0] == "by" {
		for _, g := range strings.Split(fields[1], ",") {
			f, err := MapField(strings.TrimSpace(g))
			if err != nil {
				return nil, err
			}
			agg.GroupBy = append(agg.GroupBy, f)
		}
		fields = fields[2:]
	}
	if len(fields) != 2 {
		return nil, fmt.Errorf("expected count() [by field] > N")
	}
	switch fields[0] {
	case ">", ">=":
		agg.Op = fields[0]
	case "<", "<=", "=", "==":
		return nil, fmt.Errorf("count() %s N is not supported (a rule fires when something happens, not when it does not); use > or >=", fields[0])
	default:
		return nil, fmt.Errorf("unknown comparison %q", fields[0])
	}
	n, err := strconv.ParseFloat(fields[1], 64)
	if err != nil || n < 0 || n > 1e9 {
		return nil, fmt.Errorf("%q is not a count", fields[1])
	}
	agg.Value = n
	return agg, nil
}
