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
// rows of lists and packs for a segment written out, the in-memory lists
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
	if x != nil {
		x.remove(&gone)
	}
	m.mu.Unlock()
	if inMemory {
		// Part of it may be written out with the old lists, by this
		// process or by one that crashed while writing it out: the whole
		// segment is written out again, and packs made from the old
		// lists would not line up with the new ones.
		for _, table := range []string{"postings", "lists", "packs"} {
			if _, err := w.conn.Exec(`DELETE FROM `+table+` WHERE seg = ?`, []driver.Value{int64(seg)}); err != nil {
				return fmt.Errorf("drop postings of segment %d: %w", seg, err)
			}
		}
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
// offsets set in gone: its rows in lists, packs and (from earlier versions)
// postings. A pack keeps its first value as its key even when that value's
// events are all gone: the key still sorts at or before every value in the
// pack.
func (w *writer) purgeTable(seg uint64, gone *bitmap) error {
	const (
		inPostings = iota
		inLists
		inPacks
	)
	type row struct {
		table int64
		f     int64
		value []byte
		part  int64
		data  []byte // nil: delete the row
	}
	rows, err := w.conn.Query(`SELECT 0, field, value, 0, seqs FROM postings WHERE seg = ?1
		UNION ALL SELECT 1, field, value, part, seqs FROM lists WHERE seg = ?1
		UNION ALL SELECT 2, field, first, 0, data FROM packs WHERE seg = ?1`, []driver.Value{int64(seg)})
	if err != nil {
		return fmt.Errorf("read postings of segment %d: %w", seg, err)
	}
	var (
		changed []row
		dest    = make([]driver.Value, 5)
		l       []uint16
	)
	// without appends l less the offsets in gone to dst, and reports
	// whether any was.
	without := func(dst []uint16, l []uint16) ([]uint16, bool) {
		for _, o := range l {
			if !gone.has(o) {
				dst = append(dst, o)
			}
		}
		return dst, len(dst) < len(l)
	}
	for {
		if err := rows.Next(dest); err != nil {
			rows.Close()
			if errors.Is(err, io.EOF) {
				break
			}
			return fmt.Errorf("read postings of segment %d: %w", seg, err)
		}
		table, _ := dest[0].(int64)
		f, _ := dest[1].(int64)
		value, _ := dest[2].([]byte)
		if s, ok := dest[2].(string); ok {
			value = []byte(s)
		}
		part, _ := dest[3].(int64)
		data, _ := dest[4].([]byte)
		r := row{table: table, f: f, value: slices.Clone(value), part: part}
		if table == inPacks {
			var (
				pack []byte
				hit  bool
			)
			err = eachPacked(data, l, func(v []byte, l []uint16) error {
				kept, cut := without(make([]uint16, 0, packMaxOffs), l)
				hit = hit || cut
				if len(kept) > 0 {
					pack = appendPacked(pack, string(v), kept)
				}
				return nil
			})
			r.data = pack
			if err == nil && !hit {
				continue
			}
		} else if l, err = decodeList(l[:0], data); err == nil {
			kept, cut := without(nil, l)
			if !cut {
				continue
			}
			if len(kept) > 0 {
				r.data = encodeList(nil, kept)
			}
		}
		if err != nil {
			rows.Close()
			return fmt.Errorf("segment %d, %s: %w", seg, fieldName(uint8(f)), err)
		}
		changed = append(changed, r)
	}
	for _, r := range changed {
		var (
			table, where, data string
			args               = []driver.Value{int64(seg), r.f, r.value}
		)
		switch r.table {
		case inPostings:
			table, where, data = "postings", "value = ?", "seqs"
		case inLists:
			table, where, data = "lists", "value = ? AND part = ?", "seqs"
			args = append(args, r.part)
		default:
			table, where, data = "packs", "first = ?", "data"
		}
		var err error
		if r.data == nil {
			_, err = w.conn.Exec(`DELETE FROM `+table+` WHERE seg = ? AND field = ? AND `+where, args)
		} else {
			_, err = w.conn.Exec(`UPDATE `+table+` SET `+data+` = ? WHERE seg = ? AND field = ? AND `+where,
				append([]driver.Value{r.data}, args...))
		}
		if err != nil {
			return fmt.Errorf("rewrite postings of segment %d: %w", seg, err)
		}
	}
	return nil
}
