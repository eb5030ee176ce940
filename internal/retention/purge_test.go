package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

var ctx = context.Background()

// now is the test clock's time.
var now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// env is a data directory with a store and a ledger.
type env struct {
	t   *testing.T
	dir string
	st  *sqlite.Store
	l   *ledger.Ledger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	st, err := sqlite.Open(filepath.Join(e.dir, ledger.EventsFile), sqlite.Options{MaxBatch: 50000})
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := ledger.Open(e.dir, st, ledger.Options{Origin: "test/retention", Now: func() time.Time { return now }})
	if err != nil {
		e.t.Fatal(err)
	}
	e.st, e.l = st, l
}

func (e *env) close() {
	if e.l != nil {
		e.l.Close()
		e.st.Close()
		e.l, e.st = nil, nil
	}
}

// mk builds an event of type-ish action at time ts with extra JSON members
// (sorted after "event", before "vigil").
func mk(id int, action string, ts time.Time, extra string) event.Event {
	e := event.Event{ID: "e" + strconv.Itoa(id), Time: ts, Action: action}
	vigil := `,"vigil":{"schema":"1"}`
	if strings.HasPrefix(extra, `,"vigil":{`) {
		vigil, extra = `,"vigil":{`+extra[len(`,"vigil":{`):len(extra)-1]+`,"schema":"1"}`, ""
	}
	e.Canonical = fmt.Appendf(nil, `{"@timestamp":%q,"event":{"action":%q,"id":%q}%s%s}`,
		ts.Format(time.RFC3339Nano), action, e.ID, extra, vigil)
	return e
}

func (e *env) append(evs []event.Event) {
	e.t.Helper()
	for len(evs) > 0 {
		n := min(len(evs), 50000)
		if _, err := e.st.Append(ctx, evs[:n]); err != nil {
			e.t.Fatal(err)
		}
		evs = evs[n:]
	}
}

func (e *env) sync() ledger.Checkpoint {
	e.t.Helper()
	cp, err := e.l.Sync(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return cp
}

func (e *env) purger(cfg Config, holds ...Hold) *Purger {
	e.t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate("retention"); err != nil {
		e.t.Fatal(err)
	}
	h, err := NewHolds(holds)
	if err != nil {
		e.t.Fatal(err)
	}
	return &Purger{Store: e.st, Ledger: e.l, DataDir: e.dir, Config: cfg, Holds: h, Now: func() time.Time { return now }}
}

func (e *env) verifier() interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
} {
	v, err := ledger.ParsePublicKey(e.l.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

func (e *env) verifyDir() *ledger.Report {
	e.t.Helper()
	v, err := ledger.ParsePublicKey(e.l.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	e.close()
	rep, err := ledger.VerifyDataDir(ctx, e.dir, v, ledger.VerifyOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.open()
	return rep
}

func (e *env) verifyArchives(res *Result) uint64 {
	e.t.Helper()
	v, err := ledger.ParsePublicKey(e.l.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	var total uint64
	for _, a := range res.Archives {
		path := filepath.Join(e.dir, ArchiveDir, a.File)
		fi, err := os.Stat(path)
		if err != nil {
			e.t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			e.t.Errorf("archive %s has mode %v, want 0600", a.File, fi.Mode().Perm())
		}
		f, err := os.Open(path)
		if err != nil {
			e.t.Fatal(err)
		}
		rep, err := ledger.VerifyExport(ctx, f, v, ledger.VerifyOptions{})
		f.Close()
		if err != nil {
			e.t.Fatalf("VerifyExport(%s): %v", a.File, err)
		}
		if !rep.OK() {
			e.t.Errorf("archive %s does not verify: %v", a.File, rep.Problems)
		}
		if rep.Events != uint64(a.Events) {
			e.t.Errorf("archive %s holds %d events, want %d", a.File, rep.Events, a.Events)
		}
		total += rep.Events
	}
	return total
}

// TestPurgeMillion is the must-show: a purge of many old events (1,000,000
// with VIGIL_PURGE_EVENTS=1000000) leaves archives that verify offline, the
// remaining events' proofs verifying, and a checkpoint consistent with the
// one before the purge; vigil verify --data-dir accepts the purge.
func TestPurgeMillion(t *testing.T) {
	n := 1000000
	if raceEnabled || testing.Short() {
		n = 40000
	}
	if s := os.Getenv("VIGIL_PURGE_EVENTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10 {
			t.Fatalf("VIGIL_PURGE_EVENTS=%q: want a number of events >= 10", s)
		}
		n = v
	}
	e := newEnv(t)
	old := now.Add(-200 * Day)
	actions := []string{event.ActionHTTPRequest, event.ActionHTTPRequestOutgoing, event.ActionCommandRun, event.ActionJobRun, "authn_login_fail"}
	evs := make([]event.Event, 0, n)
	for i := range n {
		evs = append(evs, mk(i, actions[i%len(actions)], old.Add(time.Duration(i)*time.Millisecond), ""))
	}
	e.append(evs)
	evs = nil
	// Recent events, kept.
	var recent []event.Event
	for i := range 100 {
		recent = append(recent, mk(n+i, "authn_login_fail", now.Add(-time.Hour), ""))
	}
	e.append(recent)
	before := e.sync()

	p := e.purger(Config{})
	start := time.Now()
	res, err := p.Run(ctx, Request{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("purged %d events in %d batches in %v", res.Events, res.Batches, time.Since(start))
	if res.Events != int64(n) {
		t.Fatalf("purged %d events, want %d", res.Events, n)
	}
	after := e.sync()
	if after.Size <= before.Size {
		t.Fatalf("checkpoint after the purge has %d events, before %d: the audit events are missing", after.Size, before.Size)
	}

	// The archives verify offline and hold every purged event.
	if got := e.verifyArchives(res); got != uint64(n) {
		t.Errorf("archives hold %d events, want %d", got, n)
	}
	// The post-purge checkpoint is consistent with the pre-purge one.
	cons, err := e.l.ConsistencyProof(ctx, before.Size, after.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.VerifyConsistency(before, after, cons.Proof); err != nil {
		t.Errorf("consistency of %d with %d: %v", before.Size, after.Size, err)
	}
	// The remaining events' proofs verify.
	left, err := e.st.Read(ctx, 0, store.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 100+res.Batches {
		t.Errorf("%d events left, want %d recent ones and %d audit events", len(left), 100, res.Batches)
	}
	for _, r := range left {
		pr, err := e.l.InclusionProof(ctx, r.Seq, after.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := pr.Verify(r.Canonical, after); err != nil {
			t.Errorf("inclusion of event %d: %v", r.Seq, err)
		}
	}
	if c, err := e.st.Count(ctx, store.Query{}); err != nil || c != int64(len(left)) {
		t.Errorf("Count = %d, %v; want %d", c, err, len(left))
	}
	rep := e.verifyDir()
	if !rep.OK() || rep.Purged != uint64(n) {
		t.Errorf("VerifyDataDir: ok %v, purged %d (want %d), problems %v", rep.OK(), rep.Purged, n, rep.Problems)
	}
}

// TestUnrecordedDeletionIsMissing: a row deleted behind the store's back,
// even with a purged-table row added to pass it off as a purge, is reported
// missing by VerifyDataDir, next to a recorded purge.
func TestUnrecordedDeletionIsMissing(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for i := range 50 {
		evs = append(evs, mk(i, event.ActionHTTPRequest, now.Add(-200*Day+time.Duration(i)*time.Second), ""))
	}
	e.append(evs)
	e.sync()
	res, err := e.purger(Config{}).Run(ctx, Request{Selection: Selection{Before: now.Add(-200*Day + 10*time.Second)}})
	if err != nil || res.Events != 10 {
		t.Fatalf("Run = %+v, %v; want 10 events purged", res, err)
	}
	e.sync()
	if rep := e.verifyDir(); !rep.OK() || rep.Purged != 10 {
		t.Fatalf("after the purge: ok %v, purged %d, problems %v", rep.OK(), rep.Purged, rep.Problems)
	}
	e.close()
	db, err := sql.Open("sqlite3", filepath.Join(e.dir, ledger.EventsFile))
	if err != nil {
		t.Fatal(err)
	}
	// Deleted, and hidden as a purge of a run no audit event records.
	if _, err := db.Exec(`DELETE FROM events WHERE seq = 30; INSERT INTO purged(first, last, run) VALUES (30, 30, 'forged')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	e.open()
	rep := e.verifyDir()
	bad, ok := rep.FirstBad()
	if rep.OK() || !ok || bad.Seq != 30 || bad.Reason != ledger.Missing {
		t.Errorf("after deleting event 30: first problem %+v (ok %v), want event 30 missing", bad, rep.OK())
	}
}

// TestSelection covers holds, decision events in force, types, the floor,
// dry runs, the audit event and field expiry.
func TestSelection(t *testing.T) {
	old := now.Add(-100 * Day)
	build := func() []event.Event {
		return []event.Event{
			mk(1, event.ActionHTTPRequest, old, ""),                                                           // seq 1: input request, 100 days
			mk(2, event.ActionHTTPRequestOutgoing, old, ""),                                                   // seq 2
			mk(3, event.ActionCommandRun, old, ""),                                                            // seq 3
			mk(4, event.ActionJobRun, old, ""),                                                                // seq 4
			mk(5, "authn_login_fail", old, ""),                                                                // seq 5: audit
			mk(6, "authn_login_fail", old, `,"labels":{"incident":"INC-7"}`),                                  // seq 6: held by incident
			mk(7, "authn_login_fail", old, `,"user":{"name":"mallory"}`),                                      // seq 7: held by query
			mk(8, "vigil_decision_added", old, `,"vigil":{"decision":{"id":"d1"}}`),                           // seq 8: in force (no end)
			mk(9, "vigil_decision_added", old, `,"vigil":{"decision":{"id":"d2"}}`),                           // seq 9: removed later
			mk(10, "vigil_decision_removed", old, `,"vigil":{"decision":{"id":"d2"}}`),                        // seq 10
			mk(11, event.ActionHTTPRequest, now.Add(-40*Day), `,"http":{"request":{"body":{"content":"x"}}}`), // seq 11: body, 40 days
			mk(12, event.ActionHTTPRequest, now.Add(-40*Day), ""),                                             // seq 12: no body
			mk(13, "authn_login_fail", now.Add(-Day), ""),                                                     // seq 13: recent
		}
	}
	holds := []Hold{{ID: "inc", Incident: "INC-7"}, {ID: "q", Query: `user.name = "mallory"`}}
	tests := []struct {
		name string
		cfg  Config
		req  Request
		want []uint64 // seqs purged
		err  error
	}{
		{"policies", Config{}, Request{}, []uint64{1, 2, 3, 4, 5, 9, 10}, nil},
		{"dry run", Config{}, Request{DryRun: true}, []uint64{1, 2, 3, 4, 5, 9, 10}, nil},
		{"input requests only", Config{}, Request{Selection: Selection{Types: []Type{InputRequest}}}, []uint64{1}, nil},
		{"commands and jobs", Config{}, Request{Selection: Selection{Types: []Type{Command, JobType}}}, []uint64{3, 4}, nil},
		{"auth kept a year", Config{Policies: []Policy{{Match: Match{Action: "authn_login_fail"}, Keep: Duration(365 * Day)}}}, Request{}, []uint64{1, 2, 3, 4, 9, 10}, nil},
		{"bodies 30 days", Config{Fields: []FieldRule{{Paths: []string{"http.request.body.content"}, Keep: Duration(30 * Day)}}}, Request{Selection: Selection{Types: []Type{InputRequest}}}, []uint64{1, 11}, nil},
		{"before", Config{}, Request{Selection: Selection{Before: now.Add(-30 * Day), Types: []Type{InputRequest}}}, []uint64{1, 11, 12}, nil},
		{"before inside the floor", Config{}, Request{Selection: Selection{Before: now.Add(-2 * Day)}}, nil, ErrFloor},
		{"before inside the floor, forced", Config{}, Request{Selection: Selection{Before: now.Add(-2 * Day), Types: []Type{Audit}, Force: true}}, []uint64{5, 9, 10}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.append(build())
			e.sync()
			res, err := e.purger(tc.cfg, holds...).Run(ctx, tc.req)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Run: %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			recs, err := e.st.Read(ctx, 0, 1000)
			if err != nil {
				t.Fatal(err)
			}
			present := map[uint64]bool{}
			for _, r := range recs {
				present[r.Seq] = true
			}
			gone := map[uint64]bool{}
			for _, s := range tc.want {
				gone[s] = true
			}
			for seq := uint64(1); seq <= 13; seq++ {
				if tc.req.DryRun && !present[seq] {
					t.Errorf("dry run removed event %d", seq)
				}
				if !tc.req.DryRun && present[seq] == gone[seq] {
					t.Errorf("event %d present %v, want %v", seq, present[seq], !gone[seq])
				}
			}
			if res.Events != int64(len(tc.want)) {
				t.Errorf("Result.Events = %d, want %d", res.Events, len(tc.want))
			}
			audits, err := e.st.Search(ctx, store.Query{Action: ActionPurge})
			if err != nil {
				t.Fatal(err)
			}
			wantAudits := 1
			if tc.req.DryRun {
				wantAudits = 0
				if len(res.Archives) != 0 {
					t.Errorf("dry run wrote archives %v", res.Archives)
				}
			}
			if len(audits) != wantAudits {
				t.Errorf("%d vigil_purge events, want %d", len(audits), wantAudits)
			}
			if !tc.req.DryRun {
				e.verifyArchives(res)
				e.sync()
				if rep := e.verifyDir(); !rep.OK() || rep.Purged != uint64(len(tc.want)) {
					t.Errorf("VerifyDataDir: ok %v, purged %d, problems %v", rep.OK(), rep.Purged, rep.Problems)
				}
			}
		})
	}
}

// TestInterruptedPurge stops a purge between the archive and the removal
// and in the middle of the removal; running again finishes it and leaves a
// verifiable log.
func TestInterruptedPurge(t *testing.T) {
	for _, tc := range []struct {
		name        string
		beforeAudit bool
		stop        func(e *env, run string, b Batch) error
	}{
		// The archive is complete but no audit event names it: the next
		// run removes it (its events are still stored) and archives them
		// again.
		{"between archive and audit event", true, func(e *env, run string, b Batch) error { return errors.New("crash") }},
		{"between archive and removal", false, func(e *env, run string, b Batch) error { return errors.New("crash") }},
		{"during removal", false, func(e *env, run string, b Batch) error {
			// Half the batch is removed, as if the process died after
			// the first transactions.
			if _, err := e.st.Purge(ctx, run, b.Seqs[:len(b.Seqs)/2]); err != nil {
				return err
			}
			return errors.New("crash")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var evs []event.Event
			for i := range 3000 {
				evs = append(evs, mk(i, event.ActionJobRun, now.Add(-100*Day), ""))
			}
			e.append(evs)
			e.sync()
			p := e.purger(Config{Batch: 1000})
			if tc.beforeAudit {
				p.beforeAudit = func(run string, b Batch) error { return tc.stop(e, run, b) }
			} else {
				p.beforeRemove = func(run string, b Batch) error { return tc.stop(e, run, b) }
			}
			if _, err := p.Run(ctx, Request{}); err == nil {
				t.Fatal("the interrupted run succeeded")
			}
			first, _ := filepath.Glob(filepath.Join(e.dir, ArchiveDir, "purge-*.jsonl.gz"))
			if len(first) != 1 {
				t.Fatalf("archives after the interrupted run: %v", first)
			}
			// Restart: reopen everything, run again. A partial archive,
			// as a process killed while writing one leaves, is removed.
			e.close()
			partial := filepath.Join(e.dir, ArchiveDir, "purge-20250101T000000Z-0001.jsonl.gz.tmp")
			if err := os.WriteFile(partial, []byte("half an archive"), 0o600); err != nil {
				t.Fatal(err)
			}
			e.open()
			e.sync()
			res, err := e.purger(Config{Batch: 1000}).Run(ctx, Request{})
			if err != nil {
				t.Fatal(err)
			}
			if c, _ := e.st.Count(ctx, store.Query{Action: event.ActionJobRun}); c != 0 {
				t.Errorf("%d job events left", c)
			}
			e.verifyArchives(res)
			if _, err := os.Stat(partial); !os.IsNotExist(err) {
				t.Errorf("partial archive still there: %v", err)
			}
			if _, err := os.Stat(first[0]); tc.beforeAudit != os.IsNotExist(err) {
				t.Errorf("the first run's archive: %v (it should be removed only when no audit event names it)", err)
			}
			e.sync()
			if rep := e.verifyDir(); !rep.OK() || rep.Purged != 3000 {
				t.Errorf("VerifyDataDir: ok %v, purged %d, problems %v", rep.OK(), rep.Purged, rep.Problems)
			}
		})
	}
}

// TestUnnamedArchivesKept: an archive no audit event names is removed only
// when every event in it is still stored as archived; a copy of an archive
// whose events were purged, or a file that is not an archive, stays.
func TestUnnamedArchivesKept(t *testing.T) {
	e := newEnv(t)
	var evs []event.Event
	for i := range 500 {
		evs = append(evs, mk(i, event.ActionJobRun, now.Add(-100*Day), ""))
	}
	e.append(evs)
	e.sync()
	res, err := e.purger(Config{Batch: 1000}).Run(ctx, Request{})
	if err != nil || len(res.Archives) != 1 {
		t.Fatalf("purge: %v %+v", err, res)
	}
	b, err := os.ReadFile(filepath.Join(e.dir, ArchiveDir, res.Archives[0].File))
	if err != nil {
		t.Fatal(err)
	}
	copied := filepath.Join(e.dir, ArchiveDir, "purge-20250101T000000Z-00000000-0001.jsonl.gz")
	junk := filepath.Join(e.dir, ArchiveDir, "purge-20250101T000000Z-00000000-0002.jsonl.gz")
	os.WriteFile(copied, b, 0o600)
	os.WriteFile(junk, []byte("not gzip"), 0o600)
	if _, err := e.purger(Config{Batch: 1000}).Run(ctx, Request{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{copied, junk, filepath.Join(e.dir, ArchiveDir, res.Archives[0].File)} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}
