package ledger

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyDataDir tampers with a stopped server's files using the sqlite3
// tool and checks that VerifyDataDir names the first bad event and why.
func TestVerifyDataDir(t *testing.T) {
	src, pub := dataDir(t, 200, 50, 120) // checkpoints at 0, 50, 120, 200
	v, err := ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	events := func(dir string) string { return filepath.Join(dir, EventsFile) }
	ledgerDB := func(dir string) string { return filepath.Join(dir, DBFile) }
	rebuild := func(t *testing.T, dir string) {
		t.Helper()
		st := openStore(t, dir)
		defer st.Close()
		l, err := Open(dir, st, Options{Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if _, err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name       string
		tamper     func(t *testing.T, dir string)
		wantSeq    uint64
		wantReason Reason
		wantDetail string
	}{
		{name: "untouched"},
		{"one field changed", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), '"name":"bob"', '"name":"eve"') AS BLOB) WHERE seq = 78;`)
		}, 78, Changed, "differs from the leaf recorded"},
		{"row deleted", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `DELETE FROM events WHERE seq = 77;`)
		}, 77, Missing, "no event has this sequence number"},
		{"two rows swapped", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `CREATE TEMP TABLE s AS SELECT seq, canonical FROM events WHERE seq IN (30, 140);
UPDATE events SET canonical = (SELECT canonical FROM s WHERE s.seq = 170 - events.seq) WHERE seq IN (30, 140);`)
		}, 30, Reordered, "recorded at sequence 140"},
		{"last rows deleted", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `DELETE FROM events WHERE seq > 190;`)
		}, 191, Missing, "events.db ends at event 190"},
		{"forged and re-signed with another key", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), '"name":"bob"', '"name":"eve"') AS BLOB) WHERE seq = 78;`)
			os.Remove(ledgerDB(dir))
			os.Remove(filepath.Join(dir, KeyFile))
			rebuild(t, dir)
		}, 0, SignatureInvalid, "not signed by vigil.test/log+"},
		{"forged, tree rebuilt, old checkpoints kept", func(t *testing.T, dir string) {
			sqlite3(t, events(dir), `UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), '"name":"bob"', '"name":"eve"') AS BLOB) WHERE seq = 78;`)
			os.Remove(ledgerDB(dir))
			rebuild(t, dir)
			sqlite3(t, ledgerDB(dir), `ATTACH '`+ledgerDB(src)+`' AS o; DELETE FROM checkpoints; INSERT INTO checkpoints SELECT * FROM o.checkpoints;`)
		}, 51, Rewritten, "events 51..120 and the stored tree agree with each other"},
		{"interior tree hash altered", func(t *testing.T, dir string) {
			sqlite3(t, ledgerDB(dir), `UPDATE hashes SET data = substr(data, 1, 64) || zeroblob(32) || substr(data, 97) WHERE page = 0;`)
		}, 1, TreeAltered, "subtree of events 1..2"},
		{"latest checkpoint removed", func(t *testing.T, dir string) {
			sqlite3(t, ledgerDB(dir), `DELETE FROM checkpoints WHERE size = 200;`)
		}, 121, Missing, "checkpoints were removed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			var calls int
			rep, err := VerifyDataDir(context.Background(), dir, v, VerifyOptions{Progress: func(done, total uint64) {
				calls++
				if total != 200 {
					t.Errorf("progress total %d", total)
				}
			}})
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantReason == "" {
				if !rep.OK() || rep.Events != 200 || rep.Checkpoints != 4 || rep.Checkpoint.Size != 200 {
					t.Fatalf("untouched: %+v", rep)
				}
				if calls == 0 {
					t.Error("no progress reported")
				}
				return
			}
			t.Logf("%s: %+v", tc.name, rep.Problems)
			p, ok := rep.FirstBad()
			if !ok {
				t.Fatalf("nothing found: %+v", rep)
			}
			if p.Seq != tc.wantSeq || p.Reason != tc.wantReason || !strings.Contains(p.Detail, tc.wantDetail) {
				t.Fatalf("first bad: %v\nwant event %d: %s: …%s…\nall: %v", p, tc.wantSeq, tc.wantReason, tc.wantDetail, rep.Problems)
			}
		})
	}
}

func TestVerifyDataDirWrongKey(t *testing.T) {
	dir, _ := dataDir(t, 10)
	other, _ := dataDir(t, 1)
	pub, err := PublicKeyFromFile(filepath.Join(other, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := ParsePublicKey(pub)
	rep, err := VerifyDataDir(context.Background(), dir, v, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := rep.FirstBad(); p.Reason != SignatureInvalid {
		t.Fatalf("verified with another log's key: %+v", rep)
	}
}

func TestVerifyDataDirCannotRead(t *testing.T) {
	v, _ := ParsePublicKey(mustPub(t))
	if _, err := VerifyDataDir(context.Background(), t.TempDir(), v, VerifyOptions{}); err == nil {
		t.Fatal("an empty directory verified")
	}
}

func mustPub(t *testing.T) string {
	k, err := parseSignerKey(testSignerKey)
	if err != nil {
		t.Fatal(err)
	}
	return k.public
}

// Fixed keys for tests, both named like dataDir's log: otherSignerKey is
// another key under the same name (a forger's).
const (
	testSignerKey  = "PRIVATE+KEY+vigil.test/log+095154a2+AaCkuJPb9ttWSGo/drzmRZ2a/NWx54SoY6sN+ImhnTSI"
	otherSignerKey = "PRIVATE+KEY+vigil.test/log+df40dc83+AZjZ5nheztEdeZTrT+PWdVgZI6HHi7bi2MW/9FWzsK+z"
)
