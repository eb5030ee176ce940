package filter

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Precedence levels for printing.
const (
	precOr   = 1
	precAnd  = 2
	precNot  = 3
	precCond = 4
)

func (n *orNode) write(b *strings.Builder, prec int) {
	writeList(b, n.kids, " or ", precOr, prec)
}

func (n *andNode) write(b *strings.Builder, prec int) {
	writeList(b, n.kids, " and ", precAnd, prec)
}

func writeList(b *strings.Builder, kids []node, sep string, own, prec int) {
	if prec > own {
		b.WriteByte('(')
	}
	for i, k := range kids {
		if i > 0 {
			b.WriteString(sep)
		}
		k.write(b, own+1)
	}
	if prec > own {
		b.WriteByte(')')
	}
}

func (n *notNode) write(b *strings.Builder, prec int) {
	if prec > precNot {
		b.WriteByte('(')
	}
	b.WriteString("not ")
	n.kid.write(b, precNot)
	if prec > precNot {
		b.WriteByte(')')
	}
}

func (c *cond) write(b *strings.Builder, _ int) {
	b.WriteString(c.field.String())
	b.WriteByte(' ')
	b.WriteString(opNames[c.op])
	if c.fold {
		b.WriteByte('~')
	}
	if c.op == opExists {
		return
	}
	b.WriteByte(' ')
	if !c.list {
		writeLiteral(b, &c.lits[0])
		return
	}
	b.WriteByte('[')
	for i := range c.lits {
		if i > 0 {
			b.WriteString(", ")
		}
		writeLiteral(b, &c.lits[i])
	}
	b.WriteByte(']')
}

func writeLiteral(b *strings.Builder, l *literal) {
	if !l.quoted {
		b.WriteString(l.text)
		return
	}
	b.WriteString(Quote(l.text))
}

// Quote returns s as a double-quoted filter string that reads back as s.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(hex2(s[i]))
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && !strconv.IsPrint(r):
			b.WriteString(`\x`)
			b.WriteString(hex2(byte(r)))
		case !strconv.IsPrint(r):
			q := strconv.FormatInt(int64(r), 16)
			if r > 0xFFFF {
				b.WriteString(`\U`)
				b.WriteString(strings.Repeat("0", 8-len(q)))
			} else {
				b.WriteString(`\u`)
				b.WriteString(strings.Repeat("0", 4-len(q)))
			}
			b.WriteString(q)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

func hex2(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&15]})
}
