package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/vigilsec/vigil/internal/event"
)

// The secondary indexes are postings: for each segment of 65536 sequence
// numbers (seq >> segShift) and each (field, value) found in it, the sorted
// list of the events holding that value. The writer keeps the postings of
// the open segment (and of closed segments not yet written out) in memory,
// adds each committed batch to them, and writes a closed segment's postings
// to the lists and packs tables in key order, a chunk per transaction. A table
// written in key order grows at its end, so the index costs the writer a
// few map appends per event instead of one random B-tree insert per field
// (see docs/decisions/0004-postings.md).

// segShift gives an event's segment: seq >> segShift.
const segShift = 16

// segSize is the number of sequence numbers in a segment.
const segSize = 1 << segShift

// Indexed fields, as stored in postings.field. Never renumber: the numbers
// are in the database.
const (
	fSourceIP  = 1 // 16-byte address, IPv4 as IPv4-mapped IPv6
	fUserName  = 2
	fUserID    = 3
	fAction    = 4
	fCategory  = 5
	fOutcome   = 6
	fMethod    = 7
	fPath      = 8
	fStatus    = 9 // decimal
	fRequestID = 10
	fService   = 11
	fRelated   = 12 // one entry of related.objects
	fWord      = 13 // a word of message, lower case
	fAll       = 14 // every stored event, under the empty value
	numFields  = 15
)

// Bounds on what one event puts in the index.
const (
	maxWordBytes  = 64   // longer words are not indexed
	maxEventWords = 1000 // words of a message indexed (the rest are not)
	maxValueBytes = 1024 // longer field values are indexed by their first bytes
)

// flushChunkKeys is how many keys a transaction writes out while flushing a
// segment (a var for tests: packs must not depend on it).
var flushChunkKeys = 4096

// pkey is one indexed (field, value).
type pkey struct {
	f uint8
	v string
}

// eventKeys appends the keys under which e is indexed. Values are views of
// e's strings; segIndex.add copies the ones it keeps.
func eventKeys(e *event.Event, out []pkey, ipBuf *[16]byte) []pkey {
	out = append(out, pkey{fAll, ""})
	if e.SourceIP.IsValid() {
		*ipBuf = e.SourceIP.As16()
		out = append(out, pkey{fSourceIP, string(ipBuf[:])})
	}
	for _, kv := range [...]struct {
		f uint8
		v string
	}{
		{fUserName, e.UserName}, {fUserID, e.UserID}, {fAction, e.Action},
		{fCategory, e.Category}, {fOutcome, e.Outcome}, {fMethod, e.Method},
		{fPath, e.Path}, {fRequestID, e.RequestID}, {fService, e.Service},
	} {
		if kv.v != "" {
			out = append(out, pkey{kv.f, clip(kv.v)})
		}
	}
	if e.Status != 0 {
		out = append(out, pkey{fStatus, strconv.Itoa(e.Status)})
	}
	for _, obj := range e.Related {
		if obj != "" {
			out = append(out, pkey{fRelated, clip(obj)})
		}
	}
	n := 0
	forEachWord(e.Message, func(w string) bool {
		out = append(out, pkey{fWord, w})
		n++
		return n < maxEventWords
	})
	return out
}

func clip(s string) string {
	if len(s) <= maxValueBytes {
		return s
	}
	return s[:maxValueBytes]
}

// forEachWord calls fn with each word of text in order, lower-cased: a run
// of letters and digits of at most maxWordBytes bytes (longer runs are
// skipped). It stops when fn returns false.
func forEachWord(text string, fn func(string) bool) {
	start := -1
	upper := false
	emit := func(end int) bool {
		w := text[start:end]
		start = -1
		if len(w) > maxWordBytes {
			return true
		}
		if upper {
			w = strings.ToLower(w)
		}
		return fn(w)
	}
	for i := 0; i < len(text); {
		c := text[i]
		var (
			r    rune
			size = 1
		)
		if c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRuneInString(text[i:])
		}
		word := c < utf8.RuneSelf && ('a' <= c && c <= 'z' || '0' <= c && c <= '9' || 'A' <= c && c <= 'Z') ||
			c >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if word {
			if start < 0 {
				start, upper = i, false
			}
			if 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
				upper = true // lower-case it (non-ASCII: let ToLower decide)
			}
		} else if start >= 0 && !emit(i) {
			return
		}
		i += size
	}
	if start >= 0 {
		emit(len(text))
	}
}

// segIndex is the in-memory postings of one segment: for each key, the
// offsets (seq - seg<<segShift) of its events in ascending order. The writer
// appends under memIndex.mu; readers copy a list's header under the read
// lock and may read its first len elements afterwards, since those are never
// written again.
type segIndex struct {
	seg   uint64
	lists [numFields]map[string]*postingList // by field, then value
	keys  []pkey                             // sorted keys, made when the segment is closed for flushing
	next  int                                // keys[:next] are written out (lists, packs)
	// sorted receives the sorted keys from the goroutine that sorts them
	// once the segment is closed: sorting some 100,000 keys on the writer
	// held up a commit for tens of milliseconds.
	sorted  atomic.Pointer[[]pkey]
	sorting bool // the writer started the sort
}

// sortedKeys reports whether the closed segment's keys are sorted (in
// x.keys), starting the sort the first time; wake is signalled when it is
// done. Only the writer calls it. The
// goroutine collects the keys under m's read lock (a purge may change the
// lists) and sorts them outside it; a key a purge removes meanwhile is
// skipped when written out.
func (x *segIndex) sortedKeys(m *memIndex, wake chan<- struct{}) bool {
	if x.keys != nil {
		return true
	}
	if p := x.sorted.Load(); p != nil {
		x.keys = *p
		return true
	}
	if !x.sorting {
		x.sorting = true
		go func() {
			m.mu.RLock()
			keys := make([]pkey, 0, x.numKeys())
			for f, l := range x.lists {
				for v := range l {
					keys = append(keys, pkey{uint8(f), v})
				}
			}
			m.mu.RUnlock()
			sortKeys(keys)
			x.sorted.Store(&keys)
			select {
			case wake <- struct{}{}:
			default: // a wake-up is pending already
			}
		}()
	}
	return false
}

func newSegIndex(seg uint64) *segIndex {
	x := &segIndex{seg: seg}
	for f := range x.lists {
		x.lists[f] = make(map[string]*postingList)
	}
	return x
}

// add indexes seq under keys.
// numKeys returns the number of keys of x.
func (x *segIndex) numKeys() int {
	n := 0
	for _, m := range x.lists {
		n += len(m)
	}
	return n
}

func (x *segIndex) add(seq uint64, keys []pkey) {
	off := uint16(seq & (segSize - 1))
	for _, k := range keys {
		m := x.lists[k.f]
		p := m[k.v]
		if p == nil {
			p = &postingList{}
			p.first[0] = off
			p.offs = p.first[:1:len(p.first)]
			// Cloned: do not keep the event's memory alive.
			m[strings.Clone(k.v)] = p
			continue
		}
		if p.offs[len(p.offs)-1] == off { // the same word twice in one message
			continue
		}
		p.offs = append(p.offs, off)
	}
}

// postingList is the list of one key of a segIndex. Held by pointer in the
// segment's maps, it grows without a second map access per event (the
// lookup and then the store of the grown slice); it holds its first offsets
// itself, so a new key costs one allocation.
type postingList struct {
	offs  []uint16 // ascending; never empty
	first [4]uint16
}

// memIndex holds the segments whose postings are in memory: every segment
// from flushed on. Segments before flushed are in the tables (lists, packs).
type memIndex struct {
	mu      sync.RWMutex
	flushed uint64      // first segment not (wholly) written out
	segs    []*segIndex // segments flushed, flushed+1, …, in order
	// bounds holds, for segments written out since schema version 5, the
	// least and greatest value of each field (segfields table).
	bounds map[uint64]*segBounds
}

// segBounds are the least and greatest value of each field in a segment;
// a field without values has ok false.
type segBounds [numFields]struct {
	lo, hi string
	ok     bool
}

// outside reports whether no value of c's field in the segment can satisfy
// c. A purge may have removed the extreme values since: the bounds only
// ever hold more than the values left.
func (b *segBounds) outside(c cond) bool {
	f := &b[c.f]
	if !f.ok {
		return true
	}
	lo, hi := c.v, c.v
	if c.ranged {
		lo, hi = c.lo, c.hi
	}
	return hi < f.lo || lo > f.hi
}

// boundsOf returns the bounds of each field of sorted keys.
func boundsOf(keys []pkey) *segBounds {
	var b segBounds
	for i, k := range keys {
		if i == 0 || keys[i-1].f != k.f {
			b[k.f].lo, b[k.f].ok = k.v, true
		}
		b[k.f].hi = k.v
	}
	return &b
}

// segment returns the in-memory index of seg, or nil when seg is before
// flushed (then it is in the table). The caller holds mu.
func (m *memIndex) segment(seg uint64) *segIndex {
	if seg < m.flushed {
		return nil
	}
	i := seg - m.flushed
	if i >= uint64(len(m.segs)) {
		return nil
	}
	return m.segs[i]
}

// add indexes the events of one committed transaction, creating segments
// as needed. The caller holds mu for writing.
func (m *memIndex) add(seqs []uint64, keys [][]pkey) {
	for i, seq := range seqs {
		seg := seq >> segShift
		for len(m.segs) == 0 || m.segs[len(m.segs)-1].seg < seg {
			next := m.flushed
			if len(m.segs) > 0 {
				next = m.segs[len(m.segs)-1].seg + 1
			}
			m.segs = append(m.segs, newSegIndex(next))
		}
		m.segs[len(m.segs)-1].add(seq, keys[i])
	}
}

// encodeList writes offsets as varint deltas.
func encodeList(dst []byte, offs []uint16) []byte {
	prev := 0
	for i, o := range offs {
		d := int(o) - prev
		if i == 0 {
			d = int(o)
		}
		dst = binary.AppendUvarint(dst, uint64(d))
		prev = int(o)
	}
	return dst
}

var errBadPostings = errors.New("corrupt postings list")

// How a closed segment's postings are written out (schema version 5; the
// postings table holds those written by earlier versions):
//
//   - A key whose list has at most packMaxOffs events goes into a pack: the
//     entries of consecutive keys of one field, in key order, in one row of
//     the packs table under the first key's value. A field with a new value
//     in almost every event (a path with an order number, a request id, a
//     message word that is a number) made a row per event, and the writer
//     spent more on those rows than on the event's own: measured with the
//     shipper's benchmark (unique path and word per event), writing
//     postings out took 2.6 µs of the writer's ~9 µs per event; 0.4 µs now.
//   - A longer list goes to the lists table, cut into parts of at most
//     about listRowBytes with its value, each encoded on its own. A row
//     longer than SQLite's local payload (about 2,000 bytes with 8 KiB
//     pages) spills onto overflow pages, and a lookup that compares its key
//     with such a row reads the whole row first: one list of all the
//     events of a segment (~65 KB) made a lookup among its neighbours cost
//     40–60 µs instead of 15.
//
// A pack is closed when the next entry would take it past listRowBytes
// (with its key), when the field changes, and at the end of the segment's
// keys. Packing is greedy from the segment's first key, and a flush chunk
// ends only where a pack was just closed, so a segment written out again
// after a crash (INSERT OR REPLACE, from the same events) makes the same
// packs and parts: none overlaps a row already written.
const packMaxOffs = 4

// listRowBytes bounds a row of lists or packs, its key included, so that it
// stays within SQLite's local payload of an 8 KiB page. A var for tests.
var listRowBytes = 1800

// packedSize is the size of key v's entry in a pack (appendPacked).
func packedSize(v string, offs []uint16) int {
	n := uvarintLen(uint64(len(v))) + len(v) + 1
	prev := 0
	for i, o := range offs {
		d := int(o) - prev
		if i == 0 {
			d = int(o)
		}
		n += uvarintLen(uint64(d))
		prev = int(o)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// encodePart encodes the first offsets of offs that fit in max bytes (at
// least one) as a list of their own, and returns how many it took.
func encodePart(dst []byte, offs []uint16, max int) ([]byte, int) {
	start := len(dst)
	prev := 0
	for i, o := range offs {
		d := int(o) - prev
		if i == 0 {
			d = int(o)
		}
		if i > 0 && len(dst)-start+uvarintLen(uint64(d)) > max {
			return dst, i
		}
		dst = binary.AppendUvarint(dst, uint64(d))
		prev = int(o)
	}
	return dst, len(offs)
}

// appendPacked appends one key's entry to a pack: the value's length and
// bytes, then the encoded list's length and bytes.
func appendPacked(pack []byte, v string, offs []uint16) []byte {
	pack = binary.AppendUvarint(pack, uint64(len(v)))
	pack = append(pack, v...)
	n := len(pack)
	pack = append(pack, 0) // a list of at most packMaxOffs varints is shorter than 128 bytes
	pack = encodeList(pack, offs)
	pack[n] = byte(len(pack) - n - 1)
	return pack
}

// eachPacked calls fn with each value of a pack, in order, and its list
// (appended to l[:0]; fn may keep neither past its return).
func eachPacked(data []byte, l []uint16, fn func(v []byte, l []uint16) error) error {
	for len(data) > 0 {
		n, k := binary.Uvarint(data)
		if k <= 0 || n > uint64(len(data)-k) {
			return errBadPostings
		}
		v := data[k : k+int(n)]
		data = data[k+int(n):]
		if len(data) == 0 || int(data[0]) >= len(data) || data[0] == 0 {
			return errBadPostings
		}
		var err error
		if l, err = decodeList(l[:0], data[1:1+int(data[0])]); err != nil {
			return err
		}
		data = data[1+int(data[0]):]
		if err := fn(v, l); err != nil {
			return err
		}
	}
	return nil
}

// bitmap has one bit per sequence number of a segment.
type bitmap [segSize / 64]uint64

func (b *bitmap) set(off uint16)      { b[off>>6] |= 1 << (off & 63) }
func (b *bitmap) has(off uint16) bool { return b[off>>6]&(1<<(off&63)) != 0 }

func (b *bitmap) setRange(lo, hi int) { // [lo, hi)
	for i := lo; i < hi; {
		if i&63 == 0 && i+64 <= hi {
			b[i>>6] = ^uint64(0)
			i += 64
			continue
		}
		b.set(uint16(i))
		i++
	}
}

func (b *bitmap) and(o *bitmap) {
	for i := range b {
		b[i] &= o[i]
	}
}

func (b *bitmap) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

func (b *bitmap) empty() bool {
	for _, w := range b {
		if w != 0 {
			return false
		}
	}
	return true
}

// countAnd returns how many offsets of an encoded list are set in b.
func (b *bitmap) countList(offs []uint16) int {
	n := 0
	for _, o := range offs {
		if b.has(o) {
			n++
		}
	}
	return n
}

// offsets appends the set offsets of b in ascending order.
func (b *bitmap) offsets(out []uint16) []uint16 {
	for i, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			out = append(out, uint16(i*64+t))
			w &= w - 1
		}
	}
	return out
}

// decodeList appends the offsets of an encoded list.
func decodeList(out []uint16, data []byte) ([]uint16, error) {
	prev := 0
	first := true
	for len(data) > 0 {
		d, n := binary.Uvarint(data)
		if n <= 0 {
			return out, errBadPostings
		}
		data = data[n:]
		v := int(d)
		if !first {
			v += prev
			if d == 0 {
				return out, errBadPostings
			}
		}
		if v >= segSize || d >= segSize {
			return out, errBadPostings
		}
		out = append(out, uint16(v))
		prev, first = v, false
	}
	return out, nil
}

// sortKeys orders keys as the lists and packs tables do: field, then value
// byte-wise.
func sortKeys(keys []pkey) {
	slices.SortFunc(keys, func(a, b pkey) int {
		if a.f != b.f {
			return int(a.f) - int(b.f)
		}
		return strings.Compare(a.v, b.v)
	})
}

func fieldName(f uint8) string {
	switch f {
	case fSourceIP:
		return "source.ip"
	case fWord:
		return "message word"
	}
	return fmt.Sprintf("field %d", f)
}
