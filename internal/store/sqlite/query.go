package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/vigilsec/vigil/internal/store"
)

// Read returns up to limit records with seq > after, in order. limit <= 0
// means store.DefaultLimit; it is capped at store.MaxLimit.
func (s *Store) Read(ctx context.Context, after uint64, limit int) ([]store.Record, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	recs, err := s.records(ctx, `SELECT seq, canonical FROM events WHERE seq > ? ORDER BY seq LIMIT ?`,
		clampSeq(after), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	return recs, nil
}

// Search returns the records matching q ordered by seq.
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Record, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	f, err := s.filter(q)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	limit := clampLimit(q.Limit)
	query := "SELECT seq, canonical FROM events" + f.where + " ORDER BY seq " + order + " LIMIT " + f.next()
	var out []store.Record
	err = s.each(ctx, f, query, q.Desc, func(rows *sql.Rows) (bool, error) {
		var err error
		if out, err = scanRecords(rows, out); err != nil {
			return false, err
		}
		return len(out) < limit, nil
	}, func() any { return limit - len(out) })
	if err != nil {
		return nil, fmt.Errorf("search: %w", s.closedErr(err))
	}
	return out, nil
}

// Count returns how many events match q.
func (s *Store) Count(ctx context.Context, q store.Query) (int64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	f, err := s.filter(q)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	var total int64
	err = s.each(ctx, f, "SELECT count(*) FROM events"+f.where, false, func(rows *sql.Rows) (bool, error) {
		for rows.Next() {
			var n int64
			if err := rows.Scan(&n); err != nil {
				return false, err
			}
			total += n
		}
		return true, rows.Err()
	}, nil)
	if err != nil {
		return 0, fmt.Errorf("count: %w", s.closedErr(err))
	}
	return total, nil
}

// each runs query once, or, when f is segmented, once per segment in seq
// order (reversed when desc) with the segment bound to ?1, until scan says
// to stop. extra, when set, gives one more argument for each run (the
// LIMIT still wanted).
func (s *Store) each(ctx context.Context, f filter, query string, desc bool,
	scan func(*sql.Rows) (more bool, err error), extra func() any) error {
	args := f.args
	if extra != nil {
		args = append(args[:len(args):len(args)], nil)
	}
	run := func(q func(...any) (*sql.Rows, error)) (bool, error) {
		if extra != nil {
			args[len(args)-1] = extra()
		}
		rows, err := q(args...)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		return scan(rows)
	}
	if !f.segmented {
		_, err := run(func(a ...any) (*sql.Rows, error) { return s.db.QueryContext(ctx, query, a...) })
		return err
	}
	if f.lo > f.hi {
		return nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := f.lo; i <= f.hi; i++ {
		seg := i
		if desc {
			seg = f.hi - (i - f.lo)
		}
		args[0] = int64(seg)
		more, err := run(func(a ...any) (*sql.Rows, error) { return stmt.QueryContext(ctx, a...) })
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// groupColumns maps store.GroupFields to columns.
var groupColumns = map[string]string{
	"source.ip":                 "source_ip",
	"user.name":                 "user_name",
	"user.id":                   "user_id",
	"event.action":              "action",
	"event.category":            "category",
	"event.outcome":             "outcome",
	"http.request.method":       "method",
	"url.path":                  "path",
	"http.response.status_code": "status",
	"service.name":              "service",
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
func (s *Store) Top(ctx context.Context, q store.Query, field string, n int) ([]store.Bucket, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	col, ok := groupColumns[field]
	if !ok {
		return nil, fmt.Errorf("top: cannot group by %q: field must be one of %s", field, strings.Join(store.GroupFields, ", "))
	}
	if n <= 0 {
		n = DefaultTop
	}
	n = min(n, MaxTop)
	f, err := s.filter(q)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, err)
	}
	where := f.where
	if where == "" {
		where = " WHERE "
	} else {
		where += " AND "
	}
	query := "SELECT " + col + ", count(*) AS n FROM events" + where + col + " IS NOT NULL GROUP BY " + col
	if !f.segmented {
		// SQLite orders and cuts: a field with millions of values stays
		// in SQLite.
		query += " ORDER BY n DESC, " + col + " ASC LIMIT " + f.next()
	}
	var limit func() any
	if !f.segmented {
		limit = func() any { return n }
	}
	counts := map[any]int64{}
	var order []any // values in the order SQLite returned them
	err = s.each(ctx, f, query, false, func(rows *sql.Rows) (bool, error) {
		for rows.Next() {
			var (
				v any
				n int64
			)
			if err := rows.Scan(&v, &n); err != nil {
				return false, err
			}
			if b, ok := v.([]byte); ok {
				v = string(b) // comparable; sorts like the blob
			}
			if _, seen := counts[v]; !seen {
				order = append(order, v)
			}
			counts[v] += n
		}
		return true, rows.Err()
	}, limit)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, s.closedErr(err))
	}
	if f.segmented {
		// Added up over segments: order as SQLite does, count then value.
		slices.SortFunc(order, func(a, b any) int {
			if c := cmp.Compare(counts[b], counts[a]); c != 0 {
				return c
			}
			if x, ok := a.(int64); ok {
				return cmp.Compare(x, b.(int64))
			}
			return strings.Compare(a.(string), b.(string))
		})
		order = order[:min(n, len(order))]
	}
	out := make([]store.Bucket, 0, len(order))
	for _, v := range order {
		b := store.Bucket{Count: counts[v]}
		switch v := v.(type) {
		case string:
			if col == "source_ip" {
				if len(v) != 16 {
					return nil, fmt.Errorf("top %s: stored address has %d bytes", field, len(v))
				}
				b.Value = netip.AddrFrom16([16]byte([]byte(v))).Unmap().String()
			} else {
				b.Value = v
			}
		case int64:
			b.Value = strconv.FormatInt(v, 10)
		default:
			return nil, fmt.Errorf("top %s: unexpected %T", field, v)
		}
		out = append(out, b)
	}
	return out, nil
}

// Cursor returns the position saved for name (0 when unknown).
func (s *Store) Cursor(ctx context.Context, name string) (uint64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	var seq int64
	err := s.db.QueryRowContext(ctx, "SELECT seq FROM cursors WHERE name = ?", name).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cursor %q: %w", name, s.closedErr(err))
	}
	return uint64(seq), nil
}

func (s *Store) records(ctx context.Context, query string, args ...any) ([]store.Record, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.closedErr(err)
	}
	defer rows.Close()
	out, err := scanRecords(rows, nil)
	if err != nil {
		return nil, s.closedErr(err)
	}
	return out, nil
}

// scanRecords appends the (seq, canonical) rows to out.
func scanRecords(rows *sql.Rows, out []store.Record) ([]store.Record, error) {
	for rows.Next() {
		var (
			seq int64
			r   store.Record
		)
		if err := rows.Scan(&seq, &r.Canonical); err != nil {
			return out, err
		}
		r.Seq = uint64(seq)
		out = append(out, r)
	}
	return out, rows.Err()
}

// closedErr turns the error of a read racing with Close into ErrClosed.
func (s *Store) closedErr(err error) error {
	if s.isShut.Load() && err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return store.ErrClosed
	}
	return err
}

func clampLimit(n int) int {
	if n <= 0 {
		return store.DefaultLimit
	}
	return min(n, store.MaxLimit)
}

func clampSeq(seq uint64) int64 { return int64(min(seq, maxSeq)) }

// segShift gives an event's segment: seq >> segShift. It must match the
// expression in the schema's segment-prefixed indexes.
const segShift = 16

// filter is a Query translated into SQL.
type filter struct {
	where string // " WHERE ..." or empty
	args  []any  // numbered ?1, ?2... in where
	// segmented filters use a segment-prefixed index. They are run once
	// per segment lo..hi, with the segment in args[0] (?1).
	segmented bool
	lo, hi    uint64
}

// next returns the placeholder of the argument after f's.
func (f filter) next() string { return "?" + strconv.Itoa(len(f.args)+1) }

// filter translates q for the events committed so far.
func (s *Store) filter(q store.Query) (filter, error) {
	f, err := buildFilter(q)
	if err != nil || !f.segmented {
		return f, err
	}
	last := s.lastSeq.Load()
	if q.BeforeSeq > 0 {
		last = min(last, q.BeforeSeq-1)
	}
	f.lo, f.hi = 1, 0 // none
	if last > q.AfterSeq {
		f.lo, f.hi = (q.AfterSeq+1)>>segShift, last>>segShift
	}
	return f, nil
}

// buildFilter translates q into a WHERE clause with numbered parameters.
func buildFilter(q store.Query) (filter, error) {
	var (
		f     filter
		conds []string
	)
	arg := func(v any) string {
		f.args = append(f.args, v)
		return "?" + strconv.Itoa(len(f.args))
	}
	f.segmented = q.SourceIP.IsValid() || q.UserName != "" || q.Path != "" || q.RequestID != "" || q.Related != ""
	if f.segmented {
		conds = append(conds, "seq >> 16 = "+arg(int64(0)))
	}
	if !q.From.IsZero() {
		conds = append(conds, "ts >= "+arg(unixNano(q.From)))
	}
	if !q.To.IsZero() {
		conds = append(conds, "ts < "+arg(unixNano(q.To)))
	}
	if q.AfterSeq > 0 {
		conds = append(conds, "seq > "+arg(clampSeq(q.AfterSeq)))
	}
	if q.BeforeSeq > 0 {
		conds = append(conds, "seq < "+arg(clampSeq(q.BeforeSeq)))
	}
	if q.SourceIP.IsValid() {
		lo, hi := addrRange(q.SourceIP)
		if lo == hi {
			conds = append(conds, "source_ip = "+arg(lo[:]))
		} else {
			conds = append(conds, "source_ip BETWEEN "+arg(lo[:])+" AND "+arg(hi[:]))
		}
	}
	for _, c := range []struct {
		col, v string
	}{
		{"user_name", q.UserName},
		{"user_id", q.UserID},
		{"action", q.Action},
		{"category", q.Category},
		{"outcome", q.Outcome},
		{"method", q.Method},
		{"path", q.Path},
		{"request_id", q.RequestID},
		{"service", q.Service},
	} {
		if c.v != "" {
			conds = append(conds, c.col+" = "+arg(c.v))
		}
	}
	if q.Status != 0 {
		conds = append(conds, "status = "+arg(int64(q.Status)))
	}
	if q.Related != "" {
		conds = append(conds, "seq IN (SELECT seq FROM related WHERE seg = ?1 AND obj = "+arg(q.Related)+")")
	}
	if q.Text != "" {
		m, err := matchExpr(q.Text)
		if err != nil {
			return filter{}, err
		}
		conds = append(conds, "seq IN (SELECT docid FROM events_fts WHERE events_fts MATCH "+arg(m)+")")
	}
	if len(conds) > 0 {
		f.where = " WHERE " + strings.Join(conds, " AND ")
	}
	return f, nil
}

// addrRange returns the first and last 16-byte addresses of p, IPv4 in its
// IPv4-mapped IPv6 form as stored.
func addrRange(p netip.Prefix) (lo, hi [16]byte) {
	p = p.Masked()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	lo = p.Addr().As16()
	hi = lo
	for i := bits; i < 128; i++ {
		hi[i/8] |= 1 << (7 - i%8)
	}
	return lo, hi
}

// maxTextWords bounds the words of a full-text query.
const maxTextWords = 32

// matchExpr turns user text into an FTS4 MATCH expression in which every
// whitespace-separated word must match. Each word is quoted as a phrase, so
// FTS operators (AND, OR, NOT, NEAR, -, parentheses, column filters) in the
// input are plain words; a word with punctuation ("a-b") matches as the
// phrase of its parts. Words without a letter or digit are dropped.
func matchExpr(text string) (string, error) {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(text) {
		// A double quote cannot be escaped inside an FTS phrase; the
		// tokenizer splits on it anyway.
		w = strings.ReplaceAll(w, `"`, " ")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue
		}
		if n++; n > maxTextWords {
			return "", fmt.Errorf("text search has more than %d words", maxTextWords)
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteByte('"')
		b.WriteString(w)
		b.WriteByte('"')
	}
	if n == 0 {
		return "", fmt.Errorf("text search %q has no words", text)
	}
	return b.String(), nil
}
