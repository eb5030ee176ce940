package event

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// The scanner turns one JSON text into a tree of nodes held in one slice.
// Strings without escapes are not copied: a node points into the input.
// Strings with escapes are decoded once into a side buffer.

type kind uint8

const (
	kindNull kind = iota
	kindFalse
	kindTrue
	kindNumber
	kindString
	kindObject
	kindArray
)

var kindNames = [...]string{
	kindNull:   "null",
	kindFalse:  "boolean",
	kindTrue:   "boolean",
	kindNumber: "number",
	kindString: "string",
	kindObject: "object",
	kindArray:  "array",
}

func (k kind) String() string { return kindNames[k] }

// node is one JSON value. For a member of an object it also holds the key.
type node struct {
	kind   kind
	keyEsc bool  // key bytes are in scanner.strs, not in the input
	valEsc bool  // string bytes are in scanner.strs, not in the input
	isInt  bool  // number literal with neither fraction nor exponent
	plain  bool  // string: ASCII without escapes, so its canonical form is the input's
	key0   int32 // key bytes [key0, key1)
	key1   int32
	v0     int32 // string: decoded bytes; number: literal text; container: offset of its first byte
	v1     int32
	first  int32 // container: index of the first child, -1 when empty
	next   int32 // index of the next sibling, -1 for the last
	n      int32 // container: number of children
}

type scanner struct {
	src      []byte
	pos      int
	maxDepth int
	nodes    []node
	strs     []byte // decoded strings that had escapes
}

func (s *scanner) reset(src []byte, maxDepth int) {
	s.src = src
	s.pos = 0
	s.maxDepth = maxDepth
	s.nodes = s.nodes[:0]
	s.strs = s.strs[:0]
}

func (s *scanner) key(n *node) []byte {
	if n.keyEsc {
		return s.strs[n.key0:n.key1]
	}
	return s.src[n.key0:n.key1]
}

func (s *scanner) str(n *node) []byte {
	if n.valEsc {
		return s.strs[n.v0:n.v1]
	}
	return s.src[n.v0:n.v1]
}

func (s *scanner) syntax(off int, msg string) error {
	return &SyntaxError{Offset: off, Msg: msg}
}

func (s *scanner) newNode() int32 {
	s.nodes = append(s.nodes, node{first: -1, next: -1})
	return int32(len(s.nodes) - 1)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func (s *scanner) skipSpace() {
	for s.pos < len(s.src) && isSpace(s.src[s.pos]) {
		s.pos++
	}
}

// describe names the byte at off for an error message.
func (s *scanner) describe(off int) string {
	if off >= len(s.src) {
		return "end of input"
	}
	c := s.src[off]
	if c >= 0x20 && c < 0x7f {
		return "'" + string(c) + "'"
	}
	const hex = "0123456789abcdef"
	return "byte 0x" + string([]byte{hex[c>>4], hex[c&15]})
}

// what names the JSON value starting at off, for an error message.
func (s *scanner) what(off int) string {
	rest := s.src[off:]
	switch c := rest[0]; {
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == '-' || (c >= '0' && c <= '9'):
		return "a number"
	case bytes.HasPrefix(rest, []byte("true")) || bytes.HasPrefix(rest, []byte("false")):
		return "a boolean"
	case bytes.HasPrefix(rest, []byte("null")):
		return "null"
	}
	return s.describe(off)
}

// top scans the whole input, which must be one JSON object, and returns the
// index of its node (always 0).
func (s *scanner) top() (int32, error) {
	s.skipSpace()
	if s.pos >= len(s.src) {
		return -1, s.syntax(s.pos, "empty input, expected a JSON object")
	}
	if s.src[s.pos] != '{' {
		return -1, s.syntax(s.pos, "an event must be a JSON object, found "+s.what(s.pos))
	}
	root := s.newNode()
	if err := s.object(root, 1); err != nil {
		return -1, err
	}
	s.skipSpace()
	if s.pos < len(s.src) {
		return -1, s.syntax(s.pos, "unexpected "+s.describe(s.pos)+" after the end of the object")
	}
	return root, nil
}

func (s *scanner) value(idx int32, depth int) error {
	if s.pos >= len(s.src) {
		return s.syntax(s.pos, "unexpected end of input, expected a value")
	}
	switch c := s.src[s.pos]; {
	case c == '{':
		return s.object(idx, depth+1)
	case c == '[':
		return s.array(idx, depth+1)
	case c == '"':
		v0, v1, esc, ascii, err := s.string()
		if err != nil {
			return err
		}
		n := &s.nodes[idx]
		n.kind, n.v0, n.v1, n.valEsc, n.plain = kindString, v0, v1, esc, ascii && !esc
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(idx)
	case c == 't':
		return s.literal(idx, "true", kindTrue)
	case c == 'f':
		return s.literal(idx, "false", kindFalse)
	case c == 'n':
		return s.literal(idx, "null", kindNull)
	default:
		return s.syntax(s.pos, "unexpected "+s.describe(s.pos)+", expected a value")
	}
}

func (s *scanner) literal(idx int32, word string, k kind) error {
	if len(s.src)-s.pos < len(word) || string(s.src[s.pos:s.pos+len(word)]) != word {
		return s.syntax(s.pos, "invalid literal, expected "+word)
	}
	s.pos += len(word)
	s.nodes[idx].kind = k
	return nil
}

func (s *scanner) object(idx int32, depth int) error {
	if depth > s.maxDepth {
		return &LimitError{What: "depth", Size: depth, Limit: s.maxDepth, Offset: s.pos}
	}
	{
		n := &s.nodes[idx]
		n.kind, n.v0 = kindObject, int32(s.pos)
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.src) && s.src[s.pos] == '}' {
		s.pos++
		return nil
	}
	last := int32(-1)
	count := int32(0)
	for {
		if s.pos >= len(s.src) {
			return s.syntax(s.pos, "unexpected end of input, expected a key")
		}
		if s.src[s.pos] != '"' {
			return s.syntax(s.pos, "unexpected "+s.describe(s.pos)+", expected a key in double quotes")
		}
		k0, k1, kesc, _, err := s.string()
		if err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.src) || s.src[s.pos] != ':' {
			return s.syntax(s.pos, "unexpected "+s.describe(s.pos)+", expected ':' after a key")
		}
		s.pos++
		s.skipSpace()
		child := s.newNode()
		{
			c := &s.nodes[child]
			c.key0, c.key1, c.keyEsc = k0, k1, kesc
		}
		if err := s.value(child, depth); err != nil {
			return err
		}
		if last < 0 {
			s.nodes[idx].first = child
		} else {
			s.nodes[last].next = child
		}
		last = child
		count++
		s.skipSpace()
		if s.pos >= len(s.src) {
			return s.syntax(s.pos, "unexpected end of input, expected ',' or '}'")
		}
		switch s.src[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			s.nodes[idx].n = count
			return nil
		default:
			return s.syntax(s.pos, "unexpected "+s.describe(s.pos)+", expected ',' or '}'")
		}
	}
}

func (s *scanner) array(idx int32, depth int) error {
	if depth > s.maxDepth {
		return &LimitError{What: "depth", Size: depth, Limit: s.maxDepth, Offset: s.pos}
	}
	{
		n := &s.nodes[idx]
		n.kind, n.v0 = kindArray, int32(s.pos)
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.src) && s.src[s.pos] == ']' {
		s.pos++
		return nil
	}
	last := int32(-1)
	count := int32(0)
	for {
		child := s.newNode()
		if err := s.value(child, depth); err != nil {
			return err
		}
		if last < 0 {
			s.nodes[idx].first = child
		} else {
			s.nodes[last].next = child
		}
		last = child
		count++
		s.skipSpace()
		if s.pos >= len(s.src) {
			return s.syntax(s.pos, "unexpected end of input, expected ',' or ']'")
		}
		switch s.src[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			s.nodes[idx].n = count
			return nil
		default:
			return s.syntax(s.pos, "unexpected "+s.describe(s.pos)+", expected ',' or ']'")
		}
	}
}

// number checks a number literal and records its text.
func (s *scanner) number(idx int32) error {
	src := s.src
	start := s.pos
	i := start
	if src[i] == '-' {
		i++
	}
	switch {
	case i < len(src) && src[i] == '0':
		i++
	case i < len(src) && src[i] >= '1' && src[i] <= '9':
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
	default:
		return s.syntax(i, "invalid number, expected a digit, found "+s.describe(i))
	}
	isInt := true
	if i < len(src) && src[i] == '.' {
		i++
		isInt = false
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return s.syntax(i, "invalid number, expected a digit after '.', found "+s.describe(i))
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		i++
		isInt = false
		if i < len(src) && (src[i] == '+' || src[i] == '-') {
			i++
		}
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return s.syntax(i, "invalid number, expected a digit in the exponent, found "+s.describe(i))
		}
	}
	s.pos = i
	n := &s.nodes[idx]
	n.kind, n.v0, n.v1, n.isInt = kindNumber, int32(start), int32(i), isInt
	return nil
}

// Words of eight bytes, for looking at eight bytes at a time.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// strMask returns, for the eight bytes of w read little-endian, a word with
// the high bit of the bytes strStop marks set: exactly for the first such
// byte, maybe wrongly for those after it (a borrow runs upwards).
func strMask(w uint64) uint64 {
	q := w ^ (lsbs * '"')
	b := w ^ (lsbs * '\\')
	return ((q-lsbs)&^q | (b-lsbs)&^b | (w - lsbs*0x20) | w) & msbs
}

// keyMask is strMask with the dot.
func keyMask(w uint64) uint64 {
	d := w ^ (lsbs * '.')
	return strMask(w) | (d-lsbs)&^d&msbs
}

// SkipPlain returns the index of the first byte of b at or after i that is
// a quote, a backslash, a control character or not ASCII, or len(b): where
// a scan of JSON string text must look closer. It reads eight bytes at a
// time.
func SkipPlain(b []byte, i int) int {
	for i+8 <= len(b) {
		if m := strMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for i < len(b) && !strStop[b[i]] {
		i++
	}
	return i
}

// strStop marks the bytes that end the fast scan of a string: the quote, the
// backslash, control characters and the bytes of multi-byte UTF-8.
var strStop = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()

// string scans a string starting at the opening quote. It returns the range of
// the decoded bytes: in the input when there was no escape (esc false),
// otherwise in s.strs; and whether the string is all ASCII.
func (s *scanner) string() (v0, v1 int32, esc, ascii bool, err error) {
	src := s.src
	start := s.pos + 1
	i := start
	ascii = true
	for i < len(src) {
		if i+8 <= len(src) {
			// Eight bytes at a time to the next one that matters.
			m := strMask(binary.LittleEndian.Uint64(src[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) >> 3
		}
		c := src[i]
		if !strStop[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			if c == '"' {
				s.pos = i + 1
				return int32(start), int32(i), false, ascii, nil
			}
			if c == '\\' {
				break
			}
			return 0, 0, false, false, s.syntax(i, "control character "+s.describe(i)+" in a string (escape it)")
		}
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size == 1 {
			return 0, 0, false, false, s.syntax(i, "invalid UTF-8 in a string")
		}
		ascii = false
		i += size
	}
	if i >= len(src) {
		return 0, 0, false, false, s.syntax(start-1, "unterminated string")
	}
	// Slow path: the string has escapes; decode it into s.strs.
	b0 := len(s.strs)
	s.strs = append(s.strs, src[start:i]...)
	for i < len(src) {
		c := src[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return int32(b0), int32(len(s.strs)), true, false, nil
		case c == '\\':
			if i+1 >= len(src) {
				return 0, 0, false, false, s.syntax(start-1, "unterminated string")
			}
			switch e := src[i+1]; e {
			case '"', '\\', '/':
				s.strs = append(s.strs, e)
			case 'b':
				s.strs = append(s.strs, '\b')
			case 'f':
				s.strs = append(s.strs, '\f')
			case 'n':
				s.strs = append(s.strs, '\n')
			case 'r':
				s.strs = append(s.strs, '\r')
			case 't':
				s.strs = append(s.strs, '\t')
			case 'u':
				r, n, err := s.unicodeEscape(i)
				if err != nil {
					return 0, 0, false, false, err
				}
				s.strs = utf8.AppendRune(s.strs, r)
				i += n
				continue
			default:
				return 0, 0, false, false, s.syntax(i, "invalid escape sequence \\"+string(rune(e)))
			}
			i += 2
		case c < 0x20:
			return 0, 0, false, false, s.syntax(i, "control character "+s.describe(i)+" in a string (escape it)")
		case c < utf8.RuneSelf:
			s.strs = append(s.strs, c)
			i++
		default:
			r, size := utf8.DecodeRune(src[i:])
			if r == utf8.RuneError && size == 1 {
				return 0, 0, false, false, s.syntax(i, "invalid UTF-8 in a string")
			}
			s.strs = append(s.strs, src[i:i+size]...)
			i += size
		}
	}
	return 0, 0, false, false, s.syntax(start-1, "unterminated string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unicodeEscape decodes \uXXXX at src[i], with a following low surrogate when
// XXXX is a high surrogate. It returns the rune and the bytes consumed.
func (s *scanner) unicodeEscape(i int) (rune, int, error) {
	src := s.src
	r, ok := hex4(src[i+2:])
	if !ok {
		return 0, 0, s.syntax(i, "invalid \\u escape, expected 4 hex digits")
	}
	switch {
	case r >= 0xdc00 && r <= 0xdfff:
		return 0, 0, s.syntax(i, "invalid \\u escape: lone low surrogate")
	case r >= 0xd800 && r <= 0xdbff:
		j := i + 6
		if j+1 < len(src) && src[j] == '\\' && src[j+1] == 'u' {
			lo, ok := hex4(src[j+2:])
			if ok && lo >= 0xdc00 && lo <= 0xdfff {
				return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 12, nil
			}
		}
		return 0, 0, s.syntax(i, "invalid \\u escape: high surrogate not followed by a low surrogate")
	}
	return r, 6, nil
}
