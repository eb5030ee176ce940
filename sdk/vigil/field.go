package vigil

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Field is one field of an event, for Audit: an ECS name ("user.target.name",
// "labels.attempt") or one of the application's own ("shop.order.total"),
// with its value. Make one with String, Int, Bool, Float, Strings, Time or
// Any.
//
// A field given to Audit replaces a field of the same name the SDK would
// write (event.outcome, message, user.name...), except the event's identity
// (@timestamp, event.id, event.kind, event.action, service.*, host.*), which
// it cannot change. A field whose value does not fit the type Vigil requires
// for its name (docs/event-schema.md, "Known fields") is converted when it
// can be (a number for user.id becomes a string) and dropped otherwise, so
// that Vigil never refuses the event.
type Field struct {
	Key  string
	kind fieldKind
	s    string
	n    int64
	f    float64
	ss   []string
	v    any
	// own marks the SDK's own fields (outcome, request ID, address...),
	// which carry no free text and skip the redactor.
	own bool
}

type fieldKind uint8

const (
	kindNone fieldKind = iota
	kindString
	kindInt
	kindFloat
	kindBool
	kindStrings
	kindAny
)

// String returns a string field.
func String(key, value string) Field { return Field{Key: key, kind: kindString, s: value} }

// Int returns an integer field.
func Int(key string, value int64) Field { return Field{Key: key, kind: kindInt, n: value} }

// Float returns a number field. NaN and infinities are written as strings.
func Float(key string, value float64) Field { return Field{Key: key, kind: kindFloat, f: value} }

// Bool returns a boolean field.
func Bool(key string, value bool) Field {
	var n int64
	if value {
		n = 1
	}
	return Field{Key: key, kind: kindBool, n: n}
}

// Strings returns an array-of-strings field.
func Strings(key string, value []string) Field {
	return Field{Key: key, kind: kindStrings, ss: value}
}

// Time returns a time field, written as RFC 3339 in UTC.
func Time(key string, value time.Time) Field {
	return Field{Key: key, kind: kindString, s: value.UTC().Format(time.RFC3339Nano)}
}

// Any returns a field of any value: strings, numbers, booleans, times,
// slices and maps are written as JSON; other values as encoding/json writes
// them. Map keys that name secrets (password, token...: the redactor's
// rules) have their values hidden; map keys have dots made underscores, so
// that Vigil does not read them as nested fields.
func Any(key string, value any) Field { return Field{Key: key, kind: kindAny, v: value} }

// The types Vigil requires of its known fields (docs/event-schema.md).
type knownType uint8

const (
	knownString knownType = iota + 1
	knownStringOrStrings
	knownStrings
	knownInt
	knownDuration
	knownPort
	knownStatus
	knownIP
	knownOutcome
	knownTime
	knownObject // a namespace: must hold an object
)

var knownFields = map[string]knownType{
	"@timestamp": knownTime, "event.id": knownString, "event.kind": knownString,
	"event.action": knownString, "event.category": knownStringOrStrings,
	"event.outcome": knownOutcome, "event.severity": knownInt, "event.duration": knownDuration,
	"event.ingested": knownString, "message": knownString, "log.level": knownString,
	"user.id": knownString, "user.name": knownString, "source.ip": knownIP, "source.port": knownPort,
	"http.request.method": knownString, "http.request.id": knownString,
	"http.response.status_code": knownStatus, "url.path": knownString, "service.name": knownString,
	"host.name": knownString, "related.objects": knownStrings, "vigil.schema": knownString,
	"event": knownObject, "http": knownObject, "http.request": knownObject, "http.response": knownObject,
	"source": knownObject, "user": knownObject, "url": knownObject, "service": knownObject,
	"host": knownObject, "log": knownObject, "related": knownObject, "labels": knownObject,
	"vigil": knownObject,
}

// reserved are the fields of an event's identity, which Audit's fields
// cannot change.
var reserved = []string{"@timestamp", "event.id", "event.kind", "event.action", "event.ingested", "vigil.schema", "service", "host"}

// overlaps reports whether fields a and b would set the same place once
// Vigil expands dotted keys: the same name, or one inside the other.
func overlaps(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || strings.HasPrefix(b, a) && b[len(a)] == '.'
}

// sanitizeKey makes a caller's field name safe: at most maxKeyParts dotted
// parts (Vigil limits nesting), labels flat (Vigil's labels hold no
// objects). It returns "" for a name that cannot be used.
func sanitizeKey(k string) string {
	if k == "" || len(k) > 256 {
		return ""
	}
	k = validUTF8(k)
	if rest, ok := strings.CutPrefix(k, "labels."); ok {
		if rest == "" {
			return ""
		}
		return "labels." + strings.ReplaceAll(rest, ".", "_")
	}
	if strings.Count(k, ".") >= maxKeyParts {
		parts := strings.SplitN(k, ".", maxKeyParts)
		parts[maxKeyParts-1] = strings.ReplaceAll(parts[maxKeyParts-1], ".", "_")
		k = strings.Join(parts, ".")
	}
	return k
}

// validUTF8 returns s with each byte of invalid UTF-8 replaced by U+FFFD,
// as appendJSONString writes it, so that names can be compared as Vigil
// will read them.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// fit returns f converted to what Vigil requires for its name, or false
// when it cannot be.
func (c *Client) fit(f Field) (Field, bool) {
	if f.Key = sanitizeKey(f.Key); f.Key == "" || f.kind == kindNone {
		return f, false
	}
	if strings.HasPrefix(f.Key, "labels.") {
		switch f.kind {
		case kindStrings, kindAny:
			return String(f.Key, c.textOf(f)), true
		case kindFloat:
			if math.IsNaN(f.f) || math.IsInf(f.f, 0) {
				return String(f.Key, c.textOf(f)), true
			}
		}
		return f, true
	}
	// Inside a known leaf ("user.id.x") or a namespace set to a non-object.
	for name, t := range knownFields {
		if t != knownObject && strings.HasPrefix(f.Key, name+".") {
			return f, false
		}
	}
	t, known := knownFields[f.Key]
	if !known {
		// An object holding known fields ("user" given as a map) would need
		// each of them checked: refused.
		for name := range knownFields {
			if strings.HasPrefix(name, f.Key+".") {
				return f, false
			}
		}
		return f, true
	}
	switch t {
	case knownObject:
		return f, false
	case knownString, knownTime:
		if f.kind != kindString {
			return String(f.Key, c.textOf(f)), t == knownString
		}
		return f, t == knownString
	case knownStringOrStrings, knownStrings:
		switch f.kind {
		case kindStrings:
			return f, true
		case kindString:
			if t == knownStrings {
				return Strings(f.Key, []string{f.s}), true
			}
			return f, true
		}
		return f, false
	case knownInt, knownDuration, knownPort, knownStatus:
		n, ok := f.n, f.kind == kindInt
		if f.kind == kindString {
			v, err := strconv.ParseInt(f.s, 10, 64)
			n, ok = v, err == nil
		}
		switch {
		case !ok:
			return f, false
		case t == knownDuration && n < 0, t == knownPort && (n < 0 || n > 65535), t == knownStatus && (n < 100 || n > 599):
			return f, false
		}
		return Int(f.Key, n), true
	case knownIP:
		if f.kind != kindString {
			return f, false
		}
		ip, err := netip.ParseAddr(f.s)
		if err != nil {
			return f, false
		}
		return String(f.Key, ip.WithZone("").String()), true
	case knownOutcome:
		return f, f.kind == kindString && (f.s == "success" || f.s == "failure" || f.s == "unknown")
	}
	return f, false
}

// textOf returns a field's value as text.
func (c *Client) textOf(f Field) string {
	switch f.kind {
	case kindString:
		return f.s
	case kindInt:
		return strconv.FormatInt(f.n, 10)
	case kindFloat:
		return strconv.FormatFloat(f.f, 'g', -1, 64)
	case kindBool:
		return strconv.FormatBool(f.n != 0)
	case kindStrings:
		return strings.Join(f.ss, ",")
	}
	switch v := f.v.(type) {
	case string:
		return v
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	}
	var e enc
	e.budget = maxStringBytes
	e.b = appendAny(&e, e.b, f.v, 0, c)
	return string(e.b)
}

// resolve returns fields without overlaps: of two fields that set the same
// place, the later one is kept. Fields that overlap an event's identity are
// dropped.
func resolve(fields []Field) []Field {
	out := fields[:0]
	for i, f := range fields {
		keep := true
		for _, g := range fields[i+1:] {
			if overlaps(f.Key, g.Key) {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, f)
		}
	}
	return out
}

func overlapsReserved(k string) bool {
	for _, r := range reserved {
		if overlaps(k, r) {
			return true
		}
	}
	return false
}

// field appends one field, its key escaped.
func (c *Client) field(e *enc, f Field) {
	e.b = append(e.b, ',')
	e.b = appendJSONString(e.b, f.Key)
	e.b = append(e.b, ':')
	switch f.kind {
	case kindString:
		if f.own {
			e.b = appendStr(e, e.b, f.s)
		} else {
			e.b = appendStr(e, e.b, c.red.Text(f.s))
		}
	case kindInt:
		e.b = strconv.AppendInt(e.b, f.n, 10)
	case kindFloat:
		e.b = appendFloat(e.b, f.f)
	case kindBool:
		e.b = strconv.AppendBool(e.b, f.n != 0)
	case kindStrings:
		e.b = append(e.b, '[')
		for i, s := range f.ss {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			if i == maxAnyEntries {
				e.b = appendJSONString(e.b, "[truncated]")
				break
			}
			if f.own {
				e.b = appendStr(e, e.b, s)
			} else {
				e.b = appendStr(e, e.b, c.red.Text(s))
			}
		}
		e.b = append(e.b, ']')
	case kindAny:
		e.b = appendAny(e, e.b, f.v, 0, c)
	default:
		e.b = append(e.b, "null"...)
	}
}

// Filtered is what hides a secret value in events.
const filtered = "[Filtered]"

// sensitiveKey reports whether a map key or setting names a secret.
func (c *Client) sensitiveKey(k string) bool {
	if c == nil {
		return false
	}
	return c.red.SensitiveQuery(k) || c.red.SensitiveHeader(k)
}

func (c *Client) text(s string) string {
	if c == nil {
		return s
	}
	return c.red.Text(s)
}

// appendAny appends v as JSON, bounded in depth, entries and size. With a
// client, strings are redacted and the values of sensitive map keys hidden.
func appendAny(e *enc, dst []byte, v any, depth int, c *Client) []byte {
	if depth > maxAnyDepth {
		return appendJSONString(dst, "[too deep]")
	}
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendStr(e, dst, c.text(x))
	case []byte:
		return appendStr(e, dst, c.text(string(x)))
	case bool:
		return strconv.AppendBool(dst, x)
	case int:
		return strconv.AppendInt(dst, int64(x), 10)
	case int8:
		return strconv.AppendInt(dst, int64(x), 10)
	case int16:
		return strconv.AppendInt(dst, int64(x), 10)
	case int32:
		return strconv.AppendInt(dst, int64(x), 10)
	case int64:
		return strconv.AppendInt(dst, x, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(x), 10)
	case uint64:
		return strconv.AppendUint(dst, x, 10)
	case float32:
		return appendFloat(dst, float64(x))
	case float64:
		return appendFloat(dst, x)
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err == nil && json.Valid([]byte(x)) {
			return append(dst, x...)
		}
		return appendStr(e, dst, string(x))
	case time.Time:
		return appendTime(dst, x)
	case time.Duration:
		return strconv.AppendInt(dst, int64(x), 10)
	case error:
		return appendStr(e, dst, c.text(x.Error()))
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if i == maxAnyEntries || e.budget <= 0 {
				dst = appendJSONString(dst, "[truncated]")
				break
			}
			dst = appendStr(e, dst, c.text(s))
		}
		return append(dst, ']')
	case []any:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			if i == maxAnyEntries || e.budget <= 0 {
				dst = appendJSONString(dst, "[truncated]")
				break
			}
			e.budget -= 2
			dst = appendAny(e, dst, s, depth+1, c)
		}
		return append(dst, ']')
	case map[string]any:
		return appendMap(e, dst, x, depth, c)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendMap(e, dst, m, depth, c)
	case fmt.Stringer:
		if _, ok := v.(json.Marshaler); !ok && reflect.TypeOf(v).Kind() != reflect.Struct {
			return appendStr(e, dst, c.text(x.String()))
		}
	}
	// Anything else goes through encoding/json and back, so that the bounds
	// and the redaction above apply to it too.
	raw, err := json.Marshal(v)
	if err != nil {
		return appendStr(e, dst, c.text(fmt.Sprint(v)))
	}
	var decoded any
	d := json.NewDecoder(strings.NewReader(string(raw)))
	d.UseNumber()
	if err := d.Decode(&decoded); err != nil {
		return appendStr(e, dst, c.text(string(raw)))
	}
	if s, ok := decoded.(string); ok {
		return appendStr(e, dst, c.text(s))
	}
	return appendAny(e, dst, decoded, depth, c)
}

// appendMap appends m as an object, keys sorted, dots in keys made
// underscores.
func appendMap(e *enc, dst []byte, m map[string]any, depth int, c *Client) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	seen := make(map[string]bool, len(keys))
	n := 0
	for _, k := range keys {
		name := strings.ReplaceAll(k, ".", "_")
		if len(name) > 256 {
			name = name[:256]
		}
		name = validUTF8(name)
		if seen[name] {
			continue
		}
		if n == maxAnyEntries || e.budget <= 0 {
			if !seen["[truncated]"] {
				if n > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `"[truncated]":true`...)
			}
			break
		}
		seen[name] = true
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		e.budget -= len(name) + 4
		dst = appendJSONString(dst, name)
		dst = append(dst, ':')
		if c.sensitiveKey(k) {
			dst = appendJSONString(dst, filtered)
			continue
		}
		dst = appendAny(e, dst, m[k], depth+1, c)
	}
	return append(dst, '}')
}
