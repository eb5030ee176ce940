package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
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
	where, args, err := buildWhere(q)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	order := "ASC"
	if q.Desc {
		order = "DESC"
	}
	query := "SELECT seq, canonical FROM events" + where + " ORDER BY seq " + order + " LIMIT ?"
	recs, err := s.records(ctx, query, append(args, clampLimit(q.Limit))...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return recs, nil
}

// Count returns how many events match q.
func (s *Store) Count(ctx context.Context, q store.Query) (int64, error) {
	if err := s.readable(ctx); err != nil {
		return 0, err
	}
	where, args, err := buildWhere(q)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM events"+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count: %w", s.closedErr(err))
	}
	return n, nil
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
	where, args, err := buildWhere(q)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, err)
	}
	if where == "" {
		where = " WHERE "
	} else {
		where += " AND "
	}
	query := "SELECT " + col + ", count(*) AS n FROM events" + where + col + " IS NOT NULL GROUP BY " +
		col + " ORDER BY n DESC, " + col + " ASC LIMIT ?"
	rows, err := s.db.QueryContext(ctx, query, append(args, n)...)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", field, s.closedErr(err))
	}
	defer rows.Close()
	var out []store.Bucket
	for rows.Next() {
		var (
			v any
			b store.Bucket
		)
		if err := rows.Scan(&v, &b.Count); err != nil {
			return nil, fmt.Errorf("top %s: %w", field, err)
		}
		switch v := v.(type) {
		case []byte: // source_ip
			if len(v) != 16 {
				return nil, fmt.Errorf("top %s: stored address has %d bytes", field, len(v))
			}
			b.Value = netip.AddrFrom16([16]byte(v)).Unmap().String()
		case string:
			b.Value = v
		case int64:
			b.Value = strconv.FormatInt(v, 10)
		default:
			return nil, fmt.Errorf("top %s: unexpected %T", field, v)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("top %s: %w", field, s.closedErr(err))
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
	var out []store.Record
	for rows.Next() {
		var (
			seq int64
			r   store.Record
		)
		if err := rows.Scan(&seq, &r.Canonical); err != nil {
			return nil, err
		}
		r.Seq = uint64(seq)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.closedErr(err)
	}
	return out, nil
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

// buildWhere translates q into a WHERE clause (with a leading space, or empty)
// and its arguments.
func buildWhere(q store.Query) (string, []any, error) {
	var (
		conds []string
		args  []any
	)
	add := func(cond string, a ...any) {
		conds = append(conds, cond)
		args = append(args, a...)
	}
	if !q.From.IsZero() {
		add("ts >= ?", unixNano(q.From))
	}
	if !q.To.IsZero() {
		add("ts < ?", unixNano(q.To))
	}
	if q.AfterSeq > 0 {
		add("seq > ?", clampSeq(q.AfterSeq))
	}
	if q.BeforeSeq > 0 {
		add("seq < ?", clampSeq(q.BeforeSeq))
	}
	if q.SourceIP.IsValid() {
		lo, hi := addrRange(q.SourceIP)
		if lo == hi {
			add("source_ip = ?", lo[:])
		} else {
			add("source_ip BETWEEN ? AND ?", lo[:], hi[:])
		}
	}
	for _, f := range []struct {
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
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	if q.Status != 0 {
		add("status = ?", q.Status)
	}
	if q.Related != "" {
		add("seq IN (SELECT seq FROM related WHERE obj = ?)", q.Related)
	}
	if q.Text != "" {
		m, err := matchExpr(q.Text)
		if err != nil {
			return "", nil, err
		}
		add("seq IN (SELECT docid FROM events_fts WHERE events_fts MATCH ?)", m)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
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
