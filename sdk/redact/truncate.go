package redact

import (
	"encoding/json"
	"unicode/utf8"
)

// Truncate shortens a body for logging, as django-security-logger does. A
// body of at most maxChars characters (runes; a byte that is not valid UTF-8
// counts as one) is returned as it is. A longer body that is valid JSON has
// every string value longer than maxString characters cut to maxString
// characters followed by "…", and is written again in compact form (object
// keys and numbers are kept as they are, in their order); if that is still
// longer than maxChars, or the body is not JSON, it is cut to maxChars
// characters, never inside a UTF-8 sequence.
//
// maxChars ≤ 0 means no limit; maxString ≤ 0 turns the JSON treatment off.
// The result may share memory with body, but appending to it never
// overwrites body.
func Truncate(body []byte, maxChars, maxString int) []byte {
	if maxChars <= 0 || len(body) <= maxChars || utf8.RuneCount(body) <= maxChars {
		return body
	}
	if maxString > 0 && json.Valid(body) {
		body = shortenJSON(body, maxString)
		if len(body) <= maxChars || utf8.RuneCount(body) <= maxChars {
			return body
		}
	}
	return cutRunes(body, maxChars)
}

// cutRunes returns the first n runes of b.
func cutRunes(b []byte, n int) []byte {
	i := 0
	for ; n > 0 && i < len(b); n-- {
		_, size := utf8.DecodeRune(b[i:])
		i += size
	}
	return b[:i:i]
}

// shortenJSON rewrites the valid JSON document b without whitespace, with
// string values (not keys) longer than max characters shortened.
func shortenJSON(b []byte, max int) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if isSpace(c) {
			i++
			continue
		}
		if c != '"' {
			out = append(out, c)
			i++
			continue
		}
		end := jsonStringEnd(b, i+1) + 1 // past the closing quote
		raw := b[i:end]
		i = end
		// A raw string is at least as long as its text, so a short one
		// needs no decoding. Keys are followed by ':'.
		if len(raw)-2 <= max || isKey(b, end) {
			out = append(out, raw...)
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || utf8.RuneCountInString(s) <= max {
			out = append(out, raw...)
			continue
		}
		n := 0
		for k := range s {
			if n == max {
				s = s[:k]
				break
			}
			n++
		}
		out = appendJSONString(out, s+"…")
	}
	return out
}

func isKey(b []byte, i int) bool {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i < len(b) && b[i] == ':'
}

// appendJSONString writes s as a JSON string the way Vigil's canonical form
// does: only '"', '\\' and control characters escaped, and U+2028, U+2029.
func appendJSONString(out []byte, s string) []byte {
	const hex = "0123456789abcdef"
	out = append(out, '"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			out = append(out, '\\', byte(r))
		case r == '\n':
			out = append(out, '\\', 'n')
		case r == '\r':
			out = append(out, '\\', 'r')
		case r == '\t':
			out = append(out, '\\', 't')
		case r < 0x20:
			out = append(out, '\\', 'u', '0', '0', hex[r>>4], hex[r&0xf])
		case r == '\u2028' || r == '\u2029':
			out = append(out, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			out = utf8.AppendRune(out, r)
		}
	}
	return append(out, '"')
}
