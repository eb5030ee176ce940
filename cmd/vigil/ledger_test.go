package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

const ledgerToken = "vgl_ledger-cli-test-token-0123456789"

// ledgerServer is a real Vigil ledger over a real SQLite store, served on
// 127.0.0.1 with the ledger's routes mounted as the server mounts them
// (exports and inclusion proofs behind a token).
type ledgerServer struct {
	dir string
	st  *sqlite.Store
	l   *ledger.Ledger
	srv *httptest.Server
	URL string
}

func startLedgerServer(t *testing.T, dir string) *ledgerServer {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(dir, st, ledger.Options{Log: slog.New(slog.DiscardHandler), Origin: "vigil.test/cli"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	tokens, err := auth.Load(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := tokens.Add("admin", "admin", ledgerToken); err != nil {
		t.Fatal(err)
	}
	// The server's Run catches up at once; so does this one.
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	l.Register(mux, func(h http.Handler) http.Handler { return tokens.Require(h, nil) })
	s := &ledgerServer{dir: dir, st: st, l: l, srv: httptest.NewServer(mux)}
	s.URL = s.srv.URL
	t.Cleanup(s.stop)
	return s
}

// add stores the test events from..to-1 and lets the ledger sign them.
func (s *ledgerServer) add(t *testing.T, from, to int) {
	t.Helper()
	var evs []event.Event
	for i := from; i < to; i++ {
		js := fmt.Sprintf(`{"event":{"id":"cli-%05d","action":"authn_login_fail"},"@timestamp":"2026-11-23T10:%02d:%02dZ","user":{"name":"user%d"},"source":{"ip":"198.51.100.%d"},"message":"login failed"}`,
			i, i/60%60, i%60, i%7, i%200)
		ev, err := event.Parse([]byte(js), event.Limits{}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if _, err := s.st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (s *ledgerServer) stop() {
	if s.srv == nil {
		return
	}
	s.srv.Close()
	s.l.Close()
	s.st.Close()
	s.srv = nil
}

// ledgerCLI runs a command function and returns its output and the exit
// status the command runner gives its error.
func ledgerCLI(f func([]string, io.Writer, io.Writer) error, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	err := f(args, &out, &errb)
	return out.String(), errb.String(), exitStatus(err)
}

// exitStatus is the exit status of a command's error, as main's runner
// must compute it.
func exitStatus(err error) int {
	var coded interface{ ExitCode() int }
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// sqlite3CLI runs SQL on a database file with the sqlite3 command-line tool.
func sqlite3CLI(t *testing.T, db, sql string) {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("the sqlite3 command-line tool is needed to tamper with a data directory: apt-get install -y sqlite3")
	}
	cmd := exec.Command(bin, db)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", db, err, out)
	}
}

func copyDataDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(dst, 0o700)
	entries, _ := os.ReadDir(src)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// forgeSQL changes one field of the canonical bytes of event seq.
func forgeSQL(seq int) string {
	return fmt.Sprintf(`UPDATE events SET canonical = CAST(replace(CAST(canonical AS TEXT), '"name":"user', '"name":"mallory') AS BLOB) WHERE seq = %d;`, seq)
}

// TestVerifyDataDirNamesTamperedEvent tampers with a stopped server's data
// with the sqlite3 tool and runs vigil verify --data-dir on it.
func TestVerifyDataDirNamesTamperedEvent(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	s := startLedgerServer(t, src)
	s.add(t, 0, 40)
	s.add(t, 40, 90)
	s.add(t, 90, 120)
	pub := s.l.PublicKey()
	s.stop()

	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		code   int
		want   string
	}{
		{"untouched", nil, 0, "OK: data directory"},
		{"one field of one event changed", func(t *testing.T, dir string) {
			sqlite3CLI(t, filepath.Join(dir, "events.db"), forgeSQL(78))
		}, 1, "first bad event: 78 (changed)"},
		{"a row deleted", func(t *testing.T, dir string) {
			sqlite3CLI(t, filepath.Join(dir, "events.db"), `DELETE FROM events WHERE seq = 50;`)
		}, 1, "first bad event: 50 (missing)"},
		{"two rows swapped", func(t *testing.T, dir string) {
			sqlite3CLI(t, filepath.Join(dir, "events.db"), `CREATE TEMP TABLE s AS SELECT seq, canonical FROM events WHERE seq IN (30, 90);
UPDATE events SET canonical = (SELECT canonical FROM s WHERE s.seq = 120 - events.seq) WHERE seq IN (30, 90);`)
		}, 1, "first bad event: 30 (reordered): it is the event recorded at sequence 90"},
		{"forged, tree rebuilt, signed with another key", func(t *testing.T, dir string) {
			sqlite3CLI(t, filepath.Join(dir, "events.db"), forgeSQL(78))
			os.Remove(filepath.Join(dir, ledger.DBFile))
			os.Remove(filepath.Join(dir, ledger.KeyFile))
			startLedgerServer(t, dir).stop() // rebuilds the tree, signs with a new key
		}, 1, "signature invalid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDataDir(t, src)
			if tc.tamper != nil {
				tc.tamper(t, dir)
			}
			out, errs, code := ledgerCLI(runVerify, "--data-dir", dir, "--pubkey", pub)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want %d; output lacks %q:\n%s%s", code, tc.code, tc.want, out, errs)
			}
			if !strings.Contains(errs, "verifying: 120 of 120 events (100%)") {
				t.Errorf("no progress lines: %q", errs)
			}
		})
	}

	// The public key may be given as a file; a key file is not changed.
	keyFile := filepath.Join(t.TempDir(), "vigil.pub")
	os.WriteFile(keyFile, []byte(pub+"\n"), 0o600)
	if out, errs, code := ledgerCLI(runVerify, "--data-dir", src, "--pubkey", keyFile, "--quiet"); code != 0 || errs != "" {
		t.Fatalf("--pubkey FILE --quiet: %d %s %s", code, out, errs)
	}
	out, _, code := ledgerCLI(runVerify, "--data-dir", src, "--pubkey", pub, "--json", "--quiet")
	var rep struct {
		OK     bool   `json:"ok"`
		Events uint64 `json:"events"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || !rep.OK || rep.Events != 120 {
		t.Fatalf("--json: %d %s", code, out)
	}
}

func TestVerifyUsageAndUnreadable(t *testing.T) {
	t.Setenv("VIGIL_TOKEN", "")
	dir := filepath.Join(t.TempDir(), "data")
	s := startLedgerServer(t, dir)
	s.add(t, 0, 5)
	pub := s.l.PublicKey()
	s.stop()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--data-dir", dir}, 2, "--pubkey KEY is required"},
		{[]string{"--data-dir", dir, "--pubkey", "not-a-key"}, 2, "neither a key"},
		{[]string{"--data-dir", dir, "--export", "x", "--pubkey", pub}, 2, "not both"},
		{[]string{"--data-dir", dir, "--from-seq", "3", "--pubkey", pub}, 2, "apply to a server"},
		{[]string{"--data-dir", t.TempDir(), "--pubkey", pub}, 3, "events.db"},
		{[]string{"--export", filepath.Join(t.TempDir(), "none.ndjson"), "--pubkey", pub}, 3, "none.ndjson"},
		{[]string{"--server", "http://127.0.0.1:1", "--token", "x", "--pubkey", pub}, 3, "127.0.0.1:1"},
		{[]string{"stray", "--pubkey", pub}, 2, "unexpected argument"},
		{[]string{"--server", "http://127.0.0.1:1", "--pubkey", pub}, 2, "no token"},
	} {
		_, _, code := ledgerCLI(runVerify, tc.args...)
		var out, errb bytes.Buffer
		err := runVerify(tc.args, &out, &errb)
		if code != tc.code || err == nil || !strings.Contains(err.Error()+errb.String(), tc.want) {
			t.Errorf("%v: exit %d (%v), want %d with %q", tc.args, code, err, tc.code, tc.want)
		}
	}
}

// TestStolenKeyWitnessSeesFork rewrites a stopped server's history and
// re-signs it with the real key (as a thief of the key could): the data
// directory then verifies, but a witness that kept the earlier checkpoint
// exposes the fork, by exit status, log and webhook.
func TestStolenKeyWitnessSeesFork(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startLedgerServer(t, dir)
	s.add(t, 0, 60)
	pub := s.l.PublicKey()
	wdir := filepath.Join(t.TempDir(), "witness")
	out, errs, code := ledgerCLI(runWitness, "--url", s.URL, "--dir", wdir, "--pubkey", pub, "--once")
	if code != 0 || !strings.Contains(out, "OK: checkpoint of 60 events") {
		t.Fatalf("first witness run: %d %s %s", code, out, errs)
	}
	s.add(t, 60, 80)
	out, errs, code = ledgerCLI(runWitness, "--url", s.URL, "--dir", wdir, "--pubkey", pub, "--once")
	if code != 0 || !strings.Contains(out, "OK: checkpoint of 80 events") {
		t.Fatalf("after growth: %d %s %s", code, out, errs)
	}
	s.stop()

	sqlite3CLI(t, filepath.Join(dir, "events.db"), forgeSQL(12))
	os.Remove(filepath.Join(dir, ledger.DBFile))
	forged := startLedgerServer(t, dir) // same ledger.key: the tree is rebuilt and re-signed
	// Rebuilt and re-signed with the real key, the data directory is
	// consistent in itself: this is what a witness is for.
	if out, _, code := ledgerCLI(runVerify, "--data-dir", dir, "--pubkey", pub, "--quiet"); code != 0 {
		t.Fatalf("the re-signed data directory: %d %s", code, out)
	}

	var mu sync.Mutex
	var bodies []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&body) != nil {
			http.Error(w, "bad", 400)
			return
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
	}))
	defer hook.Close()
	out, errs, code = ledgerCLI(runWitness, "--url", forged.URL, "--dir", wdir, "--pubkey", pub, "--once", "--webhook", hook.URL)
	if code != 1 || !strings.Contains(out, "ALERT fork") || !strings.Contains(errs, "witness: ALERT") {
		t.Fatalf("witness over the forged log: exit %d\n%s%s", code, out, errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 1 || bodies[0]["kind"] != "fork" || !strings.Contains(fmt.Sprint(bodies[0]["served"]), "vigil.test/cli\n80\n") {
		t.Fatalf("webhook bodies: %v", bodies)
	}
}

// TestExportVerifiesOffline exports from a running server, stops it, and
// verifies the file in an empty directory with only the public key.
func TestExportVerifiesOffline(t *testing.T) {
	s := startLedgerServer(t, filepath.Join(t.TempDir(), "data"))
	s.add(t, 0, 100)
	pub := s.l.PublicKey()
	files := t.TempDir()
	plain := filepath.Join(files, "range.ndjson")
	gz := filepath.Join(files, "all.ndjson.gz")
	byTime := filepath.Join(files, "time.ndjson")
	for _, args := range [][]string{
		{"--from-seq", "10", "--to-seq", "60", "--out", plain},
		{"--out", gz},
		{"--from", "2026-11-23T10:00:30Z", "--to", "2026-11-23T10:00:40Z", "--out", byTime},
	} {
		args = append(args, "--server", s.URL, "--token", ledgerToken)
		if out, errs, code := ledgerCLI(runExport, args...); code != 0 || !strings.Contains(errs, "verify it with: vigil verify --export") {
			t.Fatalf("export %v: %d %s %s", args, code, out, errs)
		}
	}
	if fi, err := os.Stat(plain); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v", err)
	}
	if _, _, code := ledgerCLI(runExport, "--out", plain, "--server", s.URL, "--token", ledgerToken); code != 2 {
		t.Errorf("overwrite without --force: exit %d", code)
	}
	if _, _, code := ledgerCLI(runExport, "--out", filepath.Join(files, "x"), "--server", s.URL, "--token", "wrong"); code != 3 {
		t.Errorf("wrong token: exit %d", code)
	}
	if _, err := os.Stat(filepath.Join(files, "x")); err == nil {
		t.Error("a refused export left a file")
	}
	s.stop()

	t.Chdir(t.TempDir()) // an empty directory, no server
	for _, tc := range []struct {
		file string
		want string
	}{
		{plain, "events 10..60 match the checkpoint of 100 events"},
		{gz, "events 1..100 match"},
		{byTime, "events 31..40 match"},
	} {
		out, errs, code := ledgerCLI(runVerify, "--export", tc.file, "--pubkey", pub)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Fatalf("verify %s: %d\n%s%s", tc.file, code, out, errs)
		}
	}
	b, _ := os.ReadFile(plain)
	tampered := filepath.Join(files, "tampered.ndjson")
	os.WriteFile(tampered, bytes.Replace(b, []byte(`"name":"user4"`), []byte(`"name":"admin"`), 1), 0o600)
	out, _, code := ledgerCLI(runVerify, "--export", tampered, "--pubkey", pub, "--quiet")
	if code != 1 || !strings.Contains(out, "first bad event: 12 (changed)") {
		t.Fatalf("tampered export: %d %s", code, out)
	}
}

func TestVerifyRunningServerAndPubkey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := startLedgerServer(t, dir)
	s.add(t, 0, 30)
	pub := s.l.PublicKey()

	out, errs, code := ledgerCLI(runPubkey, "--data-dir", dir)
	if code != 0 || strings.TrimSpace(out) != pub {
		t.Fatalf("pubkey --data-dir: %d %q %s", code, out, errs)
	}
	out, errs, code = ledgerCLI(runPubkey, "--url", s.URL)
	if code != 0 || strings.TrimSpace(out) != pub || !strings.Contains(errs, "compare it with a copy you trust") {
		t.Fatalf("pubkey --url: %d %q %s", code, out, errs)
	}
	if _, _, code := ledgerCLI(runPubkey, "--data-dir", t.TempDir()); code != 3 {
		t.Errorf("pubkey of an empty directory: exit %d", code)
	}

	out, errs, code = ledgerCLI(runVerify, "--url", s.URL, "--token", ledgerToken, "--pubkey", pub)
	if code != 0 || !strings.Contains(out, "events 1..30 match the checkpoint of 30 events") {
		t.Fatalf("verify --url: %d %s %s", code, out, errs)
	}
	out, _, code = ledgerCLI(runVerify, "--url", s.URL, "--token", ledgerToken, "--pubkey", pub, "--from-seq", "5", "--to-seq", "9")
	if code != 0 || !strings.Contains(out, "events 5..9 match") {
		t.Fatalf("verify --url range: %d %s", code, out)
	}
	other := filepath.Join(t.TempDir(), "other")
	o := startLedgerServer(t, other)
	otherPub := o.l.PublicKey()
	o.stop()
	out, _, code = ledgerCLI(runVerify, "--url", s.URL, "--token", ledgerToken, "--pubkey", otherPub)
	if code != 1 || !strings.Contains(out, "signature invalid") {
		t.Fatalf("verify --url with another log's key: %d %s", code, out)
	}
	var errb bytes.Buffer
	err := runVerify([]string{"--url", s.URL, "--token", "wrong", "--pubkey", pub}, io.Discard, &errb)
	if exitStatus(err) != 3 || !strings.Contains(err.Error(), "401") {
		t.Fatalf("verify --url with a bad token: %v", err)
	}
}

func TestWitnessUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--pubkey", "x"}, "--dir DIR is required"},
		{[]string{"--dir", t.TempDir()}, "--pubkey KEY is required"},
		{[]string{"--dir", t.TempDir(), "--pubkey", "a+00000000+AQ==", "--interval", "10ms"}, "at least 1s"},
		{[]string{"--dir", t.TempDir(), "--pubkey", "vigil.test/log+095154a2+AclqFOs2efg1cwfxrvEzhszVH2pNa2uFNBXl3cmu00HI", "--webhook", "ftp://x"}, "http or https"},
	} {
		var out, errb bytes.Buffer
		err := runWitness(tc.args, &out, &errb)
		if exitStatus(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v (exit %d), want %q", tc.args, err, exitStatus(err), tc.want)
		}
	}
	// --once against no server: exit 3.
	dir := filepath.Join(t.TempDir(), "data")
	s := startLedgerServer(t, dir)
	pub := s.l.PublicKey()
	s.stop()
	if _, _, code := ledgerCLI(runWitness, "--url", "http://127.0.0.1:1", "--dir", t.TempDir(), "--pubkey", pub, "--once"); code != 3 {
		t.Errorf("unreachable server: exit %d", code)
	}
}

func TestVerifyProgress(t *testing.T) {
	var plain bytes.Buffer
	p := newVerifyProgress(&plain, "verifying", false)
	for i := uint64(0); i <= 1000; i += 50 {
		p.update(i, 1000)
	}
	p.finish()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 10 || lines[0] != "verifying: 100 of 1000 events (10%)" || lines[9] != "verifying: 1000 of 1000 events (100%)" {
		t.Fatalf("plain progress, a line per 10%%:\n%s", plain.String())
	}

	var bar bytes.Buffer
	p = &verifyProgress{w: &bar, label: "verifying", tty: true, lastPct: -1}
	p.update(500, 1000)
	p.update(1000, 1000)
	p.finish()
	want := "\rverifying [###############---------------]  50%  500/1000 events" +
		"\rverifying [##############################] 100%  1000/1000 events\n"
	if bar.String() != want {
		t.Fatalf("bar:\n%q\nwant\n%q", bar.String(), want)
	}
	var none bytes.Buffer
	p = newVerifyProgress(&none, "verifying", true)
	p.update(1, 1)
	if none.Len() != 0 {
		t.Fatal("--quiet printed progress")
	}
}
