package event

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// SyntaxError reports input that is not valid JSON, or not a JSON object.
type SyntaxError struct {
	Offset int    // byte offset in the input where the problem was found
	Msg    string // what was wrong
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at byte " + strconv.Itoa(e.Offset) + ": " + e.Msg
}

// FieldError reports a field whose value breaks the schema: a known field of
// the wrong type or out of range, a duplicate key, or a dotted key that
// collides with a value that is not an object.
type FieldError struct {
	Field string // dotted path of the field, array elements as [i]: "related.objects[2]"
	Msg   string
}

func (e *FieldError) Error() string {
	return "field " + strconv.Quote(e.Field) + ": " + e.Msg
}

// LimitError reports an event beyond Limits.
type LimitError struct {
	// What is "bytes" (the input is longer than MaxBytes), "canonical bytes"
	// (the canonical form, with the fields Vigil adds, is longer than
	// MaxBytes) or "depth" (nesting deeper than MaxDepth).
	What   string
	Size   int // bytes: the size; depth: the depth reached
	Limit  int
	Offset int // depth: byte offset in the input where the limit was crossed, -1 when found after expanding dotted keys
}

func (e *LimitError) Error() string {
	switch e.What {
	case "bytes":
		return fmt.Sprintf("event is %d bytes, limit is %d", e.Size, e.Limit)
	case "canonical bytes":
		return fmt.Sprintf("event is %d bytes in canonical form, limit is %d", e.Size, e.Limit)
	}
	if e.Offset < 0 {
		return fmt.Sprintf("nesting is deeper than %d levels after expanding dotted keys", e.Limit)
	}
	return fmt.Sprintf("nesting is deeper than %d levels at byte %d", e.Limit, e.Offset)
}

// quoteValue quotes a value for an error message, cut to a readable length.
func quoteValue(b []byte) string {
	const max = 64
	if len(b) <= max {
		return strconv.Quote(string(b))
	}
	n := max
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return strconv.Quote(string(b[:n])) + "..."
}
