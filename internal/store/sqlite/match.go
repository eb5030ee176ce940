package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/vigilsec/vigil/internal/store"
)

// A search runs segment by segment: for each segment in the query's
// sequence range it computes the exact set of matching events as a bitmap
// (the AND of the postings of each condition, cut to the sequence range and,
// for a time range, to the events of the blocks the range overlaps), then
// reads the records it needs by sequence number.

// cond is one indexed condition: the event holds value v in field f, or,
// when ranged, a value in [lo, hi] (a CIDR range of addresses).
type cond struct {
	f      uint8
	v      string
	ranged bool
	lo, hi string
}

// plan is a Query resolved against the store when the search starts.
type plan struct {
	lo, hi uint64 // sequence range, inclusive; empty when lo > hi
	conds  []cond
	// A time range keeps the blocks in blocks: inside[b] is true when all
	// of b's events are in the range, false when only some may be.
	timed    bool
	from, to int64 // [from, to), Unix nanoseconds
	blocks   map[uint64]bool
}

// maxTextWords bounds the words of a full-text query.
const maxTextWords = 32

// queryWords returns the words that text search for: each whitespace-
// separated word of text split as messages are (so "a-b" asks for both a
// and b). Punctuation is no operator: every word must match.
func queryWords(text string) ([]string, error) {
	var words []string
	for _, field := range strings.Fields(text) {
		forEachWord(field, func(w string) bool {
			words = append(words, w)
			return true
		})
		if len(words) > maxTextWords {
			return nil, fmt.Errorf("text search has more than %d words", maxTextWords)
		}
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("text search %q has no words", text)
	}
	return words, nil
}

// newPlan resolves q; conn reads the time blocks.
func (s *Store) newPlan(ctx context.Context, conn *sql.Conn, q store.Query) (*plan, error) {
	p := &plan{lo: q.AfterSeq + 1, hi: s.lastSeq.Load()}
	if q.AfterSeq >= maxSeq {
		p.lo = maxSeq
		p.hi = 0
	}
	if q.BeforeSeq > 0 {
		p.hi = min(p.hi, q.BeforeSeq-1)
	}
	if q.SourceIP.IsValid() {
		lo, hi := addrRange(q.SourceIP)
		if lo == hi {
			p.conds = append(p.conds, cond{f: fSourceIP, v: string(lo[:])})
		} else {
			p.conds = append(p.conds, cond{f: fSourceIP, ranged: true, lo: string(lo[:]), hi: string(hi[:])})
		}
	}
	for _, c := range []struct {
		f uint8
		v string
	}{
		{fUserName, q.UserName}, {fUserID, q.UserID}, {fAction, q.Action},
		{fCategory, q.Category}, {fOutcome, q.Outcome}, {fMethod, q.Method},
		{fPath, q.Path}, {fRequestID, q.RequestID}, {fService, q.Service},
		{fRelated, q.Related},
	} {
		if c.v != "" {
			if len(c.v) > maxValueBytes {
				p.lo, p.hi = 1, 0 // no stored value is that long
			}
			p.conds = append(p.conds, cond{f: c.f, v: c.v})
		}
	}
	if q.Status != 0 {
		p.conds = append(p.conds, cond{f: fStatus, v: strconv.Itoa(q.Status)})
	}
	if q.Text != "" {
		words, err := queryWords(q.Text)
		if err != nil {
			return nil, err
		}
		for _, w := range words {
			p.conds = append(p.conds, cond{f: fWord, v: w})
		}
	}
	if len(p.conds) == 0 {
		// Sequence numbers may be missing (purged, or never handed out
		// below a restored last_seq): this list says which events exist.
		p.conds = append(p.conds, cond{f: fAll})
	}
	if !q.From.IsZero() || !q.To.IsZero() {
		p.timed = true
		p.from, p.to = unixNano(minTime), unixNano(maxTime)
		if !q.From.IsZero() {
			p.from = unixNano(q.From)
		}
		if !q.To.IsZero() {
			p.to = unixNano(q.To)
		}
		if err := p.loadBlocks(ctx, conn); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// loadBlocks keeps the time blocks the time range overlaps.
func (p *plan) loadBlocks(ctx context.Context, conn *sql.Conn) error {
	p.blocks = map[uint64]bool{}
	if p.lo > p.hi || p.from >= p.to {
		p.lo, p.hi = 1, 0
		return nil
	}
	rows, err := conn.QueryContext(ctx, `SELECT block, min_ts, max_ts FROM timeblocks
		WHERE block BETWEEN ? AND ? AND max_ts >= ? AND min_ts < ?`,
		int64(p.lo>>blockShift), int64(p.hi>>blockShift), p.from, p.to)
	if err != nil {
		return fmt.Errorf("read time blocks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var b, lo, hi int64
		if err := rows.Scan(&b, &lo, &hi); err != nil {
			return fmt.Errorf("read time blocks: %w", err)
		}
		p.blocks[uint64(b)] = lo >= p.from && hi < p.to
	}
	return rows.Err()
}

// segments returns the segments to search in order.
func (p *plan) segments(desc bool) []uint64 {
	if p.lo > p.hi {
		return nil
	}
	var segs []uint64
	for seg := p.lo >> segShift; seg <= p.hi>>segShift; seg++ {
		if p.timed && !p.anyBlock(seg) {
			continue
		}
		segs = append(segs, seg)
	}
	if desc {
		slices.Reverse(segs)
	}
	return segs
}

const blocksPerSeg = 1 << (segShift - blockShift)

func (p *plan) anyBlock(seg uint64) bool {
	for b := seg * blocksPerSeg; b < (seg+1)*blocksPerSeg; b++ {
		if _, ok := p.blocks[b]; ok {
			return true
		}
	}
	return false
}

// match sets bm to the events of seg that match p. It reports whether any
// does.
func (s *Store) match(ctx context.Context, conn *sql.Conn, p *plan, seg uint64, bm *bitmap) (bool, error) {
	*bm = bitmap{}
	base := seg << segShift
	lo, hi := max(p.lo, base), min(p.hi, base+segSize-1)
	bm.setRange(int(lo-base), int(hi-base)+1)
	var cb bitmap
	for _, c := range p.conds {
		cb = bitmap{}
		if err := s.postings(ctx, conn, seg, c, &cb); err != nil {
			return false, err
		}
		bm.and(&cb)
		if bm.empty() {
			return false, nil
		}
	}
	if p.timed {
		if err := s.matchTime(ctx, conn, p, seg, bm); err != nil {
			return false, err
		}
	}
	return !bm.empty(), nil
}

// matchTime clears the events of bm outside p's time range: blocks outside
// the range wholly, blocks across its bounds event by event.
func (s *Store) matchTime(ctx context.Context, conn *sql.Conn, p *plan, seg uint64, bm *bitmap) error {
	const words = 1 << blockShift / 64 // bitmap words per block
	for i := range uint64(blocksPerSeg) {
		part := bm[i*words : (i+1)*words]
		if !slices.ContainsFunc(part, func(w uint64) bool { return w != 0 }) {
			continue
		}
		inside, ok := p.blocks[seg*blocksPerSeg+i]
		if !ok {
			clear(part)
			continue
		}
		if inside {
			continue
		}
		first := seg<<segShift + i<<blockShift
		rows, err := conn.QueryContext(ctx, `SELECT seq FROM events
			WHERE seq BETWEEN ? AND ? AND ts >= ? AND ts < ?`,
			int64(first), int64(first+1<<blockShift-1), p.from, p.to)
		if err != nil {
			return fmt.Errorf("read times of block %d: %w", first>>blockShift, err)
		}
		var keep bitmap
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return err
			}
			keep.set(uint16(uint64(seq) & (segSize - 1)))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for j := range part {
			part[j] &= keep[i*words+uint64(j)]
		}
	}
	return nil
}

// postings sets in bm the events of seg that satisfy c.
func (s *Store) postings(ctx context.Context, conn *sql.Conn, seg uint64, c cond, bm *bitmap) error {
	var lists [][]uint16
	m := s.idx
	m.mu.RLock()
	x := m.segment(seg)
	inMemory := seg >= m.flushed
	if x != nil {
		if c.ranged {
			for v, p := range x.lists[c.f] {
				if v >= c.lo && v <= c.hi {
					lists = append(lists, p.offs)
				}
			}
		} else if p, ok := x.lists[c.f][c.v]; ok {
			lists = append(lists, p.offs)
		}
	}
	b := m.bounds[seg]
	m.mu.RUnlock()
	if !inMemory && (b == nil || !b.outside(c)) {
		var err error
		if lists, err = s.readPostings(ctx, conn, seg, c); err != nil {
			return err
		}
	}
	for _, l := range lists {
		for _, o := range l {
			bm.set(o)
		}
	}
	return nil
}

// readPostings reads the lists of c in a written-out segment: from the
// lists table (each part of a list is a list of its own here), from the
// postings table of earlier versions, and from the packs that can hold c's
// values (see packMaxOffs): the one lo falls in, up to the last one starting
// at or before hi.
func (s *Store) readPostings(ctx context.Context, conn *sql.Conn, seg uint64, c cond) ([][]uint16, error) {
	s.postingsReads.Add(1)
	lo, hi := c.v, c.v
	if c.ranged {
		lo, hi = c.lo, c.hi
	}
	args := []any{int64(seg), int64(c.f), []byte(lo), []byte(hi)}
	ranged, legacy := 0, 0
	if c.ranged {
		ranged = 1
	} else {
		args = args[:3]
	}
	if s.legacy {
		legacy = 1
	}
	rows, err := conn.QueryContext(ctx, postingsSQL[ranged][legacy], args...)
	if err != nil {
		return nil, fmt.Errorf("read postings of segment %d: %w", seg, err)
	}
	defer rows.Close()
	var (
		lists  [][]uint16
		packed bool
		data   []byte
	)
	for rows.Next() {
		if err := rows.Scan(&packed, &data); err != nil {
			return nil, err
		}
		if packed {
			err = eachPacked(data, nil, func(v []byte, l []uint16) error {
				if string(v) >= lo && string(v) <= hi {
					lists = append(lists, slices.Clone(l))
				}
				return nil
			})
		} else {
			var l []uint16
			l, err = decodeList(nil, data)
			lists = append(lists, l)
		}
		if err != nil {
			return nil, fmt.Errorf("segment %d, %s: %w", seg, fieldName(c.f), err)
		}
	}
	return lists, rows.Err()
}

// postingsSQL[ranged][legacy] reads a condition's lists in a segment: an
// exact value's (?3) or a range's (?3 to ?4), from the lists, from the
// postings table too in a store with rows there (written before schema
// version 5), and from the packs.
var postingsSQL = func() (q [2][2]string) {
	for ranged, cmp := range []string{"= ?3", "BETWEEN ?3 AND ?4"} {
		lists := "SELECT 0, seqs FROM lists WHERE seg = ?1 AND field = ?2 AND value " + cmp
		legacy := " UNION ALL SELECT 0, seqs FROM postings WHERE seg = ?1 AND field = ?2 AND value " + cmp
		packs := ` UNION ALL SELECT * FROM (SELECT 1, data FROM packs WHERE seg = ?1 AND field = ?2 AND first <= ?3
			ORDER BY first DESC LIMIT 1)`
		if ranged == 1 {
			packs = ` UNION ALL SELECT 1, data FROM packs WHERE seg = ?1 AND field = ?2 AND first <= ?4
			AND first >= coalesce((SELECT max(first) FROM packs WHERE seg = ?1 AND field = ?2 AND first <= ?3), ?3)`
		}
		q[ranged] = [2]string{lists + packs, lists + legacy + packs}
	}
	return q
}()

// openPlan takes a read connection for one search and resolves q on it.
// The caller closes the connection.
func (s *Store) openPlan(ctx context.Context, q store.Query) (*sql.Conn, *plan, error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, nil, s.closedErr(err)
	}
	p, err := s.newPlan(ctx, conn, q)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, p, nil
}

// Search returns the records matching q ordered by seq.
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Record, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	out, err := s.search(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("search: %w", s.closedErr(err))
	}
	return out, nil
}

func (s *Store) search(ctx context.Context, q store.Query) ([]store.Record, error) {
	conn, p, err := s.openPlan(ctx, q)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	limit := clampLimit(q.Limit)
	var (
		out  []store.Record
		bm   bitmap
		offs []uint16
	)
	for _, seg := range p.segments(q.Desc) {
		any, err := s.match(ctx, conn, p, seg, &bm)
		if err != nil {
			return nil, err
		}
		if !any {
			continue
		}
		offs = bm.offsets(offs[:0])
		if q.Desc {
			slices.Reverse(offs)
		}
		offs = offs[:min(len(offs), limit-len(out))]
		seqs := make([]uint64, len(offs))
		for i, o := range offs {
			seqs[i] = seg<<segShift + uint64(o)
		}
		if out, err = readSeqs(ctx, conn, seqs, out); err != nil {
			return nil, err
		}
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// readSeqs appends the records of seqs, in the order given.
func readSeqs(ctx context.Context, conn *sql.Conn, seqs []uint64, out []store.Record) ([]store.Record, error) {
	const chunk = 500
	for len(seqs) > 0 {
		n := min(len(seqs), chunk)
		part := seqs[:n]
		seqs = seqs[n:]
		lo, hi := slices.Min(part), slices.Max(part)
		var rows *sql.Rows
		var err error
		if hi-lo+1 == uint64(n) { // contiguous: a range scan
			rows, err = conn.QueryContext(ctx, `SELECT seq, canonical FROM events WHERE seq BETWEEN ? AND ?`, int64(lo), int64(hi))
		} else {
			args := make([]any, n)
			for i, seq := range part {
				args[i] = int64(seq)
			}
			rows, err = conn.QueryContext(ctx, `SELECT seq, canonical FROM events WHERE seq IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		}
		if err != nil {
			return out, err
		}
		got, err := scanRecords(rows, make([]store.Record, 0, n))
		rows.Close()
		if err != nil {
			return out, err
		}
		bySeq := make(map[uint64]store.Record, n)
		for _, r := range got {
			bySeq[r.Seq] = r
		}
		for _, seq := range part {
			// An event purged between reading the postings and
			// reading the rows is left out.
			if r, ok := bySeq[seq]; ok {
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// Count returns how many events match q.
func (s *Store) Count(ctx context.Context, q store.Query) (int64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	n, err := s.count(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("count: %w", s.closedErr(err))
	}
	return n, nil
}

func (s *Store) count(ctx context.Context, q store.Query) (int64, error) {
	conn, p, err := s.openPlan(ctx, q)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var (
		total int64
		bm    bitmap
	)
	for _, seg := range p.segments(false) {
		if _, err := s.match(ctx, conn, p, seg, &bm); err != nil {
			return 0, err
		}
		total += int64(bm.count())
	}
	return total, nil
}

// groupFields maps store.GroupFields to indexed fields.
var groupFields = map[string]uint8{
	"source.ip":                 fSourceIP,
	"user.name":                 fUserName,
	"user.id":                   fUserID,
	"event.action":              fAction,
	"event.category":            fCategory,
	"event.outcome":             fOutcome,
	"http.request.method":       fMethod,
	"url.path":                  fPath,
	"http.response.status_code": fStatus,
	"service.name":              fService,
}

// DefaultTop and MaxTop bound the n of Top.
const (
	DefaultTop = 10
	MaxTop     = 1000
)

// Top returns the n most frequent values of field among the events matching
// q, most frequent first, ties by value ascending (addresses in address
// order, status codes numerically, strings byte-wise). Events without the
// field are not counted. n <= 0 means DefaultTop; n is capped at MaxTop.
// It counts, in each segment, the matching events of each value's postings.
func (s *Store) Top(ctx context.Context, q store.Query, field string, n int) ([]store.Bucket, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	f, ok := groupFields[field]
	if !ok {
		return nil, fmt.Errorf("top: cannot group by %q: field must be one of %s", field, strings.Join(store.GroupFields, ", "))
	}
	if n <= 0 {
		n = DefaultTop
	}
	n = min(n, MaxTop)
	out, err := s.top(ctx, q, f, n)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, s.closedErr(err))
	}
	return out, nil
}

func (s *Store) top(ctx context.Context, q store.Query, f uint8, n int) ([]store.Bucket, error) {
	conn, p, err := s.openPlan(ctx, q)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	counts := map[string]int64{}
	var bm bitmap
	for _, seg := range p.segments(false) {
		any, err := s.match(ctx, conn, p, seg, &bm)
		if err != nil {
			return nil, err
		}
		if !any {
			continue
		}
		if err := s.countValues(ctx, conn, seg, f, &bm, counts); err != nil {
			return nil, err
		}
	}
	type bucket struct {
		v string
		n int64
	}
	all := make([]bucket, 0, len(counts))
	for v, c := range counts {
		all = append(all, bucket{v, c})
	}
	slices.SortFunc(all, func(a, b bucket) int {
		if c := cmp.Compare(b.n, a.n); c != 0 {
			return c
		}
		if f == fStatus {
			x, _ := strconv.Atoi(a.v)
			y, _ := strconv.Atoi(b.v)
			return cmp.Compare(x, y)
		}
		return strings.Compare(a.v, b.v) // addresses: 16-byte form, address order
	})
	all = all[:min(n, len(all))]
	out := make([]store.Bucket, len(all))
	for i, b := range all {
		out[i] = store.Bucket{Value: b.v, Count: b.n}
		if f == fSourceIP {
			if len(b.v) != 16 {
				return nil, fmt.Errorf("stored address has %d bytes", len(b.v))
			}
			out[i].Value = netip.AddrFrom16([16]byte([]byte(b.v))).Unmap().String()
		}
	}
	return out, nil
}

// countValues adds, for each value of field f in seg, how many of its
// events are in bm.
func (s *Store) countValues(ctx context.Context, conn *sql.Conn, seg uint64, f uint8, bm *bitmap, counts map[string]int64) error {
	m := s.idx
	m.mu.RLock()
	inMemory := seg >= m.flushed
	if x := m.segment(seg); x != nil {
		for v, p := range x.lists[f] {
			if c := bm.countList(p.offs); c > 0 {
				counts[v] += int64(c)
			}
		}
	}
	m.mu.RUnlock()
	if inMemory {
		return nil
	}
	q := `SELECT value, seqs, 0 FROM lists WHERE seg = ?1 AND field = ?2
		UNION ALL SELECT first, data, 1 FROM packs WHERE seg = ?1 AND field = ?2`
	if s.legacy {
		q += " UNION ALL SELECT value, seqs, 0 FROM postings WHERE seg = ?1 AND field = ?2"
	}
	rows, err := conn.QueryContext(ctx, q, int64(seg), int64(f))
	if err != nil {
		return fmt.Errorf("read postings of segment %d: %w", seg, err)
	}
	defer rows.Close()
	var (
		value, data []byte
		packed      bool
		l           []uint16
	)
	count := func(v []byte, l []uint16) error {
		if c := bm.countList(l); c > 0 {
			counts[string(v)] += int64(c)
		}
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(&value, &data, &packed); err != nil {
			return err
		}
		if packed {
			err = eachPacked(data, l, count)
		} else if l, err = decodeList(l[:0], data); err == nil {
			err = count(value, l)
		}
		if err != nil {
			return fmt.Errorf("segment %d, %s %q: %w", seg, fieldName(f), value, err)
		}
	}
	return rows.Err()
}
