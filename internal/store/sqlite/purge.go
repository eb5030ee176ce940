package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/vigilsec/vigil/internal/store"
)

// Purging (retention) removes events by sequence number. It goes through
// the writer like Append and SetCursor, one segment (at most 65,536 events)
// per request, so appends queued meanwhile are committed between two
// segments. In the transaction of a segment the writer deletes the events'
// rows, records the runs of sequence numbers it removed in the purged
// table, and takes the purged events out of the segment's postings: the
// rows of the postings table for a segment written out, the in-memory lists
// otherwise (and then the segment is written out again from its start, in
// case part of it already was). The time blocks keep their spans: a span
// wider than the events left only costs a look at the block's rows.

// purgeJob is one segment's share of a Purge.
type purgeJob struct {
	run  string
	seqs []uint64 // ascending, all in one segment
	res  store.PurgeResult
}

var _ store.Purger = (*Store)(nil)

// Purge removes the events seqs (ascending, no duplicates) and records them
// as purged under run, one transaction per segment. See store.Purger.
func (s *Store) Purge(ctx context.Context, run string, seqs []uint64) (store.PurgeResult, error) {
	var total store.PurgeResult
	if run == "" {
		return total, errors.New("purge: empty run name")
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			return total, fmt.Errorf("purge: sequence numbers not ascending at %d (%d after %d)", i, seqs[i], seqs[i-1])
		}
	}
	for len(seqs) > 0 {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		seg := seqs[0] >> segShift
		n, _ := slices.BinarySearch(seqs, (seg+1)<<segShift)
		if seqs[0] == 0 || seqs[n-1] > maxSeq {
			return total, fmt.Errorf("purge: sequence number %d out of range", seqs[n-1])
		}
		job := &purgeJob{run: run, seqs: seqs[:n]}
		r := &request{ctx: ctx, purge: job, reply: make(chan reply, 1)}
		if err := s.enqueue(ctx, r); err != nil {
			return total, fmt.Errorf("purge segment %d: %w", seg, err)
		}
		if rep := <-r.reply; rep.err != nil {
			return total, fmt.Errorf("purge segment %d: %w", seg, rep.err)
		}
		total.Purged += job.res.Purged
		total.Absent += job.res.Absent
		seqs = seqs[n:]
	}
	return total, nil
}

// PurgedRanges returns up to limit purged ranges with First > after.
func (s *Store) PurgedRanges(ctx context.Context, after uint64, limit int) ([]store.PurgedRange, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT first, last, run FROM purged WHERE first > ? ORDER BY first LIMIT ?`,
		clampSeq(after), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("purged ranges after %d: %w", after, s.closedErr(err))
	}
	defer rows.Close()
	var out []store.PurgedRange
	for rows.Next() {
		var first, last int64
		var r store.PurgedRange
		if err := rows.Scan(&first, &last, &r.Run); err != nil {
			return nil, fmt.Errorf("purged ranges after %d: %w", after, s.closedErr(err))
		}
		r.First, r.Last = uint64(first), uint64(last)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("purged ranges after %d: %w", after, s.closedErr(err))
	}
	return out, nil
}

// purge runs one segment's purge in the writer's transaction.
func (w *writer) purge(j *purgeJob) error {
	j.res = store.PurgeResult{}
	if len(j.seqs) == 0 {
		return nil
	}
	seg := j.seqs[0] >> segShift
	removed := make([]uint64, 0, len(j.seqs))
	for _, seq := range j.seqs {
		res, err := w.conn.Exec(`DELETE FROM events WHERE seq = ?`, []driver.Value{int64(seq)})
		if err != nil {
			return fmt.Errorf("delete event %d: %w", seq, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			removed = append(removed, seq)
		}
	}
	j.res.Purged = int64(len(removed))
	j.res.Absent = int64(len(j.seqs) - len(removed))
	if len(removed) == 0 {
		return nil
	}
	for i := 0; i < len(removed); {
		k := i + 1
		for k < len(removed) && removed[k] == removed[k-1]+1 {
			k++
		}
		if _, err := w.conn.Exec(`INSERT INTO purged(first, last, run) VALUES (?, ?, ?)`,
			[]driver.Value{int64(removed[i]), int64(removed[k-1]), j.run}); err != nil {
			return fmt.Errorf("record purged events %d..%d: %w", removed[i], removed[k-1], err)
		}
		i = k
	}
	var gone bitmap
	for _, seq := range removed {
		gone.set(uint16(seq & (segSize - 1)))
	}
	w.recent.forget()
	m := w.idx
	m.mu.Lock()
	inMemory := seg >= m.flushed
	x := m.segment(seg)
	flushing := x != nil && x.keys != nil
	if x != nil {
		x.remove(&gone)
	}
	m.mu.Unlock()
	if flushing {
		// Part of it may be written out with the old lists: the whole
		// segment is written out again.
		if _, err := w.conn.Exec(`DELETE FROM postings WHERE seg = ?`, []driver.Value{int64(seg)}); err != nil {
			return fmt.Errorf("drop postings of segment %d: %w", seg, err)
		}
	}
	if inMemory {
		return nil
	}
	return w.purgeTable(seg, &gone)
}

// remove takes the offsets set in gone out of x's lists. Lists are replaced,
// never changed in place: readers may hold the old ones. The caller holds
// memIndex.mu for writing.
func (x *segIndex) remove(gone *bitmap) {
	for f := range x.lists {
		for v, p := range x.lists[f] {
			l := p.offs
			if !slices.ContainsFunc(l, gone.has) {
				continue
			}
			kept := make([]uint16, 0, len(l))
			for _, o := range l {
				if !gone.has(o) {
					kept = append(kept, o)
				}
			}
			if len(kept) == 0 {
				// add expects a non-empty list per key.
				delete(x.lists[f], v)
				continue
			}
			p.offs = kept
		}
	}
	if x.keys != nil {
		// Closed: its keys are written out again from the first.
		x.keys = slices.DeleteFunc(x.keys, func(k pkey) bool {
			_, ok := x.lists[k.f][k.v]
			return !ok
		})
		x.next = 0
	}
}

// purgeTable rewrites the postings of a written-out segment without the
// offsets set in gone.
func (w *writer) purgeTable(seg uint64, gone *bitmap) error {
	type row struct {
		f     int64
		value []byte
		seqs  []byte // nil: delete the row
	}
	rows, err := w.conn.Query(`SELECT field, value, seqs FROM postings WHERE seg = ?`, []driver.Value{int64(seg)})
	if err != nil {
		return fmt.Errorf("read postings of segment %d: %w", seg, err)
	}
	var (
		changed []row
		dest    = make([]driver.Value, 3)
		l       []uint16
	)
	for {
		if err := rows.Next(dest); err != nil {
			rows.Close()
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("read postings of segment %d: %w", seg, err)
		}
		f, _ := dest[0].(int64)
		value, _ := dest[1].([]byte)
		if s, ok := dest[1].(string); ok {
			value = []byte(s)
		}
		data, _ := dest[2].([]byte)
		if l, err = decodeList(l[:0], data); err != nil {
			rows.Close()
			return fmt.Errorf("segment %d, %s: %w", seg, fieldName(uint8(f)), err)
		}
		if !slices.ContainsFunc(l, gone.has) {
			continue
		}
		kept := l[:0]
		for _, o := range l {
			if !gone.has(o) {
				kept = append(kept, o)
			}
		}
		r := row{f: f, value: slices.Clone(value)}
		if len(kept) > 0 {
			r.seqs = encodeList(nil, kept)
		}
		changed = append(changed, r)
	}
	for _, r := range changed {
		var err error
		if r.seqs == nil {
			_, err = w.conn.Exec(`DELETE FROM postings WHERE seg = ? AND field = ? AND value = ?`,
				[]driver.Value{int64(seg), r.f, r.value})
		} else {
			_, err = w.conn.Exec(`UPDATE postings SET seqs = ? WHERE seg = ? AND field = ? AND value = ?`,
				[]driver.Value{r.seqs, int64(seg), r.f, r.value})
		}
		if err != nil {
			return fmt.Errorf("rewrite postings of segment %d: %w", seg, err)
		}
	}
	return nil
}
