package event

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"slices"
	"time"
	"unicode/utf8"
)

// The verbatim route is for events already in canonical form, as the store
// keeps them (ParseStored) and as a sender may write them: one pass checks
// that every key, string, number and known field is written exactly as the
// general route would write it, fills the fields of Event on the way, and
// the canonical bytes are the input with the fields Vigil sets spliced in:
// event.ingested and vigil.schema replaced or inserted, and @timestamp,
// event.id and event.kind inserted when missing.
//
// The layout of the last events checked (vplan: the bytes around their leaf
// values) is kept, for a layout seen twice running; an event with the same
// layout is checked by comparing those bytes and checking its values only.
//
// Like the flat route, it never reports an error: on anything else (a space,
// a key out of order or with a dot that would split, an escape written
// another way, a known field to normalize or refuse, a limit) it gives up and
// Parse takes another route. FuzzParseRoutes checks that it agrees with the
// general route.

// leafCheck says how the verbatim route checks a known leaf.
type leafCheck uint8

const (
	checkNone leafCheck = iota
	checkString
	checkTimestamp
	checkEventID
	checkCategory
	checkOutcome
	checkSeverity
	checkDuration
	checkIP
	checkPort
	checkMethod
	checkStatus
	checkRelated
	checkLabel
)

// Objects holding synthetic fields.
type objRole uint8

const (
	rolePlain objRole = iota
	roleTop
	roleEvent // event, in the top object
	roleVigil // vigil, in the top object
)

// The splices that insert a whole object rather than one field.
const (
	spliceEvent = numSynth + iota
	spliceVigil
)

// slot is a member of an object with a role that the verbatim route
// inserts when missing, or replaces.
type slot struct {
	pfx      uint64 // segPrefix of key
	key      string
	what     int     // the synthetic field, or spliceEvent, spliceVigil
	override bool    // the sender's value is replaced
	role     objRole // for spliceEvent, spliceVigil: the role of the object
}

var roleSlots = func() [4][]slot {
	r := [...][]slot{
		roleTop:   {{key: "@timestamp", what: synthTimestamp}, {key: "event", what: spliceEvent, role: roleEvent}, {key: "vigil", what: spliceVigil, role: roleVigil}},
		roleEvent: {{key: "id", what: synthID}, {key: "ingested", what: synthIngested, override: true}, {key: "kind", what: synthKind}},
		roleVigil: {{key: "schema", what: synthSchema, override: true}},
	}
	for _, slots := range r {
		for i := range slots {
			slots[i].pfx = segPrefix([]byte(slots[i].key))
		}
	}
	return r
}()

// Where a splice puts its comma.
const (
	commaNone   = iota
	commaAfter  // inserted before a member
	commaBefore // inserted after a member
)

// splice is one change to the input: src[pos:end] replaced by the value of
// what, or, when pos == end, a member inserted there.
type splice struct {
	pos, end int32
	what     int8
	comma    int8
}

var spliceKeys = [...]string{
	synthTimestamp: `"@timestamp":`,
	synthID:        `"id":`,
	synthKind:      `"kind":`,
	synthIngested:  `"ingested":`,
	synthSchema:    `"schema":`,
	spliceEvent:    `"event":`,
	spliceVigil:    `"vigil":`,
}

// writeVerbatim writes the canonical form of an input already in it, and
// reports whether it did, and by a layout seen before; with layouts false,
// no layout is used or kept. When it did not, the writer must be reset.
func (st *state) writeVerbatim(layouts bool) (ok, replayed bool) {
	src := st.src
	i, j := 0, len(src)
	for i < j && isSpace(src[i]) {
		i++
	}
	for j > i && isSpace(src[j-1]) {
		j--
	}
	if j-i < 2 || src[i] != '{' {
		return false, false
	}
	// What follows the object is not read: everything checked is before j,
	// the end of the object, which the checks must reach exactly.
	ok, replayed = st.checkVerbatim(i, j, layouts)
	if !ok {
		return false, false
	}
	pos := int32(i)
	for _, sp := range st.splices {
		st.out = append(st.out, src[pos:sp.pos]...)
		if sp.comma == commaBefore {
			st.out = append(st.out, ',')
		}
		if sp.pos == sp.end {
			st.out = append(st.out, spliceKeys[sp.what]...)
		}
		switch int(sp.what) {
		case spliceEvent:
			st.out = append(st.out, `{"id":`...)
			st.writeSynth(synthID)
			st.out = append(st.out, `,"ingested":`...)
			st.writeSynth(synthIngested)
			st.out = append(st.out, `,"kind":`...)
			st.writeSynth(synthKind)
			st.out = append(st.out, '}')
		case spliceVigil:
			st.out = append(st.out, `{"schema":`...)
			st.writeSynth(synthSchema)
			st.out = append(st.out, '}')
		default:
			st.writeSynth(int(sp.what))
		}
		if sp.comma == commaAfter {
			st.out = append(st.out, ',')
		}
		pos = sp.end
	}
	st.out = append(st.out, src[pos:j]...)
	return true, replayed
}

// checkVerbatim checks that the object src[i:j] is canonical, by the layout
// of an event seen before when it has one, and records the splices.
func (st *state) checkVerbatim(i, j int, layouts bool) (ok, replayed bool) {
	for k, p := range st.vplans {
		if !layouts || p == nil || p.depth > st.lim.MaxDepth {
			continue
		}
		st.splices = st.splices[:0]
		st.ts0 = -1
		if st.replay(p, i, j) && st.timeOK() {
			copy(st.vplans[1:k+1], st.vplans[:k])
			st.vplans[0] = p
			return true, true
		}
		st.resetWriter()
	}
	// Check it all, recording its layout.
	st.splices = st.splices[:0]
	r := &st.vrec
	r.on, r.last, r.depth = true, i, 1
	r.tmpl, r.steps, r.ins = r.tmpl[:0], r.steps[:0], r.ins[:0]
	st.ts0 = -1
	end, ok := st.vObject(i, rootSchema, 1, roleTop)
	r.on = false
	if !ok || end != j || !st.timeOK() {
		return false, false
	}
	r.tmpl = append(r.tmpl, st.src[r.last:j]...)
	if layouts && len(r.tmpl) <= maxPlanShape && len(r.steps) <= maxPlanLeaves {
		// Kept when seen twice running, as the plans of flat.go.
		h := maphash.Bytes(shapeSeed, r.tmpl)
		if st.vseen == h {
			st.vplans[len(st.vplans)-1] = nil
			copy(st.vplans[1:], st.vplans[:len(st.vplans)-1])
			b := bytes.Clone(r.tmpl)
			st.vplans[0] = &vplan{tmpl: b, steps: slices.Clone(r.steps), ins: slices.Clone(r.ins), depth: r.depth}
		}
		st.vseen = h
	}
	return true, false
}

// timeOK reads the @timestamp found, if any: it must be as the canonical
// form writes it.
func (st *state) timeOK() bool {
	if st.ts0 < 0 {
		return true
	}
	t, ok := canonicalTime(st.src[st.ts0:st.ts1])
	st.setTime(t)
	return ok
}

// vplan is the layout of a canonical event: the bytes around its leaf
// values (anything but an object where the event's objects are, arrays
// whole), and how to check each of those values. Events of the same layout
// are checked by comparing those bytes and checking the values, without
// looking at their keys again.
type vplan struct {
	tmpl  []byte
	steps []vstep
	ins   []vins // the insertions, in order
	depth int    // depth of the deepest object, inserted ones included
}

// vstep checks the template bytes up to t1, then one value.
type vstep struct {
	t1    int32
	depth int32   // of the object holding the value
	what  int8    // the synthetic field whose value this replaces, or -1
	f     *schema // the value's schema, with a check; nil: any canonical value
}

// vins is an insertion at offset at of the template. An insertion is never
// at the end of a bit of template (just before a value); one at the start of
// a bit (a '}' just after a value) belongs to that bit.
type vins struct {
	at          int32
	what, comma int8
}

// vrecord is a layout being recorded.
type vrecord struct {
	on    bool
	last  int // end of the last value recorded, in the input
	depth int
	tmpl  []byte
	steps []vstep
	ins   []vins
}

// leafStep records the template bytes up to the value at i, and its check.
func (r *vrecord) leafStep(src []byte, i int, f *schema, depth int, what int) {
	r.tmpl = append(r.tmpl, src[r.last:i]...)
	r.steps = append(r.steps, vstep{t1: int32(len(r.tmpl)), depth: int32(depth), what: int8(what), f: f})
}

// replay checks the object src[i:j] by a layout.
func (st *state) replay(p *vplan, i, j int) bool {
	src := st.src
	pos, t0 := i, int32(0)
	ins := p.ins
	seg := func(t1 int32) bool {
		b := p.tmpl[t0:t1]
		if len(src)-pos < len(b) || string(src[pos:pos+len(b)]) != string(b) {
			return false
		}
		for len(ins) > 0 && ins[0].at < t1 {
			at := int32(pos) + ins[0].at - t0
			st.splices = append(st.splices, splice{pos: at, end: at, what: ins[0].what, comma: ins[0].comma})
			ins = ins[1:]
		}
		pos += len(b)
		t0 = t1
		return true
	}
	for k := range p.steps {
		s := &p.steps[k]
		if !seg(s.t1) {
			return false
		}
		var ok bool
		v0 := pos
		switch {
		case s.what >= 0:
			pos, ok = st.vValue(pos, nil, int(s.depth))
			st.splices = append(st.splices, splice{pos: int32(v0), end: int32(pos), what: s.what})
		case s.f != nil:
			pos, ok = st.vLeaf(pos, s.f, int(s.depth))
		case pos < len(src) && src[pos] == '"':
			pos, _, ok = st.vString(pos)
		default:
			pos, ok = st.vValue(pos, nil, int(s.depth))
		}
		if !ok {
			return false
		}
	}
	return seg(int32(len(p.tmpl))) && pos == j
}

// insert records the insertion of the member for a slot at pos; objects are
// inserted only within the depth limit.
func (st *state) insert(s *slot, pos int, comma int8, depth int) bool {
	if s.what >= numSynth && depth+1 > st.lim.MaxDepth {
		return false
	}
	st.splices = append(st.splices, splice{pos: int32(pos), end: int32(pos), what: int8(s.what), comma: comma})
	if r := &st.vrec; r.on {
		r.ins = append(r.ins, vins{at: int32(len(r.tmpl) + pos - r.last), what: int8(s.what), comma: comma})
		if s.what >= numSynth {
			r.depth = max(r.depth, depth+1)
		}
	}
	return true
}

// vObject checks the object at i, at depth, whose schema is f, and returns
// the offset after it.
func (st *state) vObject(i int, f *schema, depth int, role objRole) (int, bool) {
	src := st.src
	if depth > st.lim.MaxDepth {
		return 0, false
	}
	if st.vrec.on {
		st.vrec.depth = max(st.vrec.depth, depth)
	}
	var slots []slot
	if role != rolePlain {
		slots = roleSlots[role]
	}
	var kids []namedSchema
	var anyF *schema
	if f != nil {
		kids, anyF = f.kids, f.any
	}
	i++ // '{'
	if i >= len(src) {
		return 0, false
	}
	members := 0
	if src[i] != '}' {
		prev0, prev1, prevPfx := 0, 0, uint64(0)
		for {
			if i >= len(src) || src[i] != '"' {
				return 0, false
			}
			// Most keys are short and plain: their end is in the first
			// eight bytes, which also give their prefix.
			k0, k1 := i+1, -1
			var pfx uint64
			if k0+8 <= len(src) {
				w := binary.LittleEndian.Uint64(src[k0:])
				if m := keyMask(w); m != 0 {
					if n := bits.TrailingZeros64(m) >> 3; src[k0+n] == '"' {
						k1 = k0 + n
						pfx = bits.ReverseBytes64(w) &^ (^uint64(0) >> (8 * n))
					}
				}
			}
			if k1 < 0 {
				var ok bool
				if k1, pfx, ok = st.vKey(i); !ok {
					return 0, false
				}
			}
			key := src[k0:k1]
			if members > 0 && (pfx < prevPfx || pfx == prevPfx && cmpKeys(prevPfx, string(src[prev0:prev1]), pfx, key) >= 0) {
				return 0, false
			}
			prev0, prev1, prevPfx = k0, k1, pfx
			i = k1 + 1
			if i >= len(src) || src[i] != ':' {
				return 0, false
			}
			i++
			var sl *slot
			for len(slots) > 0 {
				c := cmpKeys(slots[0].pfx, slots[0].key, pfx, key)
				if c > 0 {
					break
				}
				if c == 0 {
					sl = &slots[0]
					slots = slots[1:]
					break
				}
				if !st.insert(&slots[0], k0-1, commaAfter, depth) {
					return 0, false
				}
				slots = slots[1:]
			}
			cf := anyF
			for len(kids) > 0 && kids[0].pfx <= pfx {
				c := cmpKeys(kids[0].pfx, kids[0].name, pfx, key)
				if c > 0 {
					break
				}
				if c == 0 {
					cf = kids[0].f
					kids = kids[1:]
					break
				}
				kids = kids[1:]
			}
			if i >= len(src) {
				return 0, false
			}
			var ok bool
			switch {
			case sl != nil && sl.what >= numSynth:
				if src[i] != '{' {
					return 0, false
				}
				i, ok = st.vObject(i, cf, depth+1, sl.role)
			case (sl == nil || !sl.override) && src[i] == '{' && (cf == nil || cf.check == checkNone):
				i, ok = st.vObject(i, cf, depth+1, rolePlain)
			default:
				// A leaf value: recorded as such, and checked without
				// recording what it holds.
				r := &st.vrec
				on := r.on
				if on {
					what := -1
					f := cf
					if sl != nil && sl.override {
						what, f = sl.what, nil
					}
					r.leafStep(src, i, f, depth, what)
					r.on = false
				}
				v0 := i
				switch {
				case sl != nil && sl.override:
					i, ok = st.vValue(i, nil, depth)
					st.splices = append(st.splices, splice{pos: int32(v0), end: int32(i), what: int8(sl.what)})
				case cf != nil:
					if cf.check == checkNone {
						return 0, false // a known object that is not one
					}
					i, ok = st.vLeaf(i, cf, depth)
				case src[i] == '"':
					i, _, ok = st.vString(i)
				default:
					i, ok = st.vValue(i, nil, depth)
				}
				if on {
					r.on, r.last = true, i
				}
			}
			if !ok || i >= len(src) {
				return 0, false
			}
			members++
			if src[i] == ',' {
				i++
				continue
			}
			if src[i] == '}' {
				break
			}
			return 0, false
		}
	}
	for k := range slots {
		comma := int8(commaBefore)
		if members == 0 && k == 0 {
			comma = commaNone
		}
		if !st.insert(&slots[k], i, comma, depth) {
			return 0, false
		}
	}
	return i + 1, true
}

// cmpKeys compares two keys without a zero byte, given their segPrefix.
// Equal prefixes mean equal keys when either is shorter than 8 bytes.
func cmpKeys(pa uint64, a string, pb uint64, b []byte) int {
	switch {
	case pa < pb:
		return -1
	case pa > pb:
		return 1
	case len(a) < 8 || len(b) < 8:
		return 0
	case a[8:] == string(b[8:]):
		return 0
	case a[8:] < string(b[8:]):
		return -1
	}
	return 1
}

// vKey checks the key at i, its opening quote: a canonical string without
// escapes, and without a dot that would split it. It returns the offset of
// its closing quote and the key's first 8 bytes, as segPrefix.
func (st *state) vKey(i int) (int, uint64, bool) {
	src := st.src
	if i >= len(src) || src[i] != '"' {
		return 0, 0, false
	}
	start := i + 1
	if start+8 <= len(src) {
		// Most keys are short and plain: their end is in the first eight bytes.
		w := binary.LittleEndian.Uint64(src[start:])
		if m := keyMask(w); m != 0 {
			n := bits.TrailingZeros64(m) >> 3
			if src[start+n] == '"' {
				return start + n, bits.ReverseBytes64(w) &^ (^uint64(0) >> (8 * n)), true
			}
		}
	}
	prevDot, dots, emptySeg := start-1, 0, false
	for j := start; j < len(src); {
		c := src[j]
		if !keyStop[c] {
			j++
			continue
		}
		switch {
		case c == '.':
			if j == prevDot+1 {
				emptySeg = true
			}
			prevDot, dots = j, dots+1
			j++
		case c == '"':
			if dots > 0 && prevDot == j-1 {
				emptySeg = true
			}
			return j, segPrefix(src[start:j]), dots == 0 || emptySeg
		case c < utf8.RuneSelf:
			return 0, 0, false // an escape or a control character
		default:
			size, ok := canonicalRune(src[j:])
			if !ok {
				return 0, 0, false
			}
			j += size
		}
	}
	return 0, 0, false
}

// keyStop is strStop with the dot, for keys.
var keyStop = func() [256]bool {
	t := strStop
	t['.'] = true
	return t
}()

// canonicalRune checks the multi-byte rune at the start of b: valid UTF-8,
// and neither U+2028 nor U+2029, which the canonical form escapes.
func canonicalRune(b []byte) (int, bool) {
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
		return 0, false
	}
	return size, true
}

// vString checks the string at i, its opening quote, and returns the offset
// after it and whether it has escapes.
func (st *state) vString(i int) (end int, esc, ok bool) {
	src := st.src
	if i >= len(src) || src[i] != '"' {
		return 0, false, false
	}
	for j := i + 1; j < len(src); {
		if j+8 <= len(src) {
			m := strMask(binary.LittleEndian.Uint64(src[j:]))
			if m == 0 {
				j += 8
				continue
			}
			j += bits.TrailingZeros64(m) >> 3
		}
		c := src[j]
		if !strStop[c] {
			j++
			continue
		}
		switch {
		case c == '"':
			return j + 1, esc, true
		case c == '\\':
			n := canonicalEscape(src[j:])
			if n == 0 {
				return 0, false, false
			}
			esc = true
			j += n
		case c < utf8.RuneSelf:
			return 0, false, false // a control character
		default:
			size, ok := canonicalRune(src[j:])
			if !ok {
				return 0, false, false
			}
			j += size
		}
	}
	return 0, false, false
}

// canonicalEscape returns the length of the escape at the start of b when it
// is written as appendString writes it, else 0.
func canonicalEscape(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', 'n', 'r', 't':
		return 2
	case 'u':
		if len(b) < 6 {
			return 0
		}
		if b[2] == '2' && b[3] == '0' && b[4] == '2' && (b[5] == '8' || b[5] == '9') {
			return 6
		}
		if b[2] != '0' || b[3] != '0' || (b[4] != '0' && b[4] != '1') {
			return 0
		}
		c := b[5]
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			return 0
		}
		if b[4] == '1' {
			c += 16
		}
		if c == '\n' || c == '\r' || c == '\t' {
			return 0
		}
		return 6
	}
	return 0
}

// unescape appends the bytes of a canonical string's content with escapes.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			if s[i+2] == '2' {
				dst = append(dst, 0xe2, 0x80, 0xa8+(s[i+5]-'8'))
			} else {
				r, _ := hex4(s[i+2:])
				dst = append(dst, byte(r))
			}
			i += 6
			continue
		default: // '"', '\\'
			dst = append(dst, s[i+1])
		}
		i += 2
	}
	return dst
}

// vStr checks a string at i, and returns the offset after it and where its
// decoded bytes are.
func (st *state) vStr(i int) (int, strRef, bool) {
	end, esc, ok := st.vString(i)
	if !ok {
		return 0, strRef{}, false
	}
	if !esc {
		return end, strRef{start: int32(i + 1), end: int32(end - 1), set: true, src: true}, true
	}
	e0 := len(st.escs)
	st.escs = unescape(st.escs, st.src[i+1:end-1])
	return end, strRef{start: int32(e0), end: int32(len(st.escs)), set: true, esc: true}, true
}

// refBytes returns the bytes a strRef of the verbatim route points to.
func (st *state) refBytes(r strRef) []byte {
	if r.esc {
		return st.escs[r.start:r.end]
	}
	return st.src[r.start:r.end]
}

// vValue checks the value at i of a member of an object, or of an array, at
// depth, whose schema is f.
func (st *state) vValue(i int, f *schema, depth int) (int, bool) {
	src := st.src
	if i >= len(src) {
		return 0, false
	}
	if f != nil {
		if f.check != checkNone {
			return st.vLeaf(i, f, depth)
		}
		if src[i] != '{' {
			return 0, false
		}
		return st.vObject(i, f, depth+1, rolePlain)
	}
	switch c := src[i]; c {
	case '{':
		return st.vObject(i, nil, depth+1, rolePlain)
	case '[':
		if depth+1 > st.lim.MaxDepth {
			return 0, false
		}
		i++
		for n := 0; i < len(src) && src[i] != ']'; n++ {
			if n > 0 {
				if src[i] != ',' {
					return 0, false
				}
				i++
			}
			var ok bool
			if i, ok = st.vValue(i, nil, depth+1); !ok {
				return 0, false
			}
		}
		if i >= len(src) {
			return 0, false
		}
		return i + 1, true
	case '"':
		end, _, ok := st.vString(i)
		return end, ok
	case 't':
		return vLiteral(src, i, "true")
	case 'f':
		return vLiteral(src, i, "false")
	case 'n':
		return vLiteral(src, i, "null")
	}
	end, _, ok := numberEnd(src, i)
	return end, ok
}

func vLiteral(src []byte, i int, word string) (int, bool) {
	if len(src)-i < len(word) || string(src[i:i+len(word)]) != word {
		return 0, false
	}
	return i + len(word), true
}

// numberEnd checks the number literal at i and returns the offset after it
// and whether it is an integer (no fraction, no exponent).
func numberEnd(src []byte, i int) (end int, isInt, ok bool) {
	if i < len(src) && src[i] == '-' {
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
		return 0, false, false
	}
	isInt = true
	if i < len(src) && src[i] == '.' {
		i++
		isInt = false
		d := i
		for i < len(src) && src[i] >= '0' && src[i] <= '9' {
			i++
		}
		if i == d {
			return 0, false, false
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
			return 0, false, false
		}
	}
	return i, isInt, true
}

// vInt checks an integer literal at i and returns its value.
func (st *state) vInt(i int) (end int, v int64, ok bool) {
	end, isInt, ok := numberEnd(st.src, i)
	if !ok || !isInt {
		return 0, 0, false
	}
	v, ok = parseInt(st.src[i:end])
	return end, v, ok
}

// vStrings checks an array of strings at i, at depth, and calls each with
// each string.
func (st *state) vStrings(i, depth int, each func(k int, r strRef)) (int, bool) {
	src := st.src
	if i >= len(src) || src[i] != '[' || depth > st.lim.MaxDepth {
		return 0, false
	}
	i++
	for k := 0; i < len(src) && src[i] != ']'; k++ {
		if k > 0 {
			if src[i] != ',' {
				return 0, false
			}
			i++
		}
		end, r, ok := st.vStr(i)
		if !ok {
			return 0, false
		}
		each(k, r)
		i = end
	}
	if i >= len(src) {
		return 0, false
	}
	return i + 1, true
}

// vLeaf checks the value at i of the known field f, in an object at depth,
// and fills Event.
func (st *state) vLeaf(i int, f *schema, depth int) (int, bool) {
	src := st.src
	switch f.check {
	case checkString:
		end, r, ok := st.vStr(i)
		if ok && f.field != fieldNone {
			st.refs[f.field] = r
		}
		return end, ok
	case checkTimestamp:
		end, esc, ok := st.vString(i)
		if !ok || esc {
			return 0, false
		}
		// Read last (timeOK), since @timestamp comes first in most events
		// and most events that are not canonical are found so a little
		// after it.
		st.ts0, st.ts1 = int32(i+1), int32(end-1)
		return end, true
	case checkEventID:
		end, r, ok := st.vStr(i)
		if !ok {
			return 0, false
		}
		b := st.refBytes(r)
		if len(b) == 0 || len(b) > 128 {
			return 0, false
		}
		for _, c := range b {
			if c <= ' ' || c >= 0x7f {
				return 0, false
			}
		}
		st.refs[fieldID] = r
		return end, true
	case checkCategory:
		if i < len(src) && src[i] == '[' {
			return st.vStrings(i, depth+1, func(k int, r strRef) {
				if k == 0 {
					st.refs[fieldCategory] = r
				}
			})
		}
		end, r, ok := st.vStr(i)
		st.refs[fieldCategory] = r
		return end, ok
	case checkOutcome:
		end, r, ok := st.vStr(i)
		if !ok || r.esc {
			return 0, false
		}
		switch string(st.refBytes(r)) {
		case "success", "failure", "unknown":
			st.refs[fieldOutcome] = r
			return end, true
		}
		return 0, false
	case checkMethod:
		end, r, ok := st.vStr(i)
		if !ok {
			return 0, false
		}
		for _, c := range st.refBytes(r) {
			if c >= 'a' && c <= 'z' {
				return 0, false
			}
		}
		st.refs[fieldMethod] = r
		return end, true
	case checkSeverity:
		end, v, ok := st.vInt(i)
		if !ok || int64(int(v)) != v {
			return 0, false
		}
		st.severity = int(v)
		return end, true
	case checkDuration:
		end, v, ok := st.vInt(i)
		return end, ok && v >= 0
	case checkPort:
		end, v, ok := st.vInt(i)
		return end, ok && v >= 0 && v <= 65535
	case checkStatus:
		end, v, ok := st.vInt(i)
		if !ok || v < 100 || v > 599 {
			return 0, false
		}
		st.status = int(v)
		return end, true
	case checkIP:
		end, esc, ok := st.vString(i)
		if !ok || esc {
			return 0, false
		}
		b := src[i+1 : end-1]
		addr, ok := parseIPv4(b)
		if !ok {
			var err error
			if addr, err = netip.ParseAddr(string(b)); err != nil {
				return 0, false
			}
			var text [64]byte
			if !bytes.Equal(addr.AppendTo(text[:0]), b) {
				return 0, false
			}
		}
		st.setAddr(addr)
		return end, true
	case checkRelated:
		return st.vStrings(i, depth+1, func(_ int, r strRef) {
			st.related = append(st.related, r)
		})
	case checkLabel:
		if i < len(src) && (src[i] == '{' || src[i] == '[' || src[i] == 'n') {
			return 0, false
		}
		return st.vValue(i, nil, depth)
	}
	return 0, false
}

// canonicalTime parses a time as the canonical form writes it: RFC 3339 in
// UTC with the fraction of a second as short as it can be
// (time.RFC3339Nano), in years 0000 to 9999.
func canonicalTime(b []byte) (time.Time, bool) {
	// 2006-01-02T15:04:05.999999999Z
	if len(b) < 20 || len(b) > 30 || b[len(b)-1] != 'Z' ||
		b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		v := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok1 := num(b[0:4])
	month, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hour, ok4 := num(b[11:13])
	minute, ok5 := num(b[14:16])
	sec, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	nsec := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		// '.' and 1 to 9 digits, the last not 0
		if frac[0] != '.' || len(frac) < 2 || frac[len(frac)-1] == '0' {
			return time.Time{}, false
		}
		v, ok := num(frac[1:])
		if !ok {
			return time.Time{}, false
		}
		for range 10 - len(frac) {
			v *= 10
		}
		nsec = v
	}
	return time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
