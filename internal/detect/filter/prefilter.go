package filter

import (
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// prefilter is a cheap test run before a regular expression: the expression
// can match a value only if the value, lower-cased, contains one of any. It
// is derived from the expression's syntax (the literals every match must
// contain) and only ever lets more values through than the expression, never
// fewer. Values with non-ASCII bytes skip it (Unicode case folding maps some
// non-ASCII letters onto ASCII ones).
type prefilter struct {
	any [][]byte
}

// maxPrefilter bounds the strings of a prefilter; an expression that needs
// more gets none.
const maxPrefilter = 32

// clause is a set of strings one of which a match contains.
type clause []string

func newPrefilter(re *syntax.Regexp) *prefilter {
	cs := required(re, 0)
	if len(cs) == 0 {
		return nil
	}
	best := bestClause(cs)
	p := &prefilter{}
	for _, s := range best {
		p.any = append(p.any, []byte(s))
	}
	return p
}

// pass reports whether a value may match: low is the value lower-cased
// (ASCII), ascii whether it is all ASCII.
func (p *prefilter) pass(low []byte, ascii bool) bool {
	if !ascii {
		return true
	}
	for _, s := range p.any {
		if bytesContains(low, s) {
			return true
		}
	}
	return false
}

// required returns clauses that every match of re satisfies (all of them).
func required(re *syntax.Regexp, depth int) []clause {
	if depth > 64 {
		return nil
	}
	switch re.Op {
	case syntax.OpLiteral:
		s := strings.ToLower(string(re.Rune))
		if !isASCII(s) {
			return nil
		}
		return []clause{{s}}
	case syntax.OpCharClass:
		set := map[string]bool{}
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			if hi-lo > 8 || hi >= utf8.RuneSelf {
				return nil
			}
			for r := lo; r <= hi; r++ {
				set[string(unicode.ToLower(r))] = true
			}
		}
		if len(set) == 0 || len(set) > 4 {
			return nil
		}
		c := clause{}
		for s := range set {
			c = append(c, s)
		}
		sortStrings(c)
		return []clause{c}
	case syntax.OpCapture, syntax.OpPlus:
		return required(re.Sub[0], depth+1)
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0], depth+1)
		}
		return nil
	case syntax.OpConcat:
		var all []clause
		for _, s := range re.Sub {
			all = append(all, required(s, depth+1)...)
		}
		if len(all) == 0 {
			return nil
		}
		return []clause{bestClause(all)}
	case syntax.OpAlternate:
		var union clause
		for _, s := range re.Sub {
			cs := required(s, depth+1)
			if len(cs) == 0 {
				return nil
			}
			union = append(union, bestClause(cs)...)
		}
		union = clause(dedupe(union))
		if len(union) > maxPrefilter {
			return nil
		}
		return []clause{union}
	}
	return nil
}

// bestClause picks the clause least likely to be satisfied by ordinary text.
func bestClause(cs []clause) clause {
	best, bestScore := cs[0], -1.0
	for _, c := range cs {
		if s := score(c); s > bestScore {
			best, bestScore = c, s
		}
	}
	return best
}

// score rates a clause: its weakest string, where longer strings are rarer,
// and single punctuation characters common in URLs and text (= & / . , - _ :
// space) are weaker than other punctuation (' " < > ; ( \ ...).
func score(c clause) float64 {
	low := 1e9
	for _, s := range c {
		w := float64(len(s))
		if len(s) == 1 {
			switch ch := s[0]; {
			case strings.IndexByte("=&/.,-_: +?", ch) >= 0:
				w = 0.5
			case ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9':
				w = 1
			default:
				w = 3
			}
		}
		low = min(low, w)
	}
	return low - float64(len(c))/100
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
