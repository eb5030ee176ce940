package shipper

import (
	"time"
)

// A batch is a run of events in NDJSON form: each line followed by '\n'.
// Memory batches are filled by Send; spool batches are read back from the
// spool for replay. A batch belongs to the Shipper's mutex while it is open
// or queued, and to one worker while it is being delivered or spooled.
type batch struct {
	buf  []byte  // the NDJSON body, every line ending in '\n'
	ends []int32 // end of each line in buf, after its '\n'
	crit []bool  // whether each line is a critical event
	idx  []int32 // each line's index at admission, for synchronous waiters

	first uint64    // admission number of the first event (memory batches); 0 when empty
	born  time.Time // when the first event entered (memory batches)

	// res, when set, is what synchronous critical Sends of this batch wait on.
	res *result
	// urgent asks for the batch to be sealed at once (a synchronous critical
	// event is waiting).
	urgent bool

	// What the batch holds against the memory bound (memory batches).
	chEv, chBy int

	// Spool batches: the records [start, end) and how many were read.
	start, end pos
	nRead      int
}

// result is shared by the synchronous critical Sends of one batch (and of the
// batches split from it). It is completed, under the Shipper's mutex, when
// the last batch carrying it is acknowledged, spooled or refused.
type result struct {
	done     chan struct{}
	pending  int     // batches still carrying this result
	rejected []int32 // admission indexes of critical events Vigil refused
	lost     bool    // Close gave the batch up
	closed   bool    // done is closed
}

// finishLocked releases the waiters, once. The Shipper's mutex is held.
func (r *result) finishLocked() {
	if !r.closed {
		r.closed = true
		close(r.done)
	}
}

func (b *batch) n() int { return len(b.ends) }

func (b *batch) reset() {
	b.buf = b.buf[:0]
	b.ends = b.ends[:0]
	b.crit = b.crit[:0]
	b.idx = b.idx[:0]
	b.first = 0
	b.born = time.Time{}
	b.res = nil
	b.urgent = false
	b.chEv, b.chBy = 0, 0
	b.start, b.end, b.nRead = pos{}, pos{}, 0
}

// add appends one line (without its newline).
func (b *batch) add(line []byte, critical bool, idx int32) {
	b.buf = append(b.buf, line...)
	b.buf = append(b.buf, '\n')
	b.ends = append(b.ends, int32(len(b.buf)))
	b.crit = append(b.crit, critical)
	b.idx = append(b.idx, idx)
}

// line returns line i without its newline.
func (b *batch) line(i int) []byte {
	s := int32(0)
	if i > 0 {
		s = b.ends[i-1]
	}
	return b.buf[s : b.ends[i]-1]
}

// keep removes the lines for which keep returns false, keeping the order.
func (b *batch) keep(keep func(i int) bool) {
	w, wl := 0, 0 // write offset in buf, write index in lines
	s := 0
	for i, e := range b.ends {
		e := int(e)
		if keep(i) {
			n := copy(b.buf[w:], b.buf[s:e])
			w += n
			b.ends[wl] = int32(w)
			b.crit[wl] = b.crit[i]
			b.idx[wl] = b.idx[i]
			wl++
		}
		s = e
	}
	b.buf = b.buf[:w]
	b.ends = b.ends[:wl]
	b.crit = b.crit[:wl]
	b.idx = b.idx[:wl]
}

// dropPrefix removes the first k lines.
func (b *batch) dropPrefix(k int) {
	b.keep(func(i int) bool { return i >= k })
}

// copyRange appends lines [from, to) of src to b.
func (b *batch) copyRange(src *batch, from, to int) {
	for i := from; i < to; i++ {
		b.add(src.line(i), src.crit[i], src.idx[i])
	}
}
