package redact

import (
	"cmp"
	"encoding/json"
	"slices"
)

// span is a part of the input to replace: [start, end). An empty span
// inserts the replacement (an empty password is hidden too, as in
// django-security-logger).
type span struct {
	start, end int
	number     bool // a card number that may stand as a JSON number
}

// replace appends to dst the input b with every span replaced by the
// replacement. Overlapping and touching spans are merged, so that a value
// found by two patterns is replaced once.
func (r *Redactor) replace(dst, b []byte, sp []span) []byte {
	slices.SortFunc(sp, func(x, y span) int {
		if c := cmp.Compare(x.start, y.start); c != 0 {
			return c
		}
		return cmp.Compare(y.end, x.end)
	})
	merged := sp[:1]
	for _, s := range sp[1:] {
		last := &merged[len(merged)-1]
		if s.start <= last.end {
			if s.end > last.end {
				last.end = s.end
			}
			last.number = false
			continue
		}
		merged = append(merged, s)
	}
	quote := r.numbersToQuote(b, merged)
	if dst == nil {
		dst = make([]byte, 0, len(b)+len(merged)*(len(r.repl)+2))
	}
	pos := 0
	for i, s := range merged {
		dst = append(dst, b[pos:s.start]...)
		if quote && merged[i].number {
			dst = append(dst, '"')
			dst = append(dst, r.repl...)
			dst = append(dst, '"')
		} else {
			dst = append(dst, r.repl...)
		}
		pos = s.end
	}
	return append(dst, b[pos:]...)
}

// numbersToQuote reports whether some card numbers stand as JSON numbers in
// b (a valid JSON document), and leaves number set only on those: they are
// replaced by a quoted replacement so that the document stays valid JSON.
func (r *Redactor) numbersToQuote(b []byte, sp []span) bool {
	numbers := false
	for _, s := range sp {
		numbers = numbers || s.number
	}
	if !numbers || !isContainer(b) || !json.Valid(b) {
		return false
	}
	// Walk the document once, tracking whether we are inside a string.
	in, esc, j := false, false, 0
	for i, c := range b {
		for j < len(sp) && sp[j].start == i {
			if in {
				sp[j].number = false
			}
			j++
		}
		if j == len(sp) {
			break
		}
		switch {
		case esc:
			esc = false
		case in && c == '\\':
			esc = true
		case c == '"':
			in = !in
		}
	}
	return true
}

// isContainer reports whether b starts like a JSON object or array (a lone
// number is left unquoted: it is more likely text than a JSON document).
func isContainer(b []byte) bool {
	for _, c := range b {
		if !isSpace(c) {
			return c == '{' || c == '['
		}
	}
	return false
}
