package event

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The schema of the known fields, as a tree following the dotted names. A
// field with a leaf function validates (and may normalize) its value and
// writes it; a field with children must be an object; any other field is
// copied as it is.

type schema struct {
	kids  []namedSchema // known members, sorted by name
	any   *schema       // schema of every member (labels)
	leaf  func(st *state, f *schema, ni int32) error
	want  string    // what a leaf expects, for messages: "a string"
	field strField  // Event field a string leaf fills
	check leafCheck // how the verbatim route checks the leaf (verbatim.go)
}

type namedSchema struct {
	pfx  uint64 // segPrefix of name
	name string
	f    *schema
}

func (f *schema) isObject() bool { return f.kids != nil || f.any != nil }

// strField names the string fields of Event filled from the canonical bytes.
type strField uint8

const (
	fieldNone strField = iota
	fieldID
	fieldKind
	fieldCategory
	fieldAction
	fieldOutcome
	fieldUserID
	fieldUserName
	fieldMethod
	fieldPath
	fieldRequestID
	fieldService
	fieldHost
	fieldMessage
	numStrFields
)

func (ev *Event) strField(f strField) *string {
	switch f {
	case fieldID:
		return &ev.ID
	case fieldKind:
		return &ev.Kind
	case fieldCategory:
		return &ev.Category
	case fieldAction:
		return &ev.Action
	case fieldOutcome:
		return &ev.Outcome
	case fieldUserID:
		return &ev.UserID
	case fieldUserName:
		return &ev.UserName
	case fieldMethod:
		return &ev.Method
	case fieldPath:
		return &ev.Path
	case fieldRequestID:
		return &ev.RequestID
	case fieldService:
		return &ev.Service
	case fieldHost:
		return &ev.Host
	case fieldMessage:
		return &ev.Message
	}
	return nil
}

var rootSchema = &schema{kids: []namedSchema{}}

func define(name string, f *schema) {
	parts := strings.Split(name, ".")
	s := rootSchema
	for i, p := range parts {
		k, found := slices.BinarySearchFunc(s.kids, p, func(n namedSchema, p string) int {
			return strings.Compare(n.name, p)
		})
		if !found {
			c := f
			if i < len(parts)-1 {
				c = &schema{kids: []namedSchema{}}
			}
			s.kids = slices.Insert(s.kids, k, namedSchema{segPrefix([]byte(p)), p, c})
		}
		s = s.kids[k].f
	}
}

func stringField(field strField) *schema {
	return &schema{leaf: leafString, want: "a string", field: field, check: checkString}
}

func init() {
	define("@timestamp", &schema{leaf: leafTimestamp, want: "an RFC 3339 time string or a number of milliseconds since 1970", check: checkTimestamp})
	define("event.id", &schema{leaf: leafEventID, want: "a string", field: fieldID, check: checkEventID})
	define("event.kind", stringField(fieldKind))
	define("event.action", stringField(fieldAction))
	define("event.category", &schema{leaf: leafCategory, want: "a string or an array of strings", field: fieldCategory, check: checkCategory})
	define("event.outcome", &schema{leaf: leafOutcome, want: "a string", field: fieldOutcome, check: checkOutcome})
	define("event.severity", &schema{leaf: leafSeverity, want: "an integer", check: checkSeverity})
	define("event.duration", &schema{leaf: leafDuration, want: "an integer", check: checkDuration})
	define("event.ingested", stringField(fieldNone))
	define("log.level", stringField(fieldNone))
	define("message", stringField(fieldMessage))
	define("user.id", stringField(fieldUserID))
	define("user.name", stringField(fieldUserName))
	define("source.ip", &schema{leaf: leafIP, want: "a string", check: checkIP})
	define("source.port", &schema{leaf: leafPort, want: "an integer", check: checkPort})
	define("http.request.method", &schema{leaf: leafMethod, want: "a string", field: fieldMethod, check: checkMethod})
	define("http.request.id", stringField(fieldRequestID))
	define("http.response.status_code", &schema{leaf: leafStatus, want: "an integer", check: checkStatus})
	define("url.path", stringField(fieldPath))
	define("service.name", stringField(fieldService))
	define("host.name", stringField(fieldHost))
	define("related.objects", &schema{leaf: leafRelated, want: "an array of strings", check: checkRelated})
	define("vigil.schema", stringField(fieldNone))
	define("labels", &schema{any: &schema{leaf: leafLabel, want: "a string, a number or a boolean", check: checkLabel}})
}

func article(k kind) string {
	switch k {
	case kindNull:
		return "null"
	case kindObject, kindArray:
		return "an " + k.String()
	}
	return "a " + k.String()
}

func (st *state) fieldErr(msg string) error {
	return &FieldError{Msg: msg} // the writer fills Field on the way up
}

func (st *state) typeErr(f *schema, k kind) error {
	return st.fieldErr("must be " + f.want + ", not " + article(k))
}

// ref records where the string b, just written from start, is: in the
// canonical bytes, or, when escaping changed it there, in st.escs.
func (st *state) ref(start int, b []byte, esc bool) strRef {
	if !esc {
		return strRef{start: int32(start), end: int32(len(st.out) - 1), set: true}
	}
	e0 := len(st.escs)
	st.escs = append(st.escs, b...)
	return strRef{start: int32(e0), end: int32(len(st.escs)), set: true, esc: true}
}

// writeStr writes a string and records where it is, for Event.
func (st *state) writeStr(b []byte, field strField) {
	start := len(st.out) + 1
	esc := st.putString(b)
	if field == fieldNone {
		return
	}
	st.refs[field] = st.ref(start, b, esc)
}

// writeNodeStr writes the string of node n, as writeStr does; a plain one is
// copied from the input, quotes and all.
func (st *state) writeNodeStr(n *node, field strField) {
	if !n.plain {
		st.writeStr(st.str(n), field)
		return
	}
	start := len(st.out) + 1
	st.out = append(st.out, st.src[n.v0-1:n.v1+1]...)
	if field != fieldNone {
		st.refs[field] = strRef{start: int32(start), end: int32(len(st.out) - 1), set: true}
	}
}

func leafString(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindString {
		return st.typeErr(f, n.kind)
	}
	st.writeNodeStr(n, f.field)
	return nil
}

func leafEventID(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindString {
		return st.typeErr(f, n.kind)
	}
	b := st.str(n)
	if len(b) == 0 || len(b) > 128 {
		return st.fieldErr("must be 1 to 128 bytes long, not " + strconv.Itoa(len(b)))
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f {
			return st.fieldErr(quoteValue(b) + " has a character other than visible ASCII (no spaces)")
		}
	}
	st.writeNodeStr(n, fieldID)
	return nil
}

var outcomes = []string{"success", "failure", "unknown"}

func leafOutcome(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindString {
		return st.typeErr(f, n.kind)
	}
	b := st.str(n)
	for _, o := range outcomes {
		if string(b) == o {
			st.writeNodeStr(n, fieldOutcome)
			return nil
		}
	}
	return st.fieldErr(quoteValue(b) + " is not one of success, failure, unknown")
}

func leafMethod(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindString {
		return st.typeErr(f, n.kind)
	}
	b := st.str(n)
	if n.plain && !hasLower(b) {
		st.writeNodeStr(n, fieldMethod)
		return nil
	}
	st.tmp = st.tmp[:0]
	st.tmp = append(st.tmp, b...)
	for i, c := range st.tmp {
		if c >= 'a' && c <= 'z' {
			st.tmp[i] = c - ('a' - 'A')
		}
	}
	st.writeStr(st.tmp, fieldMethod)
	return nil
}

func hasLower(b []byte) bool {
	for _, c := range b {
		if c >= 'a' && c <= 'z' {
			return true
		}
	}
	return false
}

func leafCategory(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	switch n.kind {
	case kindString:
		st.writeNodeStr(n, fieldCategory)
		return nil
	case kindArray:
		return st.stringArray(n, fieldCategory, f)
	}
	return st.typeErr(f, n.kind)
}

func leafRelated(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindArray {
		return st.typeErr(f, n.kind)
	}
	return st.stringArray(n, fieldNone, f)
}

// stringArray writes an array of strings. The first string fills field; with
// fieldNone, every string goes to Event.Related.
func (st *state) stringArray(n *node, field strField, f *schema) error {
	st.out = append(st.out, '[')
	i := 0
	for c := n.first; c >= 0; c = st.nodes[c].next {
		cn := &st.nodes[c]
		if cn.kind != kindString {
			return st.fieldErr("element " + strconv.Itoa(i) + " is " + article(cn.kind) + ", must be a string")
		}
		if i > 0 {
			st.out = append(st.out, ',')
		}
		switch {
		case field == fieldNone:
			start := len(st.out) + 1
			var esc bool
			if cn.plain {
				st.out = append(st.out, st.src[cn.v0-1:cn.v1+1]...)
			} else {
				esc = st.putString(st.str(cn))
			}
			st.related = append(st.related, st.ref(start, st.str(cn), esc))
		case i == 0:
			st.writeNodeStr(cn, field)
		default:
			st.writeNodeStr(cn, fieldNone)
		}
		i++
	}
	st.out = append(st.out, ']')
	return nil
}

func leafLabel(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	switch n.kind {
	case kindString, kindNumber, kindTrue, kindFalse:
		return st.writeValue(ni, nil, 0)
	}
	return st.typeErr(f, n.kind)
}

// parseInt reads an integer literal (as the scanner checked it, or digits
// from a string); ok is false when it does not fit an int64.
func parseInt(b []byte) (v int64, ok bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var u uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// intNode reads an integer-valued number node.
func (st *state) intNode(f *schema, ni int32) (int64, error) {
	n := &st.nodes[ni]
	if n.kind != kindNumber {
		return 0, st.typeErr(f, n.kind)
	}
	lit := st.src[n.v0:n.v1]
	if !n.isInt {
		return 0, st.fieldErr(string(lit) + " is not an integer")
	}
	v, ok := parseInt(lit)
	if !ok {
		return 0, st.fieldErr(quoteValue(lit) + " is out of range")
	}
	return v, nil
}

func leafSeverity(st *state, f *schema, ni int32) error {
	v, err := st.intNode(f, ni)
	if err != nil {
		return err
	}
	if int64(int(v)) != v {
		return st.fieldErr(strconv.FormatInt(v, 10) + " is out of range")
	}
	st.severity = int(v)
	return st.writeValue(ni, nil, 0)
}

func leafDuration(st *state, f *schema, ni int32) error {
	v, err := st.intNode(f, ni)
	if err != nil {
		return err
	}
	if v < 0 {
		return st.fieldErr(strconv.FormatInt(v, 10) + " is negative")
	}
	return st.writeValue(ni, nil, 0)
}

func leafPort(st *state, f *schema, ni int32) error {
	v, err := st.intNode(f, ni)
	if err != nil {
		return err
	}
	if v < 0 || v > 65535 {
		return st.fieldErr(strconv.FormatInt(v, 10) + " is not between 0 and 65535")
	}
	return st.writeValue(ni, nil, 0)
}

// leafStatus accepts a number or a string of digits, and writes a number.
func leafStatus(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	var v int64
	switch n.kind {
	case kindString:
		b := st.str(n)
		var ok bool
		if len(b) > 0 && b[0] != '-' {
			v, ok = parseInt(b)
		}
		if !ok {
			return st.fieldErr(quoteValue(b) + " is not an integer")
		}
	case kindNumber:
		var err error
		if v, err = st.intNode(f, ni); err != nil {
			return err
		}
	default:
		return st.typeErr(f, n.kind)
	}
	if v < 100 || v > 599 {
		return st.fieldErr(strconv.FormatInt(v, 10) + " is not between 100 and 599")
	}
	st.status = int(v)
	var num [20]byte
	st.out = append(st.out, strconv.AppendInt(num[:0], v, 10)...)
	return nil
}

func leafIP(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	if n.kind != kindString {
		return st.typeErr(f, n.kind)
	}
	b := st.str(n)
	addr, ok := parseIPv4(b)
	if !ok {
		var err error
		if addr, err = netip.ParseAddr(string(b)); err != nil {
			return st.fieldErr(quoteValue(b) + " is not an IP address")
		}
	}
	st.setAddr(addr)
	var text [64]byte
	b = addr.AppendTo(text[:0])
	if addr.Zone() == "" {
		// Hex digits, dots and colons: nothing to escape.
		st.out = append(st.out, '"')
		st.out = append(st.out, b...)
		st.out = append(st.out, '"')
	} else {
		st.putString(b)
	}
	return nil
}

// parseIPv4 parses a dotted-quad IPv4 address in its canonical form (no
// leading zeros), the common case, without allocating; anything else is left
// to netip.ParseAddr.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var ip [4]byte
	k, v, digits := 0, 0, 0
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && v == 0 {
				return netip.Addr{}, false // leading zero
			}
			v = v*10 + int(c-'0')
			digits++
			if v > 255 {
				return netip.Addr{}, false
			}
		case c == '.' && digits > 0 && k < 3 && i < len(b)-1:
			ip[k] = byte(v)
			k, v, digits = k+1, 0, 0
		default:
			return netip.Addr{}, false
		}
	}
	if k != 3 || digits == 0 {
		return netip.Addr{}, false
	}
	ip[3] = byte(v)
	return netip.AddrFrom4(ip), true
}

// Times outside years 0 to 9999 have no RFC 3339 form.
var (
	minTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

func leafTimestamp(st *state, f *schema, ni int32) error {
	n := &st.nodes[ni]
	var t time.Time
	switch n.kind {
	case kindString:
		b := st.str(n)
		if t, ok := canonicalTime(b); ok {
			// Already as written below: no need to parse and format it.
			st.setTime(t)
			st.out = append(st.out, '"')
			st.out = append(st.out, b...)
			st.out = append(st.out, '"')
			return nil
		}
		var err error
		t, err = time.Parse(time.RFC3339, string(b))
		if err != nil {
			return st.fieldErr(quoteValue(b) + " is not an RFC 3339 time")
		}
	case kindNumber:
		lit := st.src[n.v0:n.v1]
		var ok bool
		if t, ok = epochMillis(lit, n.isInt); !ok {
			return st.fieldErr(quoteValue(lit) + " is out of range for milliseconds since 1970")
		}
	default:
		return st.typeErr(f, n.kind)
	}
	t = t.UTC()
	if t.Before(minTime) || !t.Before(maxTime) {
		return st.fieldErr(t.Format(time.RFC3339Nano) + " is outside years 0000 to 9999")
	}
	st.setTime(t)
	var text [40]byte
	st.out = append(st.out, '"')
	st.out = append(st.out, t.AppendFormat(text[:0], time.RFC3339Nano)...)
	st.out = append(st.out, '"')
	return nil
}

// epochMillis converts a number of milliseconds since 1970 to a time, exactly
// for integers and to the nanosecond otherwise.
func epochMillis(lit []byte, isInt bool) (time.Time, bool) {
	const limit = 1e15 // milliseconds: about 31,700 years
	if isInt {
		v, ok := parseInt(lit)
		if !ok || v > limit || v < -limit {
			return time.Time{}, false
		}
		return time.UnixMilli(v), true
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil || math.IsNaN(v) || v > limit || v < -limit {
		return time.Time{}, false
	}
	ms := math.Floor(v)
	ns := math.Round((v - ms) * 1e6)
	return time.UnixMilli(int64(ms)).Add(time.Duration(ns)), true
}
