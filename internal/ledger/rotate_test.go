package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// rotatedDir makes a data directory whose key was rotated twice: events
// 0..29 under the first key, 30..59 under the second, 60..89 under the
// third. It returns the three public keys, and leaves the ledger open.
func rotatedDir(t *testing.T) (dir string, l *Ledger, pubs []string) {
	t.Helper()
	ctx := context.Background()
	dir = filepath.Join(t.TempDir(), "data")
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	c := newClock()
	l = openLedger(t, dir, st, Options{Now: c.Now, Origin: "vigil.test/log"})
	for i := range 3 {
		appendEvents(t, st, 30*i, 30*i+20)
		c.Add(time.Second)
		if _, err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, st, 30*i+20, 30*i+30)
		c.Add(time.Second)
		pubs = append(pubs, l.PublicKey())
		if i == 2 {
			break
		}
		// The old key signs the 10 events appended since its last
		// checkpoint, then hands over.
		rot, err := l.RotateKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rot.Size != int64(30*i+30) || rot.Old != pubs[i] || rot.New != l.PublicKey() || rot.New == rot.Old {
			t.Fatalf("rotation %d: %+v", i, rot)
		}
	}
	c.Add(time.Second)
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return dir, l, pubs
}

func TestRotateKey(t *testing.T) {
	ctx := context.Background()
	dir, l, pubs := rotatedDir(t)
	if cp := l.Checkpoint(); cp.Size != 90 {
		t.Fatalf("latest checkpoint %d", cp.Size)
	}
	b, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if k, err := parseSignerKey(strings.TrimSpace(string(b))); err != nil || k.public != pubs[2] {
		t.Fatalf("ledger.key holds %v, %v; want the third key", k, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile+pendingKeySuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pending key left: %v", err)
	}
	// Every stored checkpoint opens, whichever key signed it, and the
	// hand-over checkpoints carry both keys' signatures.
	cps, err := l.Checkpoints(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range cps {
		if n := strings.Count(cp.Note, "\n— "); (cp.Size == 30 || cp.Size == 60) != (n == 2) {
			t.Errorf("checkpoint %d has %d signatures", cp.Size, n)
		}
	}
	if len(l.Rotations()) != 2 {
		t.Fatalf("%d rotations", len(l.Rotations()))
	}

	// A verifier holding any one of the keys follows the chain.
	for i, pub := range pubs {
		v, err := ParsePublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := NewKeys(v, l.Rotations())
		if err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if KeyID(keys.Current()) != KeyID(mustVerifier(t, pubs[2])) {
			t.Fatalf("key %d: current %s", i, KeyID(keys.Current()))
		}
		var buf bytes.Buffer
		if err := l.WriteExport(ctx, &buf, ExportRange{}); err != nil {
			t.Fatal(err)
		}
		rep, err := VerifyExport(ctx, &buf, v, VerifyOptions{})
		if err != nil || !rep.OK() || rep.Events != 90 {
			t.Fatalf("export with key %d: %v %+v", i, err, rep)
		}
		if rep.SignedBy != KeyID(keys.Current()) || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "rotated 2 time(s)") {
			t.Fatalf("export with key %d: signed by %q, notes %q", i, rep.SignedBy, rep.Notes)
		}
	}
	// The data directory verifies, closed, with the first key, and the
	// ledger reopens with the third.
	l.Close()
	l.st.Close()
	for _, pub := range []string{pubs[0], pubs[2]} {
		rep, err := VerifyDataDir(ctx, dir, mustVerifier(t, pub), VerifyOptions{})
		if err != nil || !rep.OK() || rep.Checkpoint.Size != 90 || rep.SignedBy != KeyID(mustVerifier(t, pubs[2])) {
			t.Fatalf("data directory with %s: %v %+v", pub, err, rep)
		}
	}
	st := openStore(t, dir)
	defer st.Close()
	l2 := openLedger(t, dir, st, Options{})
	if l2.PublicKey() != pubs[2] || len(l2.Rotations()) != 2 {
		t.Fatalf("reopened: %s, %d rotations", l2.PublicKey(), len(l2.Rotations()))
	}
}

// chainFixture is a chain of three keys whose private keys the test holds.
type chainFixture struct {
	keys []*key
	rots []string
}

func newTestKey(t testing.TB, origin string) *key {
	t.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	k, err := parseSignerKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testChain(t *testing.T) chainFixture {
	t.Helper()
	var f chainFixture
	for range 3 {
		f.keys = append(f.keys, newTestKey(t, "vigil.test/log"))
	}
	for i, size := range []int64{30, 60} {
		r, err := signRotation(f.keys[i], f.keys[i+1], size, t0)
		if err != nil {
			t.Fatal(err)
		}
		f.rots = append(f.rots, r.Note)
	}
	return f
}

func mustVerifier(t *testing.T, pub string) note.Verifier {
	t.Helper()
	v, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestNewKeys(t *testing.T) {
	f := testChain(t)
	cp := func(k *key, size int64) []byte {
		c, err := signCheckpoint(k, size, [32]byte{1}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return []byte(c.Note)
	}
	// In any order, from any key.
	for _, rots := range [][]string{f.rots, {f.rots[1], f.rots[0]}} {
		for i, k := range f.keys {
			keys, err := NewKeys(k.verifier, rots)
			if err != nil {
				t.Fatalf("from key %d: %v", i, err)
			}
			for _, c := range []struct {
				k    int
				size int64
				ok   bool
			}{{0, 0, true}, {0, 30, true}, {0, 31, false}, {1, 29, false}, {1, 30, true}, {1, 60, true}, {1, 61, false}, {2, 59, false}, {2, 60, true}, {2, 1 << 40, true}} {
				_, err := keys.Open(cp(f.keys[c.k], c.size))
				if (err == nil) != c.ok {
					t.Errorf("from key %d: key %d signing %d: %v, want ok=%v", i, c.k, c.size, err, c.ok)
				}
			}
		}
	}
	// A key outside the chain, a fork, a broken link, a statement signed
	// by one key only: refused.
	stranger := newTestKey(t, "vigil.test/log")
	if _, err := NewKeys(stranger.verifier, f.rots); err == nil {
		t.Error("a key outside the chain was accepted")
	}
	fork, err := signRotation(f.keys[1], stranger, 70, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeys(f.keys[0].verifier, append(f.rots, fork.Note)); err == nil || !strings.Contains(err.Error(), "key fork") {
		t.Errorf("fork: %v", err)
	}
	if _, err := NewKeys(f.keys[0].verifier, f.rots[1:]); err == nil {
		t.Error("a chain that does not reach the trusted key was accepted")
	}
	oneSig, err := note.Sign(&note.Note{Text: rotationText("vigil.test/log", 30, f.keys[0].public, stranger.public, t0)}, f.keys[0].signer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenRotation(oneSig); err == nil {
		t.Error("a statement without the new key's signature was accepted")
	}
	if _, err := NewKeys(f.keys[0].verifier, []string{string(oneSig)}); err == nil {
		t.Error("NewKeys accepted a statement without the new key's signature")
	}
	back, err := signRotation(f.keys[2], f.keys[0], 90, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeys(f.keys[0].verifier, append(f.rots, back.Note)); err == nil {
		t.Error("a cycle was accepted")
	}
	shrink, err := signRotation(f.keys[2], stranger, 10, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewKeys(f.keys[0].verifier, append(f.rots, shrink.Note)); err == nil {
		t.Error("a rotation at a smaller size than the one before was accepted")
	}
}

// TestRotateKeyCrash: a rotation interrupted before its commit leaves the
// old key in force; one interrupted after it is finished at the next start.
func TestRotateKeyCrash(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	st := openStore(t, dir)
	defer st.Close()
	appendEvents(t, st, 0, 10)
	l, err := Open(dir, st, Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	oldPub := l.PublicKey()
	oldKey, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	// Before the commit: a new key file that ledger.db does not name.
	pending := filepath.Join(dir, KeyFile+pendingKeySuffix)
	stray := newTestKey(t, l.Origin())
	skey := "PRIVATE+KEY+" + stray.public // not a signer key: it must still go
	if err := os.WriteFile(pending, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, st, Options{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if l.PublicKey() != oldPub {
		t.Fatal("the key changed")
	}
	if _, err := os.Stat(pending); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the unfinished rotation's key is still there: %v", err)
	}

	// After the commit, before the rename: put the old key back and the new
	// one aside, as a crash between the two would leave them.
	if _, err := l.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	newPub := l.PublicKey()
	l.Close()
	newKey, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pending, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, st, Options{Log: quiet})
	if err != nil {
		t.Fatalf("reopen after a crash mid-rotation: %v", err)
	}
	defer l.Close()
	if l.PublicKey() != newPub || newPub == oldPub {
		t.Fatalf("key %s after the crash, want the new %s", l.PublicKey(), newPub)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, KeyFile)); !bytes.Equal(b, newKey) {
		t.Fatal("ledger.key is not the new key")
	}

	// A retired key put back as ledger.key is refused.
	l.Close()
	if err := os.WriteFile(filepath.Join(dir, KeyFile), oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, st, Options{Log: quiet}); err == nil || !strings.Contains(err.Error(), "the key was replaced") {
		t.Fatalf("open with the retired key: %v", err)
	}
}

// TestWitnessFollowsRotation: a witness given the first key accepts the
// checkpoints of the next one through the server's rotation statement, and
// keeps the statement, so that it reopens without asking the server.
func TestWitnessFollowsRotation(t *testing.T) {
	ctx := context.Background()
	k, _ := parseSignerKey(testSignerKey)
	l, srv := logServer(t, testSignerKey, 30)
	dir := filepath.Join(t.TempDir(), "witness")
	h := &hook{}
	open := func() *Witness {
		w, err := OpenWitness(dir, k.verifier, NewClient(srv.URL, ""), WitnessOptions{Source: srv.URL, Log: quiet, Notify: func(_ context.Context, a Alert) error {
			h.mu.Lock()
			h.alerts = append(h.alerts, a)
			h.mu.Unlock()
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := open()
	if a, err := w.Check(ctx); a != nil || err != nil {
		t.Fatalf("before the rotation: %+v %v", a, err)
	}
	if _, err := l.RotateKey(ctx); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, l.st, 30, 50)
	if _, err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a, err := w.Check(ctx); a != nil || err != nil {
		t.Fatalf("after the rotation: %+v %v", a, err)
	}
	if cp, _ := w.Latest(); cp.Size != 50 {
		t.Fatalf("witnessed %d", cp.Size)
	}
	if _, err := os.Stat(filepath.Join(dir, witnessRotations)); err != nil {
		t.Fatal(err)
	}
	w = open()
	if cp, ok := w.Latest(); !ok || cp.Size != 50 {
		t.Fatalf("reopened: %+v", cp)
	}
	if a, err := w.Check(ctx); a != nil || err != nil {
		t.Fatalf("reopened, nothing new: %+v %v", a, err)
	}
	if len(h.kinds()) != 0 {
		t.Fatalf("alerts: %v", h.kinds())
	}
}

// TestRotateKeyWhileRunning rotates the key twice while Run hashes and
// signs events that keep arriving, and exports and proofs are served; the
// data directory then verifies with the first key.
func TestRotateKeyWhileRunning(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	st := openStore(t, dir)
	l, err := Open(dir, st, Options{Log: quiet, PollInterval: time.Millisecond, SignInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	first := l.PublicKey()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(rctx) }()
	stop := make(chan struct{})
	readers := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				readers <- nil
				return
			default:
			}
			if cp := l.Checkpoint(); cp.Size > 0 {
				if _, err := l.InclusionProof(ctx, 1, 0); err != nil {
					readers <- err
					return
				}
				if err := l.WriteExport(ctx, io.Discard, ExportRange{}); err != nil {
					readers <- err
					return
				}
			}
			_ = l.PublicKey()
			_ = l.Rotations()
		}
	}()
	for i := range 6 {
		appendEvents(t, st, 100*i, 100*i+100)
		if i%3 == 2 {
			if _, err := l.RotateKey(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	if err := <-readers; err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(l.Rotations()); n != 2 {
		t.Fatalf("%d rotations", n)
	}
	l.Close()
	st.Close()
	rep, err := VerifyDataDir(ctx, dir, mustVerifier(t, first), VerifyOptions{})
	if err != nil || !rep.OK() || rep.Checkpoint.Size != 600 {
		t.Fatalf("verify with the first key: %v %+v", err, rep)
	}
}
