package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Read returns up to limit records with seq > after, in order. limit <= 0
// means store.DefaultLimit; it is capped at store.MaxLimit.
func (s *Store) Read(ctx context.Context, after uint64, limit int) ([]store.Record, error) {
	if err := s.readable(ctx); err != nil {
		return nil, err
	}
	last := s.lastSeq.Load()
	if recs, ok := s.w.recent.read(after, clampLimit(limit), last); ok {
		return recs, nil
	}
	// Not all in memory: from SQLite, up to the last durable event (a
	// later one may be committed but not yet fsynced).
	recs, err := s.records(ctx, `SELECT seq, canonical FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
		clampSeq(after), clampSeq(last), clampLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("read after %d: %w", after, err)
	}
	return recs, nil
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

// ReadParsed returns the parsed events after after, when the latest
// committed events hold them all (see store.ParsedReader).
func (s *Store) ReadParsed(ctx context.Context, after uint64, limit int) ([]uint64, []*event.Event, bool, error) {
	if err := s.readable(ctx); err != nil {
		return nil, nil, false, err
	}
	seqs, evs, ok := s.w.recent.readParsed(after, clampLimit(limit), s.lastSeq.Load())
	return seqs, evs, ok, nil
}
