package event

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strconv"
	"time"
)

// The writer produces the canonical bytes from the scanned tree. Members of an
// object become entries; an entry's key is what is left of the member's key
// after the segments already used by the enclosing objects. Entries are sorted
// by their keys, segment by segment, so that the entries sharing a first
// segment are next to each other and already in order for the level below.
// Entries sharing a first segment form a group, which is either one value or
// an object merged from several sources ("source.ip" and "source": {...}).
// Known fields are validated as they are written.

type entry struct {
	pfx    uint64 // sort prefix: see setKey
	k0, k1 int32  // what is left of the key: bytes [k0, k1) of the input, or of strs when esc
	seg    int32  // length of the first segment of the key
	node   int32  // value node, or ^s for the synthetic field s
	origin int32  // object node the key was written in, -1 for synthetic fields
	esc    bool
	noPfx  bool // pfx cannot order this key: it has a zero byte in its first 8
	stale  bool // pfx is not that of the key: it was advanced
}

func (e *entry) consumed() bool { return e.seg == e.k1-e.k0 }

func (st *state) keyOf(e *entry) []byte {
	if e.esc {
		return st.strs[e.k0:e.k1]
	}
	return st.src[e.k0:e.k1]
}

// first returns the first segment of an entry's key.
func (st *state) first(e *entry) []byte {
	if e.esc {
		return st.strs[e.k0 : e.k0+e.seg]
	}
	return st.src[e.k0 : e.k0+e.seg]
}

// Keys sort segment by segment, byte-wise within a segment. That is the
// byte-wise order of the keys with the dots that separate segments read as a
// symbol below every byte, and the end of the key as one below that.

// The sort prefix of an entry is its key's first 8 bytes, big-endian, with
// separating dots as 0 and zero padding. When two keys have different
// prefixes, the smaller prefix is the smaller key. That fails for a zero byte
// in the key, which would read as a dot: such a key is marked noPfx and always
// compared in full.

// setKey sets the key of an entry to bytes [k0, k1) and works out its first
// segment and its sort prefix, in one pass.
func (st *state) setKey(e *entry, k0, k1 int32) {
	e.k0, e.k1 = k0, k1
	key := st.keyOf(e)
	var p, dots uint64
	first, prev := -1, -1
	verbatim, noPfx := false, false
	for i, c := range key {
		if i < 8 {
			sh := 56 - 8*i
			p |= uint64(c) << sh
			switch c {
			case 0:
				noPfx = true
			case '.':
				dots |= 0xff << sh
			}
		}
		if c == '.' {
			if i == prev+1 {
				verbatim = true // an empty segment
			}
			if first < 0 {
				first = i
			}
			prev = i
		}
	}
	e.seg = int32(len(key))
	if !verbatim && first >= 0 && prev != len(key)-1 {
		e.seg = int32(first)
		p &^= dots
	}
	e.pfx, e.noPfx, e.stale = p, noPfx, false
}

// firstPrefix returns the segPrefix of the first segment of an entry.
func (st *state) firstPrefix(e *entry) uint64 {
	if e.stale {
		return segPrefix(st.first(e))
	}
	if e.seg >= 8 {
		return e.pfx
	}
	return e.pfx & (^uint64(0) << (64 - 8*e.seg))
}

// segPrefix returns the first 8 bytes of a segment, big-endian, zero-padded.
func segPrefix(seg []byte) uint64 {
	if len(seg) >= 8 {
		return binary.BigEndian.Uint64(seg)
	}
	var p uint64
	for i, c := range seg {
		p |= uint64(c) << (56 - 8*i)
	}
	return p
}

// separated reports whether the dots in the entry's key separate segments;
// a key with an empty segment is one segment, dots included.
func (e *entry) separated() bool { return !e.consumed() }

func symbol(key []byte, i int, sep bool) int {
	if i >= len(key) {
		return -2
	}
	if sep && key[i] == '.' {
		return -1
	}
	return int(key[i])
}

func (st *state) cmpEntries(a, b *entry) int {
	if a.pfx != b.pfx && !a.noPfx && !b.noPfx {
		if a.pfx < b.pfx {
			return -1
		}
		return 1
	}
	ka, kb := st.keyOf(a), st.keyOf(b)
	sa, sb := a.separated(), b.separated()
	for i := 0; ; i++ {
		ca, cb := symbol(ka, i, sa), symbol(kb, i, sb)
		if ca != cb {
			return ca - cb
		}
		if ca == -2 {
			return 0
		}
	}
}

func (st *state) sortEntries(e []entry) {
	for i := range e {
		if e[i].stale {
			st.setKey(&e[i], e[i].k0, e[i].k1)
		}
	}
	if len(e) > 24 {
		slices.SortFunc(e, func(a, b entry) int { return st.cmpEntries(&a, &b) })
		return
	}
	for i := 1; i < len(e); i++ {
		if !st.less(&e[i], &e[i-1]) {
			continue
		}
		x := e[i]
		j := i - 1
		for ; j > 0 && st.less(&x, &e[j-1]); j-- {
		}
		copy(e[j+1:i+1], e[j:i])
		e[j] = x
	}
}

func (st *state) less(a, b *entry) bool {
	if a.pfx != b.pfx && !a.noPfx && !b.noPfx {
		return a.pfx < b.pfx
	}
	return st.cmpEntries(a, b) < 0
}

// pushEntry appends the entry for the key in bytes [k0, k1).
func (st *state) pushEntry(k0, k1 int32, esc bool, node, origin int32) {
	st.ents = append(st.ents, entry{node: node, origin: origin, esc: esc})
	st.setKey(&st.ents[len(st.ents)-1], k0, k1)
}

// advance drops the first segment of an entry's key.
func (st *state) advance(e *entry) {
	e.k0 += e.seg + 1
	key := st.keyOf(e)
	if i := bytes.IndexByte(key, '.'); i >= 0 {
		e.seg = int32(i)
	} else {
		e.seg = int32(len(key))
	}
	e.stale = true
}

// Synthetic fields are the ones Vigil fills. A default is written only when
// the event has no value there; an override always replaces the sender's.
const (
	synthTimestamp = iota
	synthID
	synthKind
	synthIngested
	synthSchema
	numSynth
)

var synthKeys = [numSynth]string{
	synthTimestamp: "@timestamp",
	synthID:        "event.id",
	synthKind:      "event.kind",
	synthIngested:  "event.ingested",
	synthSchema:    "vigil.schema",
}

func isOverride(s int) bool { return s == synthIngested || s == synthSchema }

// DefaultKind is the event.kind Vigil sets when an event has none.
const DefaultKind = "event"

func (st *state) writeSynth(s int) {
	switch s {
	case synthTimestamp:
		st.setTime(st.now)
		st.appendNow()
	case synthID:
		start := len(st.out) + 1
		st.out = append(st.out, '"')
		var id [36]byte
		st.out = append(st.out, appendID(id[:0], time.Now(), st.rand.next())...)
		st.out = append(st.out, '"')
		st.refs[fieldID] = strRef{start: int32(start), end: int32(len(st.out) - 1), set: true}
	case synthKind:
		st.writeStr([]byte(DefaultKind), fieldKind)
	case synthIngested:
		st.appendNow()
	case synthSchema:
		st.out = append(st.out, `"`+SchemaVersion+`"`...)
	}
}

// appendNow writes st.now as a string. The text is kept for the next event
// with the same now, as those of a batch are.
func (st *state) appendNow() {
	if !st.nowOK || st.nowText.t != st.now {
		st.nowText.b = st.now.AppendFormat(st.nowText.b[:0], time.RFC3339Nano)
		st.nowText.t, st.nowOK = st.now, true
	}
	st.out = append(st.out, '"')
	st.out = append(st.out, st.nowText.b...)
	st.out = append(st.out, '"')
}

func (st *state) pushMembers(obj int32) {
	for c := st.nodes[obj].first; c >= 0; c = st.nodes[c].next {
		n := &st.nodes[c]
		st.pushEntry(n.key0, n.key1, n.keyEsc, c, obj)
	}
}

func (st *state) writeTop(root int32) error {
	st.pushMembers(root)
	// Keys of the synthetic fields go with the decoded strings.
	for s := range numSynth {
		k0 := int32(len(st.strs))
		st.strs = append(st.strs, synthKeys[s]...)
		st.pushEntry(k0, int32(len(st.strs)), true, ^int32(s), -1)
	}
	return st.writeEntries(0, len(st.ents), rootSchema, 1, false)
}

// writeEntries writes the object made of st.ents[lo:hi], at depth. The
// entries are sorted unless sorted is false.
func (st *state) writeEntries(lo, hi int, f *schema, depth int, sorted bool) error {
	if depth > st.lim.MaxDepth {
		return &LimitError{What: "depth", Size: depth, Limit: st.lim.MaxDepth, Offset: -1}
	}
	if !sorted {
		st.sortEntries(st.ents[lo:hi])
	}
	st.out = append(st.out, '{')
	var kids []namedSchema
	if f != nil {
		kids = f.kids
	}
	for i := lo; i < hi; {
		seg := st.first(&st.ents[i])
		j := i + 1
		for j < hi && st.ents[j].seg == st.ents[i].seg && bytes.Equal(st.first(&st.ents[j]), seg) {
			j++
		}
		// kids are sorted too: walk them along.
		var cf *schema
		if len(kids) > 0 {
			p := st.firstPrefix(&st.ents[i])
			for len(kids) > 0 && (kids[0].pfx < p || kids[0].pfx == p && kids[0].name < string(seg)) {
				kids = kids[1:]
			}
			if len(kids) > 0 && kids[0].pfx == p && kids[0].name == string(seg) {
				cf = kids[0].f
			}
		}
		if cf == nil && f != nil {
			cf = f.any
		}
		if i > lo {
			st.out = append(st.out, ',')
		}
		st.putString(seg)
		st.out = append(st.out, ':')
		if err := st.writeGroup(i, j, cf, depth); err != nil {
			return inField(err, string(seg))
		}
		i = j
	}
	st.out = append(st.out, '}')
	return nil
}

func (st *state) writeEntry(k int, f *schema, depth int) error {
	e := &st.ents[k]
	if e.node < 0 {
		st.writeSynth(int(^e.node))
		return nil
	}
	return st.writeValue(e.node, f, depth)
}

// writeGroup writes the value of the entries st.ents[i:j], which share their
// first segment, inside an object at depth. It may change those entries.
func (st *state) writeGroup(i, j int, f *schema, depth int) error {
	if j-i == 1 && st.ents[i].consumed() {
		return st.writeEntry(i, f, depth)
	}
	skip := -1 // a default that the sender's value replaces
	for k := i; k < j; k++ {
		if e := &st.ents[k]; e.node < 0 && e.consumed() {
			if isOverride(int(^e.node)) {
				st.writeSynth(int(^e.node))
				return nil
			}
			skip = k
		}
	}
	if skip >= 0 && j-i == 2 {
		k := i
		if k == skip {
			k++
		}
		if st.ents[k].consumed() {
			return st.writeEntry(k, f, depth)
		}
	}
	// Several entries: they must all be objects or dotted keys going deeper,
	// and they merge into one object.
	leaf, nested, objects := -1, -1, 0
	for k := i; k < j; k++ {
		if k == skip {
			continue
		}
		e := &st.ents[k]
		if !e.consumed() {
			if nested < 0 {
				nested = k
			}
			continue
		}
		for m := i; m < k; m++ {
			if m != skip && st.ents[m].consumed() && st.ents[m].origin == e.origin {
				return st.fieldErr("duplicate key")
			}
		}
		if st.nodes[e.node].kind != kindObject {
			if leaf < 0 {
				leaf = k
			}
		} else {
			objects++
		}
	}
	if leaf >= 0 {
		k := st.nodes[st.ents[leaf].node].kind
		if f != nil && f.isObject() {
			return st.typeErr(anObject, k)
		}
		if nested >= 0 {
			e := &st.ents[nested]
			return st.fieldErr("is " + article(k) + " and cannot also hold " +
				strconv.Quote(string(st.keyOf(e)[e.seg+1:])) + " (from a dotted key)")
		}
		return st.fieldErr("set twice after expanding dotted keys")
	}
	if f != nil && f.leaf != nil {
		return st.typeErr(f, kindObject)
	}
	if objects == 0 && skip < 0 {
		// Only dotted keys: what is left of them is still in order.
		for k := i; k < j; k++ {
			st.advance(&st.ents[k])
		}
		return st.writeEntries(i, j, f, depth+1, true)
	}
	lo := len(st.ents)
	for k := i; k < j; k++ {
		if k == skip {
			continue
		}
		if st.ents[k].consumed() {
			st.pushMembers(st.ents[k].node)
		} else {
			e := st.ents[k]
			st.advance(&e)
			st.ents = append(st.ents, e)
		}
	}
	err := st.writeEntries(lo, len(st.ents), f, depth+1, false)
	st.ents = st.ents[:lo]
	return err
}

var anObject = &schema{want: "an object"}

// inField puts a field error in its enclosing field: the path of the field is
// built as the error goes up, so that the writer need not track it.
func inField(err error, name string) error {
	fe, ok := err.(*FieldError)
	if !ok {
		return err
	}
	switch {
	case fe.Field == "":
		fe.Field = name
	case fe.Field[0] == '[':
		fe.Field = name + fe.Field
	default:
		fe.Field = name + "." + fe.Field
	}
	return err
}

// writeValue writes the value of node ni, a member of an object or array at
// depth.
func (st *state) writeValue(ni int32, f *schema, depth int) error {
	n := &st.nodes[ni]
	if f != nil {
		if f.leaf != nil {
			return f.leaf(st, f, ni)
		}
		if n.kind != kindObject {
			return st.typeErr(anObject, n.kind)
		}
	}
	switch n.kind {
	case kindObject:
		lo := len(st.ents)
		st.pushMembers(ni)
		err := st.writeEntries(lo, len(st.ents), f, depth+1, false)
		st.ents = st.ents[:lo]
		return err
	case kindArray:
		if depth+1 > st.lim.MaxDepth {
			return &LimitError{What: "depth", Size: depth + 1, Limit: st.lim.MaxDepth, Offset: -1}
		}
		st.out = append(st.out, '[')
		i := 0
		for c := n.first; c >= 0; c = st.nodes[c].next {
			if i > 0 {
				st.out = append(st.out, ',')
			}
			if err := st.writeValue(c, nil, depth+1); err != nil {
				return inField(err, "["+strconv.Itoa(i)+"]")
			}
			i++
		}
		st.out = append(st.out, ']')
	case kindString:
		if n.plain {
			st.out = append(st.out, st.src[n.v0-1:n.v1+1]...) // with its quotes
		} else {
			st.putString(st.str(n))
		}
	case kindNumber:
		st.out = append(st.out, st.src[n.v0:n.v1]...)
	case kindTrue:
		st.out = append(st.out, "true"...)
	case kindFalse:
		st.out = append(st.out, "false"...)
	case kindNull:
		st.out = append(st.out, "null"...)
	}
	return nil
}

// escapes marks the bytes putString must look at: '"', '\\', control
// characters, and 0xE2, the first byte of U+2028 and U+2029.
var escapes = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'], t[0xe2] = true, true, true
	return t
}()

// putString writes s (valid UTF-8) as a JSON string in canonical form: only
// '"', '\\', control characters and U+2028, U+2029 are escaped, control
// characters as \n, \r, \t or \u00XX. It reports whether it escaped
// anything. (It appends to st.out in place: storing a slice returned by a
// function in st would cost a write barrier while the GC runs.)
func (st *state) putString(s []byte) bool {
	const hex = "0123456789abcdef"
	st.out = append(st.out, '"')
	esc := false
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if !escapes[c] {
			i++
			continue
		}
		if c == 0xe2 {
			if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xa8 || s[i+2] == 0xa9) {
				st.out = append(st.out, s[start:i]...)
				st.out = append(st.out, '\\', 'u', '2', '0', '2', '8'+(s[i+2]-0xa8))
				i += 3
				start, esc = i, true
				continue
			}
			i++
			continue
		}
		st.out = append(st.out, s[start:i]...)
		switch c {
		case '"', '\\':
			st.out = append(st.out, '\\', c)
		case '\n':
			st.out = append(st.out, '\\', 'n')
		case '\r':
			st.out = append(st.out, '\\', 'r')
		case '\t':
			st.out = append(st.out, '\\', 't')
		default:
			st.out = append(st.out, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		}
		i++
		start, esc = i, true
	}
	st.out = append(st.out, s[start:]...)
	st.out = append(st.out, '"')
	return esc
}
