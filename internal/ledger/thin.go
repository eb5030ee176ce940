package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Checkpoints are signed up to once a second while events arrive: some
// 86,400 a day, 20 MB of ledger.db a day, for ever. Old ones are thinned:
// every checkpoint of the last KeepAllCheckpoints stays; older ones stay
// only when they are the first of their hour (UTC), and, once older than
// KeepHourlyCheckpoints, the first of their day. The latest checkpoint
// always stays.
//
// What thinning gives up: "vigil verify --data-dir" compares the tree with
// every stored checkpoint, and so narrows a rewrite of old events down to
// the span between two of them: an hour or a day instead of a second.
// Consistency and inclusion proofs come from the tree, not from stored
// checkpoints, and witnesses keep their own copies.
const (
	KeepAllCheckpoints    = 24 * time.Hour
	KeepHourlyCheckpoints = 30 * 24 * time.Hour
	// thinEvery is how often sign thins the checkpoints.
	thinEvery = time.Hour
	// thinBatch bounds the checkpoints one thinning looks at per band, so
	// that a ledger.db from before thinning (millions of checkpoints) is
	// worked through an hour at a time without holding up signing.
	thinBatch = 200000
)

// thinCheckpoints applies the thinning to the checkpoints not thinned yet.
// Each band (hourly, daily) keeps in meta the size of the last checkpoint
// it looked at, so each checkpoint is read at most twice in all.
func (l *Ledger) thinCheckpoints(ctx context.Context, now time.Time) error {
	latest := l.Checkpoint().Size
	for _, band := range []struct {
		mark   string
		cutoff time.Time
		unit   time.Duration
	}{
		{"thinned_hourly", now.Add(-KeepAllCheckpoints), time.Hour},
		{"thinned_daily", now.Add(-KeepHourlyCheckpoints), 24 * time.Hour},
	} {
		if err := l.thinBand(ctx, band.mark, band.cutoff, band.unit, latest); err != nil {
			return fmt.Errorf("thin checkpoints (%s): %w", band.mark, err)
		}
	}
	return nil
}

// thinBand deletes, among the checkpoints after the band's mark signed
// before cutoff, those that are not the first of their unit (hour or day)
// and not the latest.
func (l *Ledger) thinBand(ctx context.Context, mark string, cutoff time.Time, unit time.Duration, latest int64) error {
	v, _, err := readMeta(ctx, l.db, mark)
	if err != nil {
		return err
	}
	from, _ := strconv.ParseInt(v, 10, 64)
	// The unit of the last checkpoint kept at or before the mark: the next
	// one is the first of its unit only if its unit differs.
	var (
		prev     time.Time
		prevNote string
	)
	err = l.db.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE size <= ? ORDER BY size DESC LIMIT 1`, from).Scan(&prevNote)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return err
	default:
		if prev, err = noteTime(prevNote); err != nil {
			return err
		}
	}
	rows, err := l.db.QueryContext(ctx, `SELECT size, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, from, thinBatch)
	if err != nil {
		return err
	}
	var (
		drop []int64
		last = from
	)
	for rows.Next() {
		var (
			size int64
			note string
		)
		if err := rows.Scan(&size, &note); err != nil {
			rows.Close()
			return err
		}
		t, err := noteTime(note)
		if err != nil {
			rows.Close()
			return fmt.Errorf("checkpoint of size %d: %w", size, err)
		}
		if !t.Before(cutoff) || size >= latest {
			break
		}
		if !prev.IsZero() && t.Truncate(unit).Equal(prev.Truncate(unit)) {
			drop = append(drop, size)
		} else {
			prev = t
		}
		last = size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if last == from {
		return nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, size := range drop {
		if _, err := tx.ExecContext(ctx, `DELETE FROM checkpoints WHERE size = ?`, size); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, mark, last); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if len(drop) > 0 {
		l.log.Info("ledger: thinned old checkpoints", "band", mark, "removed", len(drop), "up_to_size", last)
	}
	return nil
}

// noteTime reads the time line of a stored checkpoint note (signed by this
// ledger: its signature is not checked here).
func noteTime(note string) (time.Time, error) {
	for _, line := range strings.Split(note, "\n") {
		if v, ok := strings.CutPrefix(line, "time "); ok {
			return time.Parse(time.RFC3339Nano, v)
		}
		if line == "" {
			break // the signatures follow the blank line
		}
	}
	return time.Time{}, errors.New("no time line")
}
