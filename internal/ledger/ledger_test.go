package ledger

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func TestSyncSignsAndProves(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	c := newClock()
	l := openLedger(t, dir, st, Options{Now: c.Now, Origin: "vigil.test/log"})
	v, err := ParsePublicKey(l.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	first := l.Checkpoint()
	if first.Size != 0 || first.Note == "" {
		t.Fatalf("a new ledger's checkpoint: %+v", first)
	}

	appendEvents(t, st, 0, 37)
	c.Add(time.Second)
	cp37, err := l.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	appendEvents(t, st, 37, 100)
	c.Add(time.Second)
	cp100, err := l.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range []Checkpoint{cp37, cp100} {
		got, err := OpenCheckpoint([]byte(cp.Note), v)
		if err != nil {
			t.Fatalf("checkpoint of %d does not verify: %v", cp.Size, err)
		}
		if got.Size != cp.Size || got.Hash != cp.Hash || !got.Time.Equal(cp.Time) || got.Origin != "vigil.test/log" {
			t.Errorf("parsed %+v, signed %+v", got, cp)
		}
	}
	if cp37.Size != 37 || cp100.Size != 100 || !cp100.Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("checkpoints: %d at %s, %d at %s", cp37.Size, cp37.Time, cp100.Size, cp100.Time)
	}

	// The root is the RFC 6962 root of the canonical bytes.
	recs, err := st.Read(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ref memHashes
	for i, r := range recs {
		hs, _ := tlog.StoredHashes(int64(i), r.Canonical, ref)
		ref = append(ref, hs...)
	}
	if want, _ := tlog.TreeHash(100, ref); want != cp100.Hash {
		t.Fatalf("root %s, want %s", cp100.Hash, want)
	}

	// Inclusion proofs verify against the checkpoints, for the right bytes only.
	for _, tc := range []struct {
		seq  uint64
		size int64
		cp   Checkpoint
	}{{1, 37, cp37}, {37, 37, cp37}, {1, 0, cp100}, {64, 100, cp100}, {100, 100, cp100}} {
		p, err := l.InclusionProof(ctx, tc.seq, tc.size)
		if err != nil {
			t.Fatalf("prove %d in %d: %v", tc.seq, tc.size, err)
		}
		if p.Checkpoint != tc.cp.Note {
			t.Errorf("proof of %d in %d does not carry the checkpoint", tc.seq, tc.size)
		}
		if err := p.Verify(recs[tc.seq-1].Canonical, tc.cp); err != nil {
			t.Errorf("proof of %d in %d: %v", tc.seq, tc.size, err)
		}
		if err := p.Verify(recs[tc.seq%100].Canonical, tc.cp); err == nil {
			t.Errorf("proof of %d accepted another event's bytes", tc.seq)
		}
	}
	for _, tc := range []struct {
		seq  uint64
		size int64
	}{{0, 10}, {101, 0}, {5, 101}, {38, 37}} {
		if _, err := l.InclusionProof(ctx, tc.seq, tc.size); !errors.Is(err, ErrOutOfRange) {
			t.Errorf("prove %d in %d: %v, want out of range", tc.seq, tc.size, err)
		}
	}

	// Consistency proofs.
	p, err := l.ConsistencyProof(ctx, 37, 100)
	if err != nil {
		t.Fatal(err)
	}
	if p.OldHash != cp37.Hash || p.NewHash != cp100.Hash {
		t.Fatal("consistency proof roots differ from the checkpoints")
	}
	if err := VerifyConsistency(cp37, cp100, p.Proof); err != nil {
		t.Fatalf("consistency 37..100: %v", err)
	}
	forged := cp37
	forged.Hash[0] ^= 1
	if err := VerifyConsistency(forged, cp100, p.Proof); err == nil || !strings.Contains(err.Error(), "rewrite") {
		t.Errorf("consistency from a forged root: %v", err)
	}
	if err := VerifyConsistency(cp100, cp37, nil); err == nil || !strings.Contains(err.Error(), "rollback") {
		t.Errorf("smaller tree: %v", err)
	}
	if err := VerifyConsistency(forged, cp37, nil); err == nil || !strings.Contains(err.Error(), "fork") {
		t.Errorf("same size, other root: %v", err)
	}
	if err := VerifyConsistency(first, cp100, nil); err != nil {
		t.Errorf("from the empty tree: %v", err)
	}

	// History, newest first, paged by size.
	cps, err := l.Checkpoints(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 3 || cps[0].Size != 100 || cps[1].Size != 37 || cps[2].Size != 0 {
		t.Fatalf("history: %+v", cps)
	}
	cps, _ = l.Checkpoints(ctx, 100, 1)
	if len(cps) != 1 || cps[0].Size != 37 {
		t.Fatalf("history before 100: %+v", cps)
	}
}

func TestReopenContinuesTheTree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	appendEvents(t, st, 0, 300)
	// Batches of 7 and restarts in the middle must give the same tree as
	// one pass: the last hashes page is rewritten correctly.
	l, err := Open(dir, st, Options{Log: quiet, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	l.Close()
	appendEvents(t, st, 300, 513)
	l2 := openLedger(t, dir, st, Options{BatchSize: 13})
	if l2.Size() != 300 {
		t.Fatalf("reopened size %d", l2.Size())
	}
	cp, err := l2.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := newFrontier(0, nil)
	recs, _ := st.Read(ctx, 0, 1000)
	for _, r := range recs {
		ref.appendLeaf(tlog.RecordHash(r.Canonical))
	}
	if cp.Size != 513 || cp.Hash != ref.root() {
		t.Fatalf("after restart: %d %s, want 513 %s", cp.Size, cp.Hash, ref.root())
	}
	if cur, _ := st.Cursor(ctx, CursorName); cur != 513 {
		t.Errorf("store cursor %d, want 513", cur)
	}
	for seq := uint64(1); seq <= 513; seq += 31 {
		p, err := l2.InclusionProof(ctx, seq, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Verify(recs[seq-1].Canonical, cp); err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
	}
}

// TestRunSignsEverySecond drives Run with its tick channel and a settable
// clock: a checkpoint at most once per second while events arrive, and a
// final one at shutdown.
func TestRunSignsEverySecond(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	c := newClock()
	tick := make(chan time.Time)
	l := openLedger(t, dir, st, Options{Now: c.Now, Tick: tick})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	// step lets Run poll once; the second send returns once the first
	// poll is done.
	step := func() {
		tick <- c.Now()
		tick <- c.Now()
	}
	step()
	steps := []struct {
		add      int
		advance  time.Duration
		wantSize int64
	}{
		{10, time.Second, 10},           // the first events after a quiet second: signed now
		{5, 300 * time.Millisecond, 10}, // within the second: hashed, not signed
		{5, 300 * time.Millisecond, 10},
		{0, 400 * time.Millisecond, 20}, // the second is over: signed
		{0, 5 * time.Second, 20},        // nothing new: no checkpoint
		{7, 0, 27},                      // a second passed since the last one
		{3, 0, 27},
	}
	n := 0
	for i, s := range steps {
		appendEvents(t, st, n, n+s.add)
		n += s.add
		c.Add(s.advance)
		step()
		if got := l.Checkpoint().Size; got != s.wantSize {
			t.Fatalf("step %d: checkpoint of %d events, want %d", i, got, s.wantSize)
		}
		if l.Size() != int64(n) {
			t.Fatalf("step %d: tree of %d, want %d", i, l.Size(), n)
		}
	}
	cps, _ := l.Checkpoints(context.Background(), 0, 100)
	if len(cps) != 4 { // 0, 10, 20, 27
		t.Fatalf("%d checkpoints, want 4", len(cps))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := l.Checkpoint().Size; got != 30 {
		t.Fatalf("after shutdown: checkpoint of %d events, want 30", got)
	}
}

func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t, dir)
	defer st.Close()
	l := openLedger(t, dir, st, Options{})
	appendEvents(t, st, 0, 3)
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{KeyFile, DBFile, DBFile + "-wal"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", name, fi.Mode().Perm())
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, KeyFile))
	if !strings.HasPrefix(string(b), "PRIVATE+KEY+") {
		t.Errorf("key file: %q", b[:12])
	}
	if got, err := PublicKeyFromFile(filepath.Join(dir, KeyFile)); err != nil || got != l.PublicKey() {
		t.Errorf("public key from file: %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	src, _ := dataDir(t, 50)
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   string
	}{
		{"key replaced", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, KeyFile)) }, "the key was replaced"},
		{"key readable by others", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, KeyFile), 0o644) }, "chmod 600"},
		{"tree hashes altered", func(t *testing.T, dir string) {
			sqlite3(t, filepath.Join(dir, DBFile), `UPDATE hashes SET data = zeroblob(length(data)) WHERE page = 0;`)
		}, "does not match its signed checkpoint"},
		{"events removed at the end", func(t *testing.T, dir string) {
			sqlite3(t, filepath.Join(dir, EventsFile), `DELETE FROM events WHERE seq > 40; UPDATE meta SET value = 40 WHERE key = 'last_seq';`)
		}, "the store holds 40 events but the tree has 50"},
		{"other origin", nil, "cannot change"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			opts := Options{Log: quiet}
			if tc.tamper != nil {
				tc.tamper(t, dir)
			} else {
				opts.Origin = "vigil.test/other"
			}
			st := openStore(t, dir)
			defer st.Close()
			l, err := Open(dir, st, opts)
			if err == nil {
				l.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestRunStopsAtAGap(t *testing.T) {
	src, _ := dataDir(t, 20)
	dir := copyDir(t, src)
	os.Remove(filepath.Join(dir, DBFile))
	sqlite3(t, filepath.Join(dir, EventsFile), `DELETE FROM events WHERE seq = 8;`)
	st := openStore(t, dir)
	defer st.Close()
	l := openLedger(t, dir, st, Options{})
	err := l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "event 9 after 7") {
		t.Fatalf("Run over a gap: %v", err)
	}
	if l.Size() != 7 {
		t.Fatalf("tree of %d, want the 7 events before the gap", l.Size())
	}
}
