package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"path/filepath"
	"strconv"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TreeAltered: a stored interior hash of ledger.db differs from the one
// computed from the recorded leaves (only VerifyDataDir reports it).
const TreeAltered Reason = "tree altered"

// EventsFile is the store's database in the data directory.
const EventsFile = "events.db"

// VerifyDataDir checks a stopped server's data directory with nothing but
// the public key: it opens events.db and ledger.db read-only, recomputes
// every leaf from the stored canonical bytes, rebuilds the tree, compares
// it with the stored hashes and with every checkpoint in ledger.db, whose
// signatures must verify with v or with a key the key rotations in
// ledger.db link to v (NewKeys). Tampering is reported in the Report; the
// error is for files that cannot be read.
func VerifyDataDir(ctx context.Context, dir string, v note.Verifier, opts VerifyOptions) (*Report, error) {
	events, err := openDB(filepath.Join(dir, EventsFile), true)
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", filepath.Join(dir, EventsFile), err)
	}
	defer events.Close()
	ldb, err := openDB(filepath.Join(dir, DBFile), true)
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", filepath.Join(dir, DBFile), err)
	}
	defer ldb.Close()
	d := &dirCheck{ctx: ctx, opts: opts, events: events, ldb: ldb, rep: &Report{FromSeq: 1}}
	rots, err := readRotations(ctx, ldb)
	if err != nil {
		return nil, err
	}
	if d.keys, err = NewKeys(v, rots); err != nil {
		d.rep.add(Problem{Reason: SignatureInvalid, Detail: fmt.Sprintf("the key rotations in %s: %v", DBFile, err)})
		return d.rep, nil
	}
	if err := d.run(); err != nil {
		return nil, err
	}
	return d.rep, nil
}

type dirCheck struct {
	ctx    context.Context
	keys   *Keys
	opts   VerifyOptions
	events *sql.DB
	ldb    *sql.DB
	rep    *Report
	ch     *checker

	cps      *sql.Rows
	cpNext   int64 // size of the next checkpoint row (-1: none left)
	cpNote   string
	covered  int64 // events covered by the last checkpoint checked
	lastGood Checkpoint
	badSigs  int
	firstBad string
}

func (d *dirCheck) run() error {
	ctx := d.ctx
	s, ok, err := readMeta(ctx, d.ldb, "tree_size")
	if err != nil || !ok {
		return fmt.Errorf("read the tree size from %s: %v", DBFile, errOr(err, "absent"))
	}
	size, err := strconv.ParseInt(s, 10, 64)
	if err != nil || size < 0 || size > MaxTreeSize {
		return fmt.Errorf("%s: tree size %q is not a number", DBFile, s)
	}
	var maxSeq sql.NullInt64
	if err := d.events.QueryRowContext(ctx, `SELECT max(seq) FROM events`).Scan(&maxSeq); err != nil {
		return fmt.Errorf("read %s: %w", EventsFile, err)
	}
	total := uint64(max(size, maxSeq.Int64))
	d.rep.ToSeq = total

	evRows, err := d.events.QueryContext(ctx, `SELECT seq, canonical FROM events ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("read %s: %w", EventsFile, err)
	}
	defer evRows.Close()
	hs, err := newHashStream(ctx, d.ldb)
	if err != nil {
		return err
	}
	defer hs.close()
	d.cps, err = d.ldb.QueryContext(ctx, `SELECT size, note FROM checkpoints ORDER BY size`)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	defer d.cps.Close()
	if err := d.advanceCheckpoint(); err != nil {
		return err
	}

	purged, err := newPurgedStream(ctx, d.events)
	if err != nil {
		return err
	}
	defer purged.close()

	empty, _ := newFrontier(0, nil)
	d.ch = newChecker(d.rep, empty, empty.clone())

	var (
		evSeq   int64
		evBytes []byte
		evOK    bool
	)
	nextEvent := func() error {
		evOK = evRows.Next()
		if !evOK {
			return evRows.Err()
		}
		return evRows.Scan(&evSeq, &evBytes)
	}
	if err := nextEvent(); err != nil {
		return fmt.Errorf("read %s: %w", EventsFile, err)
	}
	for evOK && evSeq < 1 {
		d.rep.Notes = append(d.rep.Notes, fmt.Sprintf("events.db holds an event with sequence number %d, outside the log", evSeq))
		if err := nextEvent(); err != nil {
			return fmt.Errorf("read %s: %w", EventsFile, err)
		}
	}
	if err := d.checkpointsAt(0); err != nil {
		return err
	}
	storedOK := true
	treeAltered := false
	endReported := false
	stored := make([]tlog.Hash, 0, 64)
	for n := int64(0); n < size; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		seq := uint64(n) + 1
		// The stored hashes of leaf n: the leaf, then one per subtree it
		// completes (as many as n has trailing one bits).
		m := bits.TrailingZeros64(uint64(n) + 1)
		stored = stored[:0]
		for i := 0; i <= m && storedOK; i++ {
			h, ok := hs.read()
			if !ok {
				if hs.err != nil {
					return fmt.Errorf("read tree hashes: %w", hs.err)
				}
				storedOK = false
				d.rep.add(Problem{Seq: seq, Reason: TreeAltered, Detail: fmt.Sprintf("%s lacks the tree hashes from this event on although its tree has %d events", DBFile, size)})
			}
			stored = append(stored, h)
		}
		var rec []tlog.Hash
		if evOK && evSeq == int64(seq) {
			recorded := tlog.RecordHash(evBytes)
			if storedOK {
				recorded = stored[0]
			}
			if _, rec, err = d.ch.event(seq, evBytes, recorded); err != nil {
				return err
			}
			d.rep.Events++
			if err := nextEvent(); err != nil {
				return fmt.Errorf("read %s: %w", EventsFile, err)
			}
		} else {
			if !storedOK {
				return d.stop(seq, "and ledger.db lacks its leaf: nothing after it can be checked")
			}
			isPurged, err := purged.has(seq)
			if err != nil {
				return err
			}
			switch {
			case isPurged:
				// Removed by retention, recorded as such: its recorded
				// leaf keeps both trees going.
				d.rep.Purged++
				if _, err = d.ch.comp.appendLeaf(stored[0]); err == nil {
					_, err = d.ch.rec.appendLeaf(stored[0])
				}
			case evOK:
				err = d.ch.missing(seq, stored[0], "no event has this sequence number in events.db")
			case !endReported:
				endReported = true
				err = d.ch.missing(seq, stored[0], fmt.Sprintf("events.db ends at event %d but the tree has %d: events %d..%d are missing", seq-1, size, seq, size))
			default:
				// Reported once for the whole end; keep the trees going.
				if _, err = d.ch.comp.appendLeaf(stored[0]); err == nil {
					_, err = d.ch.rec.appendLeaf(stored[0])
				}
			}
			if err != nil {
				return err
			}
			rec = nil
		}
		if storedOK && !treeAltered && rec != nil {
			for i := 1; i < len(rec); i++ {
				if rec[i] != stored[i] {
					treeAltered = true
					first := uint64(n+1-int64(1)<<i) + 1
					d.rep.add(Problem{Seq: first, Reason: TreeAltered, Detail: fmt.Sprintf(
						"the stored hash of the subtree of events %d..%d differs from the one computed from the recorded leaves: %s was altered", first, seq, DBFile)})
					break
				}
			}
		}
		if err := d.checkpointsAt(n + 1); err != nil {
			return err
		}
		d.opts.progress(seq, total)
	}
	for evOK {
		if evSeq > size {
			d.rep.Uncovered++
			d.rep.Events++
		}
		if err := nextEvent(); err != nil {
			return fmt.Errorf("read %s: %w", EventsFile, err)
		}
	}
	if d.opts.Progress != nil && uint64(size) < total {
		d.opts.Progress(total, total)
	}
	if d.cpNext >= 0 {
		d.rep.add(Problem{Seq: uint64(size) + 1, Reason: Missing, Detail: fmt.Sprintf(
			"a checkpoint covers %d events but the tree in %s has only %d: the tree was cut", d.cpNext, DBFile, size)})
	}
	if d.badSigs > 0 {
		d.rep.add(Problem{Reason: SignatureInvalid, Detail: fmt.Sprintf("%d checkpoint(s) of %s are not signed by %s; the first: %s", d.badSigs, DBFile, d.keys, d.firstBad)})
	}
	if d.lastGood.Note == "" {
		if d.badSigs == 0 {
			d.rep.add(Problem{Reason: SignatureInvalid, Detail: fmt.Sprintf("%s holds no checkpoint signed by %s", DBFile, d.keys)})
		}
	} else {
		d.rep.Checkpoint = d.lastGood
		d.rep.noteKeys(d.keys)
		d.rep.Uncovered += uint64(size - d.lastGood.Size)
		var cursor sql.NullInt64
		err := d.events.QueryRowContext(ctx, `SELECT seq FROM cursors WHERE name = ?`, CursorName).Scan(&cursor)
		if err == nil && cursor.Int64 > d.lastGood.Size {
			d.rep.add(Problem{Seq: uint64(d.lastGood.Size) + 1, Reason: Missing, Detail: fmt.Sprintf(
				"the store's ledger cursor says a checkpoint of %d events was signed, but the latest here covers %d: checkpoints were removed", cursor.Int64, d.lastGood.Size)})
		}
	}
	d.rep.sort()
	return nil
}

// stop ends the check at seq with a missing event.
func (d *dirCheck) stop(seq uint64, detail string) error {
	d.rep.add(Problem{Seq: seq, Reason: Missing, Detail: "no event has this sequence number in events.db, " + detail})
	d.rep.sort()
	return nil
}

// advanceCheckpoint reads the next checkpoint row.
func (d *dirCheck) advanceCheckpoint() error {
	if !d.cps.Next() {
		d.cpNext = -1
		if err := d.cps.Err(); err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		return nil
	}
	if err := d.cps.Scan(&d.cpNext, &d.cpNote); err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	return nil
}

// checkpointsAt checks the checkpoints of a tree of n leaves, which the
// checker's trees now are.
func (d *dirCheck) checkpointsAt(n int64) error {
	for d.cpNext >= 0 && d.cpNext <= n {
		if d.cpNext == n {
			cp, err := d.keys.Open([]byte(d.cpNote))
			var se *SignatureError
			switch {
			case errors.As(err, &se):
				d.badSigs++
				if d.badSigs == 1 {
					d.firstBad = fmt.Sprintf("the checkpoint of %d events: %s", n, se.Reason)
				}
			case err != nil:
				d.rep.add(Problem{Reason: Malformed, Detail: fmt.Sprintf("the checkpoint stored for %d events: %v", n, err)})
			case cp.Size != n:
				d.rep.add(Problem{Reason: TreeAltered, Detail: fmt.Sprintf("the checkpoint stored for %d events is signed for %d", n, cp.Size)})
			default:
				d.rep.Checkpoints++
				d.ch.againstRoot(cp, uint64(d.covered)+1, uint64(n))
				d.covered = n
				d.lastGood = cp
			}
		}
		if err := d.advanceCheckpoint(); err != nil {
			return err
		}
	}
	return nil
}

// purgedStream walks the purged table of events.db (written by the store's
// Purge in the same transaction as the removal) in order. A data directory
// from before retention has no such table: nothing is purged.
//
// A purged range counts only when a vigil_purge audit event of the same run
// lists it: that event is a leaf of the tree (checked like every other), so
// a row added to the purged table to hide a deletion does not make the
// deleted events "purged"; they are reported missing.
type purgedStream struct {
	rows        *sql.Rows
	first, last uint64
	ok          bool
	audited     map[string]purgeAudit // by run
}

// purgeAudit is what the vigil_purge events of one run say was removed.
type purgeAudit struct {
	ranges    [][2]uint64
	truncated bool // an event listed only its first ranges
}

// covers reports whether the run's audit events list [first, last].
func (a purgeAudit) covers(first, last uint64) bool {
	if a.truncated {
		return true
	}
	for _, r := range a.ranges {
		if r[0] <= first && last <= r[1] {
			return true
		}
	}
	return false
}

// loadPurgeAudits reads the vigil_purge events of events.db.
func loadPurgeAudits(ctx context.Context, db *sql.DB) (map[string]purgeAudit, error) {
	// The store keeps only seq, event_id, ts and canonical in columns: find
	// the candidates by their bytes, then check the action.
	rows, err := db.QueryContext(ctx, `SELECT canonical FROM events WHERE instr(canonical, '"vigil_purge"') > 0`)
	if err != nil {
		return nil, fmt.Errorf("read purge audit events of %s: %w", EventsFile, err)
	}
	defer rows.Close()
	out := map[string]purgeAudit{}
	for rows.Next() {
		var canon []byte
		if err := rows.Scan(&canon); err != nil {
			return nil, fmt.Errorf("read purge audit events of %s: %w", EventsFile, err)
		}
		var doc struct {
			Event struct {
				Action string `json:"action"`
			} `json:"event"`
			Vigil struct {
				Purge struct {
					Run       string      `json:"run"`
					Ranges    [][2]uint64 `json:"ranges"`
					Truncated bool        `json:"ranges_truncated"`
				} `json:"purge"`
			} `json:"vigil"`
		}
		if json.Unmarshal(canon, &doc) != nil || doc.Event.Action != "vigil_purge" || doc.Vigil.Purge.Run == "" {
			continue // not a purge record: the tree check reports it if altered
		}
		pu := doc.Vigil.Purge
		a := out[pu.Run]
		a.ranges = append(a.ranges, pu.Ranges...)
		a.truncated = a.truncated || pu.Truncated
		out[pu.Run] = a
	}
	return out, rows.Err()
}

func newPurgedStream(ctx context.Context, db *sql.DB) (*purgedStream, error) {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'purged'`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read %s: %w", EventsFile, err)
	}
	p := &purgedStream{}
	if n == 0 {
		return p, nil
	}
	audited, err := loadPurgeAudits(ctx, db)
	if err != nil {
		return nil, err
	}
	p.audited = audited
	rows, err := db.QueryContext(ctx, `SELECT first, last, run FROM purged ORDER BY first`)
	if err != nil {
		return nil, fmt.Errorf("read purged events of %s: %w", EventsFile, err)
	}
	p.rows = rows
	return p, p.next()
}

// next moves to the next purged range an audit event accounts for.
func (p *purgedStream) next() error {
	for {
		p.ok = p.rows != nil && p.rows.Next()
		if !p.ok {
			if p.rows != nil {
				if err := p.rows.Err(); err != nil {
					return fmt.Errorf("read purged events of %s: %w", EventsFile, err)
				}
			}
			return nil
		}
		var (
			first, last int64
			run         string
		)
		if err := p.rows.Scan(&first, &last, &run); err != nil {
			return fmt.Errorf("read purged events of %s: %w", EventsFile, err)
		}
		p.first, p.last = uint64(first), uint64(last)
		if p.audited[run].covers(p.first, p.last) {
			return nil
		}
	}
}

// has reports whether seq is recorded as purged. Calls come with seq
// ascending.
func (p *purgedStream) has(seq uint64) (bool, error) {
	for p.ok && p.last < seq {
		if err := p.next(); err != nil {
			return false, err
		}
	}
	return p.ok && p.first <= seq && seq <= p.last, nil
}

func (p *purgedStream) close() {
	if p.rows != nil {
		p.rows.Close()
	}
}

func errOr(err error, s string) any {
	if err != nil {
		return err
	}
	return s
}
