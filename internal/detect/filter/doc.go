package filter

import (
	"bytes"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
)

// Limits of the flattening of one event's canonical JSON. An event beyond
// them is matched on what was read before the limit: the fields past it are
// absent. event.Parse already bounds events far below these for real input;
// they protect against a hand-built Event.
const (
	maxDocEntries = 4096 // leaf values kept per event
	maxDocDepth   = 64   // nesting of objects and arrays
)

// valueKind is the JSON type of a value as a filter sees it.
type valueKind uint8

const (
	kString valueKind = iota
	kNumber
	kBool
	kAddr // source.ip from the indexed field: the address, text on demand
)

// value is one value of a field in one event.
type value struct {
	kind   valueKind
	s      string // text; for kAddr only once textOK
	textOK bool
	lazy   bool // in a Doc entry: s is still bytes [b0, b1) of the canonical JSON
	b0, b1 int32
	num    float64 // kNumber from an indexed integer field
	numOK  int8    // 0 not tried, 1 parsed, -1 not a number
	addr   netip.Addr
}

// text returns the value as text: strings as they are, numbers as written,
// booleans as true or false, addresses in canonical form.
func (v *value) text() string {
	if !v.textOK {
		switch v.kind {
		case kAddr:
			v.s = v.addr.String()
		case kNumber:
			v.s = strconv.FormatFloat(v.num, 'f', -1, 64)
		}
		v.textOK = true
	}
	return v.s
}

// number returns the value as a number when it is one: a JSON number, or a
// string holding a decimal number ("42", "-1.5").
func (v *value) number() (float64, bool) {
	if v.numOK == 0 {
		v.numOK = -1
		if v.kind == kNumber || v.kind == kString {
			if f, ok := parseNumber(v.s); ok {
				v.num, v.numOK = f, 1
			}
		}
	}
	return v.num, v.numOK == 1
}

// address returns the value as an IP address when it is one.
func (v *value) address() (netip.Addr, bool) {
	switch v.kind {
	case kAddr:
		return v.addr, true
	case kString:
		if len(v.s) < 2 || len(v.s) > 64 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(v.s)
		return a, err == nil
	}
	return netip.Addr{}, false
}

// parseNumber reads a decimal number: digits with an optional sign, fraction
// and exponent. Hex, "inf", "nan" and underscores are not numbers here.
func parseNumber(s string) (float64, bool) {
	if s == "" || len(s) > 64 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

// entry is one leaf value of the canonical JSON under its dotted path.
type entry struct {
	p0, p1 int32  // path: bytes [p0, p1) of Doc.paths
	next   int32  // next entry in the same hash bucket, -1 at the end
	hash   uint32 // of the path (hashString)
	v      value
}

// Doc gives filters access to the fields of one event by ECS dotted name.
// Indexed fields (event.action, source.ip, user.name, ...) are read from the
// Event's struct fields; every other field is read from the canonical JSON,
// which is flattened at most once per event, on the first access that needs
// it. A Doc is reused from event to event with Reset; it is not safe for
// concurrent use.
//
// Conventions shared by every operator: a JSON null and an empty string are
// absent; an array gives the field several values (arrays of objects give
// each member's fields several values); a condition holds when one of the
// values satisfies it.
type Doc struct {
	ev      *event.Event
	flat    bool
	cur     []byte // path of the value being read while flattening
	paths   []byte // paths of entries
	entries []entry
	buckets []int32 // hash index of entries by path
	scratch []value
	url     string // synthesized url.original, once built
	urlDone bool
	low     []byte // lowerASCII's buffer
	lowOf   string // the string low holds, lower-cased
	lowOK   bool
	lowASCI bool
}

// lowerASCII returns s with ASCII letters lower-cased, in a buffer valid
// until the next call, and whether s is all ASCII (when it is not, the
// bytes are not meaningful). The last result is reused for the same string.
func (d *Doc) lowerASCII(s string) ([]byte, bool) {
	if d.lowOK && s == d.lowOf {
		return d.low, d.lowASCI
	}
	b := d.low[:0]
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	d.low, d.lowOf, d.lowOK, d.lowASCI = b, s, true, ascii
	return b, ascii
}

// NewDoc returns a Doc for e.
func NewDoc(e *event.Event) *Doc {
	d := &Doc{}
	d.Reset(e)
	return d
}

// Reset points d at another event, forgetting what it read of the previous one.
func (d *Doc) Reset(e *event.Event) {
	d.ev = e
	d.flat = false
	d.cur = d.cur[:0]
	d.paths = d.paths[:0]
	d.entries = d.entries[:0]
	d.buckets = d.buckets[:0]
	d.url, d.urlDone = "", false
	d.lowOK, d.lowOf = false, ""
}

// Event returns the event d reads.
func (d *Doc) Event() *event.Event { return d.ev }

// fastField names the indexed fields of event.Event.
type fastField uint8

const (
	fastNone fastField = iota
	fastID
	fastKind
	fastAction
	fastOutcome
	fastSeverity
	fastSourceIP
	fastUserID
	fastUserName
	fastMethod
	fastPath
	fastStatus
	fastRequestID
	fastService
	fastHost
	fastMessage
	fastRelated
	fastTimestamp
)

// fastFields maps dotted names to indexed fields. event.category is not
// here: the struct keeps only its first value.
var fastFields = map[string]fastField{
	"event.id":                  fastID,
	"event.kind":                fastKind,
	"event.action":              fastAction,
	"event.outcome":             fastOutcome,
	"event.severity":            fastSeverity,
	"source.ip":                 fastSourceIP,
	"user.id":                   fastUserID,
	"user.name":                 fastUserName,
	"http.request.method":       fastMethod,
	"url.path":                  fastPath,
	"http.response.status_code": fastStatus,
	"http.request.id":           fastRequestID,
	"service.name":              fastService,
	"host.name":                 fastHost,
	"message":                   fastMessage,
	"related.objects":           fastRelated,
	"@timestamp":                fastTimestamp,
}

// values returns the values of field name, in scratch space valid until the
// next call.
func (d *Doc) values(name string, hash uint32, fast fastField) []value {
	out := d.scratch[:0]
	if d.ev == nil {
		return out
	}
	e := d.ev
	str := func(s string) []value {
		if s == "" {
			return out
		}
		return append(out, value{kind: kString, s: s, textOK: true})
	}
	switch fast {
	case fastID:
		out = str(e.ID)
	case fastKind:
		out = str(e.Kind)
	case fastAction:
		out = str(e.Action)
	case fastOutcome:
		out = str(e.Outcome)
	case fastUserID:
		out = str(e.UserID)
	case fastUserName:
		out = str(e.UserName)
	case fastMethod:
		out = str(e.Method)
	case fastPath:
		out = str(e.Path)
	case fastRequestID:
		out = str(e.RequestID)
	case fastService:
		out = str(e.Service)
	case fastHost:
		out = str(e.Host)
	case fastMessage:
		out = str(e.Message)
	case fastSourceIP:
		if e.SourceIP.IsValid() {
			out = append(out, value{kind: kAddr, addr: e.SourceIP})
		}
	case fastStatus:
		if e.Status != 0 {
			out = append(out, value{kind: kNumber, num: float64(e.Status), numOK: 1})
		}
	case fastSeverity:
		if e.Severity != 0 {
			out = append(out, value{kind: kNumber, num: float64(e.Severity), numOK: 1})
		} else {
			out = d.slow(out, name, hash) // 0 may be absent or a real 0
		}
	case fastRelated:
		for _, r := range e.Related {
			out = str(r)
		}
	case fastTimestamp:
		if !e.Time.IsZero() {
			out = str(e.Time.UTC().Format("2006-01-02T15:04:05.999999999Z07:00"))
		}
	default:
		out = d.slow(out, name, hash)
	}
	d.scratch = out
	return out
}

// slow appends the values of name found in the canonical JSON; hash is
// hashString(name).
func (d *Doc) slow(out []value, name string, hash uint32) []value {
	d.flatten()
	n := len(out)
	if len(d.buckets) > 0 {
		for i := d.buckets[hash&uint32(len(d.buckets)-1)]; i >= 0; i = d.entries[i].next {
			en := &d.entries[i]
			if en.hash == hash && int(en.p1-en.p0) == len(name) && string(d.paths[en.p0:en.p1]) == name {
				if en.v.lazy {
					en.v.s, en.v.lazy = string(d.ev.Canonical[en.v.b0:en.v.b1]), false
				}
				out = append(out, en.v)
			}
		}
	}
	if len(out) == n && name == "url.original" {
		if u := d.urlOriginal(); u != "" {
			out = append(out, value{kind: kString, s: u, textOK: true})
		}
	}
	return out
}

// urlOriginal builds url.original from url.path and url.query when the event
// has no url.original of its own, so that rules written against whole URLs
// (Sigma's c-uri) work on events that split them.
func (d *Doc) urlOriginal() string {
	if d.urlDone {
		return d.url
	}
	d.urlDone = true
	path := d.ev.Path
	var query string
	var buf [1]value
	if q := d.slow(buf[:0], "url.query", urlQueryHash); len(q) > 0 && q[0].kind == kString {
		query = q[0].s
	}
	switch {
	case path == "" && query == "":
	case query == "":
		d.url = path
	default:
		d.url = path + "?" + query
	}
	return d.url
}

var urlQueryHash = hashString("url.query")

// flatten reads the canonical JSON into entries, once.
func (d *Doc) flatten() {
	if d.flat {
		return
	}
	d.flat = true
	if d.ev == nil || len(d.ev.Canonical) == 0 {
		return
	}
	w := walker{d: d, s: d.ev.Canonical, h: fnvOffset}
	w.skipSpace()
	if w.i < len(w.s) && w.s[w.i] == '{' {
		w.object(0)
	}
	d.index()
}

// index builds the hash index of entries by path.
func (d *Doc) index() {
	n := 16
	for n < 2*len(d.entries) {
		n *= 2
	}
	if cap(d.buckets) >= n {
		d.buckets = d.buckets[:n]
	} else {
		d.buckets = make([]int32, n)
	}
	for i := range d.buckets {
		d.buckets[i] = -1
	}
	mask := uint32(n - 1)
	for i := len(d.entries) - 1; i >= 0; i-- {
		en := &d.entries[i]
		h := en.hash & mask
		en.next = d.buckets[h]
		d.buckets[h] = int32(i)
	}
}

// FNV-1a, which can be continued: the hash of a dotted path is built a
// member name at a time while flattening.
const fnvOffset = uint32(2166136261)

func fnvAdd(h uint32, b []byte) uint32 {
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	return h
}

func hashString(s string) uint32 {
	h := fnvOffset
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

// walker flattens JSON text. It never fails: on malformed input it stops and
// keeps what it read.
type walker struct {
	d   *Doc
	s   []byte
	i   int
	h   uint32 // hash of the current path, d.cur
	bad bool
}

func (w *walker) skipSpace() {
	for w.i < len(w.s) {
		switch w.s[w.i] {
		case ' ', '\t', '\n', '\r':
			w.i++
		default:
			return
		}
	}
}

func (w *walker) peek() byte {
	w.skipSpace()
	if w.i >= len(w.s) {
		w.bad = true
		return 0
	}
	return w.s[w.i]
}

// object reads an object starting at '{'; the current path (d.cur) is its
// own path.
func (w *walker) object(depth int) {
	if depth >= maxDocDepth {
		w.bad = true
		return
	}
	w.i++ // '{'
	base := len(w.d.cur)
	hBase := w.h
	if w.peek() == '}' {
		w.i++
		return
	}
	for !w.bad {
		if w.peek() != '"' {
			w.bad = true
			return
		}
		k0, k1, esc, ok := w.str()
		if !ok {
			return
		}
		w.d.cur = w.d.cur[:base]
		if base > 0 {
			w.d.cur = append(w.d.cur, '.')
		}
		if esc == "" {
			w.d.cur = append(w.d.cur, w.s[k0:k1]...)
		} else {
			w.d.cur = append(w.d.cur, esc...)
		}
		w.h = fnvAdd(hBase, w.d.cur[base:])
		if w.peek() != ':' {
			w.bad = true
			return
		}
		w.i++
		w.value(depth + 1)
		w.d.cur = w.d.cur[:base]
		w.h = hBase
		switch w.peek() {
		case ',':
			w.i++
		case '}':
			w.i++
			return
		default:
			w.bad = true
			return
		}
	}
}

func (w *walker) array(depth int) {
	if depth >= maxDocDepth {
		w.bad = true
		return
	}
	w.i++ // '['
	if w.peek() == ']' {
		w.i++
		return
	}
	for !w.bad {
		w.value(depth + 1)
		switch w.peek() {
		case ',':
			w.i++
		case ']':
			w.i++
			return
		default:
			w.bad = true
			return
		}
	}
}

// value reads one value under the current path.
func (w *walker) value(depth int) {
	c := w.peek()
	if w.bad {
		return
	}
	switch {
	case c == '{':
		w.object(depth)
	case c == '[':
		w.array(depth)
	case c == '"':
		v0, v1, esc, ok := w.str()
		switch {
		case !ok:
		case esc != "":
			w.add(value{kind: kString, s: esc, textOK: true})
		case v1 > v0:
			w.add(value{kind: kString, textOK: true, lazy: true, b0: int32(v0), b1: int32(v1)})
		}
	case c == 't' && bytes.HasPrefix(w.s[w.i:], []byte("true")):
		w.i += 4
		w.add(value{kind: kBool, s: "true", textOK: true})
	case c == 'f' && bytes.HasPrefix(w.s[w.i:], []byte("false")):
		w.i += 5
		w.add(value{kind: kBool, s: "false", textOK: true})
	case c == 'n' && bytes.HasPrefix(w.s[w.i:], []byte("null")):
		w.i += 4
	case c == '-' || c >= '0' && c <= '9':
		j := w.i
		for j < len(w.s) && strings.IndexByte("+-.eE0123456789", w.s[j]) >= 0 {
			j++
		}
		w.add(value{kind: kNumber, textOK: true, lazy: true, b0: int32(w.i), b1: int32(j)})
		w.i = j
	default:
		w.bad = true
	}
}

func (w *walker) add(v value) {
	d := w.d
	if len(d.entries) >= maxDocEntries {
		w.bad = true
		return
	}
	// Each entry keeps a copy of its path; array elements share the copy of
	// the element before them.
	p0 := int32(len(d.paths))
	if n := len(d.entries); n > 0 {
		last := &d.entries[n-1]
		if last.hash == w.h && string(d.paths[last.p0:last.p1]) == string(d.cur) {
			d.entries = append(d.entries, entry{p0: last.p0, p1: last.p1, hash: w.h, v: v})
			return
		}
	}
	d.paths = append(d.paths, d.cur...)
	d.entries = append(d.entries, entry{p0: p0, p1: int32(len(d.paths)), hash: w.h, v: v})
}

// str reads a JSON string at '"'. Without escapes it returns the bounds of
// its text; with escapes, the unescaped text in esc.
func (w *walker) str() (v0, v1 int, esc string, ok bool) {
	w.i++ // '"'
	start := w.i
	for w.i < len(w.s) {
		w.i = event.SkipPlain(w.s, w.i)
		if w.i >= len(w.s) {
			break
		}
		c := w.s[w.i]
		switch {
		case c == '"':
			w.i++
			return start, w.i - 1, "", true
		case c == '\\':
			s, ok := w.strEscaped(start)
			if ok && s == "" {
				return start, start, "", true
			}
			return 0, 0, s, ok
		case c < 0x20:
			w.bad = true
			return 0, 0, "", false
		}
		w.i++
	}
	w.bad = true
	return 0, 0, "", false
}

// strEscaped finishes reading a string with escapes, from start.
func (w *walker) strEscaped(start int) (string, bool) {
	var b strings.Builder
	b.Write(w.s[start:w.i])
	for w.i < len(w.s) {
		c := w.s[w.i]
		switch {
		case c == '"':
			w.i++
			return b.String(), true
		case c < 0x20:
			w.bad = true
			return "", false
		case c != '\\':
			b.WriteByte(c)
			w.i++
			continue
		}
		if w.i+1 >= len(w.s) {
			break
		}
		e := w.s[w.i+1]
		w.i += 2
		switch e {
		case '"', '\\', '/':
			b.WriteByte(e)
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			r, ok := w.hex4()
			if !ok {
				w.bad = true
				return "", false
			}
			if r >= 0xD800 && r < 0xDC00 && bytes.HasPrefix(w.s[w.i:], []byte(`\u`)) {
				save := w.i
				w.i += 2
				if lo, ok := w.hex4(); ok && lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000
				} else {
					w.i = save
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			b.WriteRune(r)
		default:
			w.bad = true
			return "", false
		}
	}
	w.bad = true
	return "", false
}

func (w *walker) hex4() (rune, bool) {
	if w.i+4 > len(w.s) {
		return 0, false
	}
	var r rune
	for _, c := range w.s[w.i : w.i+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	w.i += 4
	return r, true
}
