package ledger

import (
	"context"
	"testing"
	"time"
)

// TestThinCheckpoints signs a checkpoint every 30 minutes for 33 days (and
// a burst of one a second in one hour) and checks what stays: all of the
// last day, the first of each hour back to 30 days, the first of each day
// before; the latest always. The data directory still verifies.
func TestThinCheckpoints(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	c := newClock()
	l := openLedger(t, dir, st, Options{Now: c.Now, Origin: "vigil.test/log"})
	n := 0
	sign := func() {
		t.Helper()
		appendEvents(t, st, n, n+1)
		n++
		if _, err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	burstAt := t0.Add(36 * time.Hour)
	for c.Now().Before(t0.Add(33 * 24 * time.Hour)) {
		c.Add(30 * time.Minute)
		sign()
		if c.Now().Equal(burstAt) {
			for range 5 {
				c.Add(time.Second)
				sign()
			}
		}
	}
	now := c.Now()
	rows, err := l.db.QueryContext(ctx, `SELECT size, note FROM checkpoints ORDER BY size`)
	if err != nil {
		t.Fatal(err)
	}
	var (
		recent, hourly, daily int
		seen                  = map[time.Time]bool{}
		latest                int64
	)
	for rows.Next() {
		var (
			size int64
			note string
		)
		if err := rows.Scan(&size, &note); err != nil {
			t.Fatal(err)
		}
		at, err := noteTime(note)
		if err != nil {
			t.Fatal(err)
		}
		latest = size
		// Thinning runs at most once an hour: allow its lag.
		switch age := now.Sub(at); {
		case age < KeepAllCheckpoints+thinEvery:
			recent++
		case age < KeepHourlyCheckpoints+thinEvery:
			if seen[at.Truncate(time.Hour)] {
				t.Errorf("two checkpoints of the hour %v kept", at.Truncate(time.Hour))
			}
			seen[at.Truncate(time.Hour)] = true
			hourly++
		default:
			if seen[at.Truncate(24*time.Hour)] {
				t.Errorf("two checkpoints of the day %v kept", at.Truncate(24*time.Hour))
			}
			seen[at.Truncate(24*time.Hour)] = true
			daily++
		}
	}
	rows.Close()
	if latest != int64(n) {
		t.Errorf("latest stored checkpoint covers %d events, want %d", latest, n)
	}
	// 48 a day signed; the last day's all kept, one an hour for 29 days
	// more, one a day before (the burst thinned away with the rest).
	if recent < 48 || recent > 50 || hourly < 29*24-2 || hourly > 29*24+2 || daily < 2 || daily > 4 {
		t.Errorf("kept %d recent, %d hourly, %d daily checkpoints", recent, hourly, daily)
	}
	l.Close()
	v, err := ParsePublicKey(l.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyDataDir(ctx, dir, v, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Checkpoints != recent+hourly+daily {
		t.Errorf("verify after thinning: %+v", rep)
	}
}
