package crypt

import (
	"encoding/json"
	"strconv"
)

// Limits on the events EncryptEvent and DecryptEvent read. They are above
// what the ingest configuration allows (max_event_bytes up to 64 MiB, which
// envelopes grow by a third at most; max_depth up to 1000), so that every
// stored event can be read.
const (
	MaxEventBytes = 128 << 20
	MaxDepth      = 1000
)

// SyntaxError reports input that is not one valid JSON object.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what was wrong
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// scanner reads JSON from b, validating what it passes over. It never
// decodes more than a key now and then: values are located, not built.
type scanner struct {
	b        []byte
	i        int
	stack    []byte // open containers of skipValue: '{' or '['
	stackBuf [32]byte
	// reserved, when set, makes skipValue refuse strings that start with
	// the envelope prefix, and records where.
	reserved bool
}

func (s *scanner) errAt(i int, msg string) error { return &SyntaxError{Offset: i, Msg: msg} }

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// expect consumes c after optional whitespace.
func (s *scanner) expect(c byte, what string) error {
	s.ws()
	if s.peek() != c {
		return s.unexpected(what)
	}
	s.i++
	return nil
}

func (s *scanner) unexpected(want string) error {
	if s.i >= len(s.b) {
		return s.errAt(s.i, "unexpected end, expected "+want)
	}
	return s.errAt(s.i, "unexpected "+strconv.QuoteRune(rune(s.b[s.i]))+", expected "+want)
}

var isHex = func() (t [256]bool) {
	for _, c := range []byte("0123456789abcdefABCDEF") {
		t[c] = true
	}
	return t
}()

// strSpecial marks the bytes str must look at: '"', '\\' and control
// characters.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str reads a string at s.i (which is '"'). It returns the bytes between the
// quotes, [start, end), and whether they hold an escape.
func (s *scanner) str() (start, end int, esc bool, err error) {
	s.i++
	start = s.i
	for s.i < len(s.b) {
		for s.i < len(s.b) && !strSpecial[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			end = s.i
			s.i++
			return start, end, esc, nil
		case c < 0x20:
			return 0, 0, false, s.errAt(s.i, "control character in a string")
		case c == '\\':
			esc = true
			if s.i+1 >= len(s.b) {
				return 0, 0, false, s.errAt(s.i, "unterminated string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) || !isHex[s.b[s.i+2]] || !isHex[s.b[s.i+3]] || !isHex[s.b[s.i+4]] || !isHex[s.b[s.i+5]] {
					return 0, 0, false, s.errAt(s.i, `bad \u escape`)
				}
				s.i += 6
			default:
				return 0, 0, false, s.errAt(s.i, "bad escape")
			}
		default:
			s.i++
		}
	}
	return 0, 0, false, s.errAt(s.i, "unterminated string")
}

// unquote decodes the string b[start-1 : end+1] (quotes included) that has
// escapes.
func (s *scanner) unquote(start, end int) (string, error) {
	var v string
	if err := json.Unmarshal(s.b[start-1:end+1], &v); err != nil {
		return "", s.errAt(start-1, "bad string")
	}
	return v, nil
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// number reads a number at s.i, by the grammar of RFC 8259.
func (s *scanner) number() error {
	i := s.i
	if i < len(s.b) && s.b[i] == '-' {
		i++
	}
	switch {
	case i < len(s.b) && s.b[i] == '0':
		i++
	case i < len(s.b) && s.b[i] >= '1' && s.b[i] <= '9':
		i = digits(s.b, i)
	default:
		return s.errAt(i, "bad number")
	}
	if i < len(s.b) && s.b[i] == '.' {
		j := digits(s.b, i+1)
		if j == i+1 {
			return s.errAt(j, "bad number")
		}
		i = j
	}
	if i < len(s.b) && (s.b[i] == 'e' || s.b[i] == 'E') {
		i++
		if i < len(s.b) && (s.b[i] == '+' || s.b[i] == '-') {
			i++
		}
		j := digits(s.b, i)
		if j == i {
			return s.errAt(j, "bad number")
		}
		i = j
	}
	s.i = i
	return nil
}

func (s *scanner) literal(word string) error {
	if len(s.b)-s.i < len(word) || string(s.b[s.i:s.i+len(word)]) != word {
		return s.errAt(s.i, "bad literal")
	}
	s.i += len(word)
	return nil
}

// scalar reads a number, true, false or null at s.i.
func (s *scanner) scalar() error {
	switch c := s.peek(); {
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	}
	return s.unexpected("a value")
}

// ReservedError reports a string value of an event to encrypt that starts
// with the envelope prefix: Vigil alone writes such values, so that every
// envelope in the store is one it made.
type ReservedError struct {
	Offset int // byte offset of the string in the input
}

func (e *ReservedError) Error() string {
	return "value at byte " + strconv.Itoa(e.Offset) + " starts with " + strconv.Quote(reservedPrefix) +
		", which is reserved for Vigil's encrypted fields"
}

// checkReserved refuses a string value, bytes [start, end), that is (or
// decodes to) an envelope-like string.
func (s *scanner) checkReserved(start, end int, esc bool) error {
	v := s.b[start:end]
	if esc {
		u, err := s.unquote(start, end)
		if err != nil {
			return err
		}
		v = []byte(u)
	}
	if hasReservedPrefix(v) {
		return &ReservedError{Offset: start - 1}
	}
	return nil
}

// skipValue passes over one value at s.i (after whitespace), at depth (the
// depth of the container holding it), validating it.
func (s *scanner) skipValue(depth int) error {
	s.ws()
	s.stack = s.stack[:0]
	for {
		// A value starts here.
		switch c := s.peek(); c {
		case '{', '[':
			if depth+len(s.stack)+1 > MaxDepth {
				return s.errAt(s.i, "nesting deeper than "+strconv.Itoa(MaxDepth))
			}
			s.i++
			s.ws()
			if c == '{' && s.peek() == '}' || c == '[' && s.peek() == ']' {
				s.i++
				break // an empty container: a value that ended
			}
			s.stack = append(s.stack, c)
			if c == '{' {
				if err := s.memberKey(); err != nil {
					return err
				}
			}
			continue // the first member's value or element
		case '"':
			start, end, esc, err := s.str()
			if err != nil {
				return err
			}
			if s.reserved {
				if err := s.checkReserved(start, end, esc); err != nil {
					return err
				}
			}
		default:
			if err := s.scalar(); err != nil {
				return err
			}
		}
		// A value ended: close containers until one has a next member.
		for {
			if len(s.stack) == 0 {
				return nil
			}
			s.ws()
			top := s.stack[len(s.stack)-1]
			c := s.peek()
			if c == ',' {
				s.i++
				s.ws()
				if top == '{' {
					if err := s.memberKey(); err != nil {
						return err
					}
				}
				break
			}
			if top == '{' && c == '}' || top == '[' && c == ']' {
				s.i++
				s.stack = s.stack[:len(s.stack)-1]
				continue
			}
			if top == '{' {
				return s.unexpected("',' or '}'")
			}
			return s.unexpected("',' or ']'")
		}
		s.ws()
	}
}

// memberKey reads `"key" :` and the whitespace after it.
func (s *scanner) memberKey() error {
	if s.peek() != '"' {
		return s.unexpected("a key")
	}
	if _, _, _, err := s.str(); err != nil {
		return err
	}
	if err := s.expect(':', "':'"); err != nil {
		return err
	}
	s.ws()
	return nil
}

// openObject reads '{' at s.i (after whitespace) and reports whether the
// object is empty (then its '}' is read too). depth is the object's depth.
func (s *scanner) openObject(depth int) (empty bool, err error) {
	if depth > MaxDepth {
		return false, s.errAt(s.i, "nesting deeper than "+strconv.Itoa(MaxDepth))
	}
	s.ws()
	if s.peek() != '{' {
		return false, s.unexpected("'{'")
	}
	s.i++
	s.ws()
	if s.peek() == '}' {
		s.i++
		return true, nil
	}
	return false, nil
}

// key reads a member's key and the ':' after it, leaving s.i at the value.
// It returns the key's bytes [ks, ke) and whether they hold an escape.
func (s *scanner) key() (ks, ke int, esc bool, err error) {
	if s.peek() != '"' {
		return 0, 0, false, s.unexpected("a key")
	}
	if ks, ke, esc, err = s.str(); err != nil {
		return 0, 0, false, err
	}
	if err := s.expect(':', "':'"); err != nil {
		return 0, 0, false, err
	}
	s.ws()
	return ks, ke, esc, nil
}

// next reads what follows a member's value: ',' (more is true) or '}'.
func (s *scanner) next() (more bool, err error) {
	s.ws()
	switch s.peek() {
	case ',':
		s.i++
		s.ws()
		return true, nil
	case '}':
		s.i++
		return false, nil
	}
	return false, s.unexpected("',' or '}'")
}

// end checks that only whitespace follows the top-level value.
func (s *scanner) end() error {
	s.ws()
	if s.i != len(s.b) {
		return s.errAt(s.i, "data after the event")
	}
	return nil
}
