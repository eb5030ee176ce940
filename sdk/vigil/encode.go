package vigil

import (
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Limits that keep every event under Vigil's limits (1 MiB, 32 levels of
// nesting; docs/event-schema.md) whatever the application hands over.
const (
	maxStringBytes = 16 << 10  // one string value
	maxEventBudget = 512 << 10 // all variable strings of one event together
	maxAnyDepth    = 8         // nesting of a value given as any
	maxAnyEntries  = 1000      // elements of one map or slice given as any
	maxKeyParts    = 8         // dotted parts of a caller's field name
)

// enc builds one event: a JSON object with flat dotted ECS keys, appended to
// a pooled buffer. It never uses encoding/json or maps.
type enc struct {
	b      []byte
	budget int // bytes of variable strings still allowed
}

var encPool = sync.Pool{New: func() any { return &enc{b: make([]byte, 0, 2048)} }}

func getEnc() *enc {
	e := encPool.Get().(*enc)
	e.b = e.b[:0]
	e.budget = maxEventBudget
	return e
}

func putEnc(e *enc) {
	if cap(e.b) > 256<<10 {
		return // let an unusually large buffer go
	}
	encPool.Put(e)
}

// key appends ,"k": — k is a constant of this package and needs no escaping.
func (e *enc) key(k string) {
	e.b = append(e.b, ',', '"')
	e.b = append(e.b, k...)
	e.b = append(e.b, '"', ':')
}

// str appends a string field.
func (e *enc) str(k, v string) {
	e.key(k)
	e.b = appendStr(e, e.b, v)
}

// strNZ appends a string field unless v is empty.
func (e *enc) strNZ(k, v string) {
	if v != "" {
		e.str(k, v)
	}
}

// bytes appends a string field whose value is bytes.
func (e *enc) bytes(k string, v []byte) {
	e.key(k)
	e.b = appendStr(e, e.b, v)
}

func (e *enc) int(k string, v int64) {
	e.key(k)
	e.b = strconv.AppendInt(e.b, v, 10)
}

func (e *enc) bool(k string, v bool) {
	e.key(k)
	e.b = strconv.AppendBool(e.b, v)
}

func (e *enc) strs(k string, v []string) {
	e.key(k)
	e.b = append(e.b, '[')
	for i, s := range v {
		if i > 0 {
			e.b = append(e.b, ',')
		}
		e.b = appendStr(e, e.b, s)
	}
	e.b = append(e.b, ']')
}

// raw appends a field whose value is JSON written by this package.
func (e *enc) raw(k, json string) {
	e.key(k)
	e.b = append(e.b, json...)
}

// time appends t as RFC 3339 in UTC with nanoseconds.
func (e *enc) time(k string, t time.Time) {
	e.key(k)
	e.b = appendTime(e.b, t)
}

func appendTime(b []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < 0 || sec >= maxUnix {
		b = append(b, '"')
		b = t.UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	}
	// The date, hour and minute change once a minute: formatted once and
	// kept, for every event of that minute.
	minute := sec / 60
	p := minutePrefix.Load()
	if p == nil || p.minute != minute {
		p = &timePrefix{minute: minute}
		t.UTC().AppendFormat(p.text[:0], "2006-01-02T15:04:")
		minutePrefix.Store(p)
	}
	b = append(b, '"')
	b = append(b, p.text[:]...)
	s := sec % 60
	b = append(b, byte('0'+s/10), byte('0'+s%10), '.')
	ns := t.Nanosecond()
	var digits [9]byte
	for i := 8; i >= 0; i-- {
		digits[i] = byte('0' + ns%10)
		ns /= 10
	}
	b = append(b, digits[:]...)
	return append(b, 'Z', '"')
}

// maxUnix is the first second of the year 10000.
const maxUnix = 253402300800

// timePrefix is the text of one minute: "2025-03-01T12:00:".
type timePrefix struct {
	minute int64
	text   [17]byte
}

var minutePrefix atomic.Pointer[timePrefix]

// appendStr appends v as a JSON string, cut to maxStringBytes and to what is
// left of the event's budget.
func appendStr[T string | []byte](e *enc, dst []byte, v T) []byte {
	n := min(len(v), maxStringBytes, max(e.budget, 0))
	e.budget -= n
	if n < len(v) {
		v = v[:n]
	}
	return appendJSONString(dst, v)
}

// safe reports the bytes written as they are inside a JSON string.
var safe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a quoted JSON string: ", \ and control
// characters escaped, U+2028 and U+2029 escaped (as Vigil's canonical form
// does), every byte of invalid UTF-8 replaced by U+FFFD.
func appendJSONString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && !special8(s[i], s[i+1], s[i+2], s[i+3], s[i+4], s[i+5], s[i+6], s[i+7]) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// special8 reports whether any of 8 bytes needs a look: a control
// character, '"', '\\' or a byte of a multi-byte sequence. It tests the
// eight at once, in the bits of one word.
func special8(b0, b1, b2, b3, b4, b5, b6, b7 byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	x := uint64(b0) | uint64(b1)<<8 | uint64(b2)<<16 | uint64(b3)<<24 |
		uint64(b4)<<32 | uint64(b5)<<40 | uint64(b6)<<48 | uint64(b7)<<56
	q := x ^ (ones * '"')
	bs := x ^ (ones * '\\')
	below := (x - ones*0x20) &^ x               // bytes below 0x20
	quote := (q - ones) &^ q                    // bytes equal to '"'
	backslash := (bs - ones) &^ bs              // bytes equal to '\\'
	return (below|quote|backslash|x)&highs != 0 // x&highs: bytes from 0x80
}

// appendFloat appends f as a JSON number; NaN and infinities, which JSON
// cannot hold, become strings.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return appendJSONString(dst, strconv.FormatFloat(f, 'g', -1, 64))
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}
