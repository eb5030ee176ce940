package redact

import (
	"bytes"
	"iter"
	"slices"
	"strings"
)

// The scanners below implement the default body patterns. Each looks for a
// cheap anchor byte with bytes.IndexByte (vectorised), checks the
// surroundings by hand and appends a span per value to hide. They never
// allocate unless they find something, and each does work linear in the
// input.

// isSpace is RE2's \s.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
}

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether b starts with word (lower-case ASCII),
// ignoring ASCII case.
func hasPrefixFold(b []byte, word string) bool {
	if len(b) < len(word) {
		return false
	}
	for i := 0; i < len(word); i++ {
		if lower(b[i]) != word[i] {
			return false
		}
	}
	return true
}

// indexFold returns the first index of word (lower-case ASCII) in b,
// ignoring ASCII case, or -1.
func indexFold(b []byte, word string) int {
	if len(word) == 0 {
		return 0
	}
	lo := word[0]
	up := lo
	if lo >= 'a' && lo <= 'z' {
		up = lo - ('a' - 'A')
	}
	for i := 0; i+len(word) <= len(b); {
		j := indexEither(b[i:len(b)-len(word)+1], lo, up)
		if j < 0 {
			return -1
		}
		i += j
		if hasPrefixFold(b[i+1:], word[1:]) {
			return i
		}
		i++
	}
	return -1
}

func indexEither(b []byte, x, y byte) int {
	i := bytes.IndexByte(b, x)
	if x == y {
		return i
	}
	if i >= 0 {
		b = b[:i] // y only matters before the first x
	}
	if j := bytes.IndexByte(b, y); j >= 0 {
		return j
	}
	return i
}

// wordSet is a set of lower-case ASCII words to look for, ignoring case.
// Each word is looked for at its rarest letter (by English letter
// frequency), which few bytes of a typical body match.
type wordSet struct {
	words  []string
	anchor [256][]wordAt // words by the byte of their anchor letter, both cases
}

type wordAt struct {
	word string
	off  int // index of the anchor letter in word
}

// rarity orders letters from rarest to most common.
const rarity = "zqxjkwvbygfpmucldrhsnioate"

func (w *wordSet) add(words ...string) {
	for _, x := range words {
		if slices.Contains(w.words, x) {
			continue
		}
		w.words = append(w.words, x)
		off := 0
		best := len(rarity)
		for i := 0; i < len(x); i++ {
			if r := strings.IndexByte(rarity, x[i]); r >= 0 && r < best {
				off, best = i, r
			}
		}
		c := x[off]
		w.anchor[c] = append(w.anchor[c], wordAt{x, off})
		if c >= 'a' && c <= 'z' {
			w.anchor[c-('a'-'A')] = w.anchor[c]
		}
	}
}

func (w *wordSet) empty() bool { return len(w.words) == 0 }

// in reports whether b contains one of the words, ignoring case.
func (w *wordSet) in(b []byte) bool {
	for i, c := range b {
		for _, a := range w.anchor[c] {
			if i >= a.off && hasPrefixFold(b[i-a.off:], a.word) {
				return true
			}
		}
	}
	return false
}

// scanColons finds, at every ':', JSON keys that contain one of jsonKeys
// (JSONPasswordPattern and friends) and, if multipart is set,
// "Content-Disposition:" headers of password fields
// (MultipartPasswordPattern).
//
// For JSON, every occurrence of `"key" : "` is tried, also inside a value
// that an earlier match hid, so a prefix such as an unterminated value or a
// stray backslash cannot hide a later password from the scanner.
func scanColons(b []byte, jsonKeys *wordSet, multipart bool, sp []span) []span {
	mpEnd := 0 // end of the last multipart value found
	for c := range positions(b, ':') {
		if multipart && c >= 19 && lower(b[c-1]) == 'n' && hasPrefixFold(b[c-19:], "content-disposition") {
			if s, ok := multipartValue(b, c+1); ok && s.start >= mpEnd {
				sp = append(sp, s)
				mpEnd = s.end
			}
		}
		if jsonKeys.empty() {
			continue
		}
		k := c - 1
		for k >= 0 && isSpace(b[k]) {
			k--
		}
		if k < 1 || b[k] != '"' {
			continue
		}
		q := bytes.LastIndexByte(b[:k], '"')
		if q < 0 || k-q-1 < 5 || !jsonKeys.in(b[q+1:k]) {
			continue
		}
		v := c + 1
		for v < len(b) && isSpace(b[v]) {
			v++
		}
		if v >= len(b) || b[v] != '"' {
			continue
		}
		sp = append(sp, span{start: v + 1, end: jsonStringEnd(b, v+1)})
	}
	return sp
}

// jsonStringEnd returns the index of the quote that ends the JSON string
// whose content starts at start, or len(b) if it does not end.
func jsonStringEnd(b []byte, start int) int {
	for i := start; ; {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		q := i + j
		n := 0
		for k := q - 1; k >= start && b[k] == '\\'; k-- {
			n++
		}
		if n%2 == 0 {
			return q
		}
		i = q + 1
	}
}

// Limits of the multipart scanner: a part's header lines longer than this,
// or more header lines than this, are not recognised.
const (
	maxPartLine    = 1024
	maxPartHeaders = 16
)

// multipartValue recognises, after "Content-Disposition:" at from, a
// form-data header naming a password field, and returns the span of the
// first line of the part's content.
func multipartValue(b []byte, from int) (span, bool) {
	eol := lineEnd(b, from, maxPartLine)
	if eol < 0 {
		return span{}, false
	}
	line := b[from:eol]
	fd := indexFold(line, "form-data")
	if fd < 0 {
		return span{}, false
	}
	found := false
	for i := fd + 9; i < len(line) && !found; {
		n := indexFold(line[i:], `name="`)
		if n < 0 {
			break
		}
		n += i
		i = n + 6
		if n > 0 && isWord(line[n-1]) {
			continue // filename="..."
		}
		q := bytes.IndexByte(line[n+6:], '"')
		if q < 0 {
			break
		}
		found = indexFold(line[n+6:n+6+q], "password") >= 0
	}
	if !found {
		return span{}, false
	}
	// The rest of the part's headers, then an empty line.
	pos := eol
	for n := 0; ; n++ {
		if pos < len(b) && b[pos] == '\r' {
			pos++
		}
		if pos >= len(b) || b[pos] != '\n' {
			return span{}, false
		}
		pos++
		if pos < len(b) && (b[pos] == '\n' || b[pos] == '\r') {
			break // empty line
		}
		if n == maxPartHeaders {
			return span{}, false
		}
		if pos = lineEnd(b, pos, maxPartLine); pos < 0 {
			return span{}, false
		}
	}
	if b[pos] == '\r' {
		pos++
	}
	if pos >= len(b) || b[pos] != '\n' {
		return span{}, false
	}
	pos++
	end := pos
	for end < len(b) && b[end] != '\r' && b[end] != '\n' {
		end++
	}
	return span{start: pos, end: end}, true
}

// lineEnd returns the index of the first '\r' or '\n' at or after from (or
// len(b)), or -1 if the line is longer than max.
func lineEnd(b []byte, from, max int) int {
	for i := from; i < len(b); i++ {
		if b[i] == '\r' || b[i] == '\n' {
			return i
		}
		if i-from >= max {
			return -1
		}
	}
	return len(b)
}

func isFormKey(c byte) bool {
	return isWord(c) || c == '.' || c == '%' || c == '[' || c == ']' || c == '-'
}

// positions yields the index of every c in b, first to last.
func positions(b []byte, c byte) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; i < len(b); {
			j := bytes.IndexByte(b[i:], c)
			if j < 0 || !yield(i+j) {
				return
			}
			i += j + 1
		}
	}
}

// scanForm finds url-encoded fields whose name contains one of keys
// (FormPasswordPattern, FormCSRFPattern) and hides their values up to the
// next '&' or line break.
func scanForm(b []byte, keys *wordSet, sp []span) []span {
	covered := 0 // values end at the same place, so a match inside the last value adds nothing
	for e := range positions(b, '=') {
		if e < covered {
			continue
		}
		k := e
		for k > 0 && isFormKey(b[k-1]) {
			k--
		}
		if e-k < 8 || !keys.in(b[k:e]) {
			continue
		}
		end := e + 1
		for end < len(b) && b[end] != '&' && b[end] != '\r' && b[end] != '\n' {
			end++
		}
		sp = append(sp, span{start: e + 1, end: end})
		covered = end
	}
	return sp
}

func isTagName(c byte) bool { return isWord(c) || c == ':' || c == '.' || c == '-' }

// scanXML finds elements whose name contains "password"
// (XMLPasswordPattern) and hides their text up to the next tag.
func scanXML(b []byte, sp []span) []span {
	for i := 0; i < len(b); {
		j := bytes.IndexByte(b[i:], '<')
		if j < 0 {
			break
		}
		lt := i + j
		i = lt + 1
		n := lt + 1
		for n < len(b) && isTagName(b[n]) {
			n++
		}
		if n-lt-1 < 8 || n >= len(b) || indexFold(b[lt+1:n], "password") < 0 {
			continue
		}
		if isSpace(b[n]) { // attributes
			for n < len(b) && b[n] != '>' && b[n] != '<' {
				n++
			}
		}
		if n >= len(b) || b[n] != '>' {
			continue
		}
		end := n + 1
		if k := bytes.IndexByte(b[end:], '<'); k >= 0 {
			end += k
		} else {
			end = len(b)
		}
		sp = append(sp, span{start: n + 1, end: end})
		i = end
	}
	return sp
}
