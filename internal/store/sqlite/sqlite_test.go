package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) store.Store {
		return open(t, filepath.Join(dir, "vigil.db"))
	})
}

// open opens a store at path; the caller closes it.
func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return s
}

func openTemp(t *testing.T) *Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "vigil.db"))
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func testEvent(id string) event.Event {
	// The store builds its postings again from the canonical bytes when it
	// opens, so they must hold what the fields say: parse them.
	raw := `{"@timestamp":"2025-03-01T12:00:00Z","event":{"id":"` + id +
		`","action":"authn_login_fail"},"message":"login failed for ` + id + `"}`
	e, err := event.Parse([]byte(raw), event.Limits{}, time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC))
	if err != nil {
		panic(fmt.Sprintf("test event %q: %v", id, err))
	}
	return e
}

func TestFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.db")
	s := open(t, path)
	defer s.Close()
	if _, err := s.Append(context.Background(), []event.Event{testEvent("a")}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vigil.db", "vigil.db-wal", "vigil.db-shm"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, mode)
		}
	}
}

// TestAnsweredOnlyAfterSync stands in for the disk's fsync: until it
// returns, an Append is not answered and its events are neither counted nor
// readable; a failed fsync fails the waiting Append and every later one.
func TestAnsweredOnlyAfterSync(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []event.Event{testEvent("before")}); err != nil {
		t.Fatal(err)
	}
	release := make(chan error)
	entered := make(chan struct{}, 16)
	// The syncer reads syncFile after it receives the next commit, which
	// the queueing below happens before.
	s.syncFile = func(*os.File) error {
		entered <- struct{}{}
		return <-release
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, []event.Event{testEvent("held")})
		done <- err
	}()
	<-entered
	select {
	case err := <-done:
		t.Fatalf("Append answered (%v) before the WAL was synced", err)
	case <-time.After(100 * time.Millisecond):
	}
	if n, _ := s.LastSeq(ctx); n != 1 {
		t.Errorf("LastSeq = %d before the sync, want 1", n)
	}
	if recs, err := s.Read(ctx, 0, 10); err != nil || len(recs) != 1 {
		t.Errorf("Read before the sync = %d records, %v; want only the synced one", len(recs), err)
	}
	if recs, err := s.Search(ctx, store.Query{Text: "held"}); err != nil || len(recs) != 0 {
		t.Errorf("Search before the sync = %d records, %v; want none", len(recs), err)
	}
	release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n, _ := s.LastSeq(ctx); n != 2 {
		t.Errorf("LastSeq = %d after the sync, want 2", n)
	}

	go func() {
		_, err := s.Append(ctx, []event.Event{testEvent("failed")})
		done <- err
	}()
	<-entered
	release <- errors.New("disk on fire")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Append with a failed sync = %v, want the sync error", err)
	}
	if _, err := s.Append(ctx, []event.Event{testEvent("later")}); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Append after a failed sync = %v, want the sync error", err)
	}
	if n, _ := s.LastSeq(ctx); n != 2 {
		t.Errorf("LastSeq = %d after a failed sync, want 2", n)
	}
}

func TestDurabilityPragmas(t *testing.T) {
	s := openTemp(t)
	// The writer goroutine is idle: nothing is queued.
	for pragma, want := range map[string]int64{
		"synchronous": 1, // NORMAL: the syncer fsyncs the WAL before answering
		"temp_store":  2, // MEMORY
		"cache_size":  -128 * 1024,
	} {
		got, err := queryInt(s.w.conn, "PRAGMA "+pragma)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %d, want %d", pragma, got, want)
		}
	}
	mode, err := queryString(s.w.conn, "PRAGMA journal_mode")
	if err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestCrashKeepsCommitted copies the files of an open store (database and
// WAL, not the shared-memory index), as a kill -9 would leave them, and
// opens the copy.
func TestCrashKeepsCommitted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "vigil.db"))
	defer s.Close()
	var batch []event.Event
	for i := range 500 {
		batch = append(batch, testEvent(fmt.Sprintf("e%d", i)))
	}
	if _, err := s.Append(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(context.Background(), "detect", 250); err != nil {
		t.Fatal(err)
	}

	crash := t.TempDir()
	for _, name := range []string{"vigil.db", "vigil.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(crash, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c := open(t, filepath.Join(crash, "vigil.db"))
	defer c.Close()
	if n, _ := c.LastSeq(context.Background()); n != 500 {
		t.Fatalf("LastSeq after crash = %d, want 500", n)
	}
	if seq, _ := c.Cursor(context.Background(), "detect"); seq != 250 {
		t.Fatalf("cursor after crash = %d, want 250", seq)
	}
	if recs, err := c.Search(context.Background(), store.Query{Text: "e499"}); err != nil || len(recs) != 1 || recs[0].Seq != 500 {
		t.Fatalf("full-text search after crash = %v, %v", recs, err)
	}
}

// TestKilledProcessKeepsAcknowledged runs a child process that appends and
// reports each acknowledged sequence number, kills it with SIGKILL in the
// middle of its work, and checks every acknowledged event is in the store.
func TestKilledProcessKeepsAcknowledged(t *testing.T) {
	if os.Getenv("VIGIL_SQLITE_CHILD") != "" {
		childAppend(os.Getenv("VIGIL_SQLITE_CHILD"))
		return
	}
	path := filepath.Join(t.TempDir(), "vigil.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessKeepsAcknowledged$")
	cmd.Env = append(os.Environ(), "VIGIL_SQLITE_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked uint64
	lines := bufio.NewScanner(out)
	for n := 0; n < 20 && lines.Scan(); n++ {
		if acked, err = strconv.ParseUint(lines.Text(), 10, 64); err != nil {
			t.Fatalf("child said %q", lines.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, out)
	_ = cmd.Wait()
	if acked == 0 {
		t.Fatal("the child acknowledged nothing")
	}

	s := open(t, path)
	defer s.Close()
	last, err := s.LastSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if last < acked {
		t.Fatalf("LastSeq after kill = %d, but %d was acknowledged", last, acked)
	}
	n, err := s.Count(context.Background(), store.Query{})
	if err != nil || uint64(n) != last {
		t.Fatalf("Count after kill = %d, %v; want %d (gap-free)", n, err, last)
	}
	t.Logf("acknowledged %d, found %d after SIGKILL", acked, last)
}

func childAppend(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for b := 0; ; b++ {
		batch := make([]event.Event, 100)
		for i := range batch {
			batch[i] = testEvent(fmt.Sprintf("b%d-%d", b, i))
		}
		res, err := s.Append(context.Background(), batch)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(res.Seqs[len(res.Seqs)-1])
	}
}

// TestFailedTransaction checks that when a grouped transaction fails, every
// request in it gets the error, nothing of it is stored and the next
// sequence number is not advanced.
func TestFailedTransaction(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if _, err := s.Append(ctx, []event.Event{testEvent("first")}); err != nil {
		t.Fatal(err)
	}
	// Make inserting one particular event fail inside SQLite.
	poison(t, s.path, `CREATE TRIGGER poison BEFORE INSERT ON events WHEN new.event_id = 'poison'
		BEGIN SELECT RAISE(ABORT, 'poisoned'); END`)

	// Build the group by hand: the writer goroutine is idle (nothing
	// queued), and commit is what it runs for each group.
	good := &request{ctx: ctx, events: []event.Event{testEvent("good1"), testEvent("good2")}, reply: make(chan reply, 1)}
	cur := &request{ctx: ctx, cursor: "detect", cursorSeq: 1, reply: make(chan reply, 1)}
	bad := &request{ctx: ctx, events: []event.Event{testEvent("poison")}, reply: make(chan reply, 1)}
	s.commit([]*request{good, cur, bad})
	for _, r := range []*request{good, cur, bad} {
		if rep := <-r.reply; rep.err == nil || !strings.Contains(rep.err.Error(), "poisoned") {
			t.Errorf("request answered %v, want the transaction's error", rep.err)
		}
	}
	if n, _ := s.LastSeq(ctx); n != 1 {
		t.Errorf("LastSeq = %d after a failed transaction, want 1", n)
	}
	if seq, _ := s.Cursor(ctx, "detect"); seq != 0 {
		t.Errorf("cursor saved by a failed transaction: %d", seq)
	}
	res, err := s.Append(ctx, []event.Event{testEvent("good1"), testEvent("good3")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Seqs, []uint64{2, 3}) || res.Duplicates != 0 {
		t.Errorf("Append after a failed transaction = %v, %d duplicates; want [2 3], 0", res.Seqs, res.Duplicates)
	}
	if _, err := s.Append(ctx, []event.Event{testEvent("poison")}); err == nil {
		t.Error("the poisoned event was stored")
	}
}

// poison runs DDL on the database through a connection of its own.
func poison(t *testing.T, path, ddl string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(ddl); err != nil {
		t.Fatal(err)
	}
}

func TestInvalidEvents(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	noID := testEvent("x")
	noID.ID = ""
	noBytes := testEvent("x")
	noBytes.Canonical = nil
	for _, batch := range [][]event.Event{{testEvent("ok"), noID}, {noBytes}} {
		if _, err := s.Append(ctx, batch); err == nil {
			t.Errorf("Append(%+v) succeeded", batch)
		}
	}
	if n, _ := s.LastSeq(ctx); n != 0 {
		t.Errorf("a refused batch was partly stored: LastSeq = %d", n)
	}
}

func TestTextWithoutWords(t *testing.T) {
	s := openTemp(t)
	for _, text := range []string{"!!!", `"" - ()`, " "} {
		_, err := s.Search(context.Background(), store.Query{Text: text})
		if err == nil || !strings.Contains(err.Error(), "no words") {
			t.Errorf("Search(Text: %q) = %v, want an error saying it has no words", text, err)
		}
	}
	long := strings.Repeat("word ", maxTextWords+1)
	if _, err := s.Search(context.Background(), store.Query{Text: long}); err == nil {
		t.Errorf("Search with %d words succeeded", maxTextWords+1)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	poison(t, path, `UPDATE meta SET value = 99 WHERE key = 'schema_version'`)
	if s, err := Open(path, Options{}); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer Vigil succeeded")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open: %v; want an error saying the schema is newer", err)
	}
}

func TestCancelWhileQueueFull(t *testing.T) {
	full := &Store{queue: make(chan *request)} // nobody receives
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := full.enqueue(ctx, &request{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("enqueue on a full queue = %v, want context.DeadlineExceeded", err)
	}
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestSegments checks queries on segment-prefixed indexes across segment
// boundaries: the store is made to start numbering just below 2×65536, so
// twelve events span two segments.
func TestSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const start = 2<<segShift - 5 // the first event gets seq start+1
	poison(t, path, fmt.Sprintf(`INSERT INTO meta(key, value) VALUES ('last_seq', %d)`, start))
	s = open(t, path)
	defer s.Close()
	ctx := context.Background()

	var batch []event.Event
	for i := range 12 { // seqs start+1 .. start+12: segments 1 (4 events) and 2 (8 events)
		e := testEvent(fmt.Sprintf("e%d", i))
		e.UserName = []string{"alice", "bob", "carol"}[i%3]
		e.SourceIP = netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 2)})
		e.Related = []string{"order:" + strconv.Itoa(i%4)}
		batch = append(batch, e)
	}
	res, err := s.Append(ctx, batch[:3])
	if err != nil {
		t.Fatal(err)
	}
	if res.Seqs[0] != start+1 {
		t.Fatalf("first seq %d, want %d", res.Seqs[0], start+1)
	}
	if _, err := s.Append(ctx, batch[3:]); err != nil {
		t.Fatal(err)
	}
	seqs := func(recs []store.Record) (out []uint64) {
		for _, r := range recs {
			out = append(out, r.Seq-start)
		}
		return out
	}
	for _, tc := range []struct {
		q    store.Query
		want []uint64 // seq - start
	}{
		{store.Query{UserName: "alice"}, []uint64{1, 4, 7, 10}},
		{store.Query{UserName: "alice", Desc: true}, []uint64{10, 7, 4, 1}},
		{store.Query{UserName: "alice", Limit: 3}, []uint64{1, 4, 7}},
		{store.Query{UserName: "alice", Limit: 2, Desc: true}, []uint64{10, 7}},
		{store.Query{UserName: "alice", AfterSeq: start + 4}, []uint64{7, 10}},
		{store.Query{UserName: "alice", BeforeSeq: start + 7, Desc: true}, []uint64{4, 1}},
		{store.Query{UserName: "alice", AfterSeq: start + 1, BeforeSeq: start + 10}, []uint64{4, 7}},
		{store.Query{UserName: "alice", AfterSeq: start + 100}, nil},
		{store.Query{SourceIP: prefix("10.0.0.0/24"), Limit: 5}, []uint64{1, 2, 3, 4, 5}},
		{store.Query{SourceIP: prefix("10.0.0.1/32"), Desc: true, Limit: 4}, []uint64{12, 10, 8, 6}},
		{store.Query{Related: "order:1"}, []uint64{2, 6, 10}},
		{store.Query{Related: "order:1", UserName: "bob"}, []uint64{2}},
	} {
		recs, err := s.Search(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := seqs(recs); !slices.Equal(got, tc.want) {
			t.Errorf("Search(%+v) = %v (minus %d), want %v", tc.q, got, start, tc.want)
		}
		c := tc.q
		c.Limit = 0
		if n, err := s.Count(ctx, c); err != nil || tc.q.Limit == 0 && n != int64(len(tc.want)) {
			t.Errorf("Count(%+v) = %d, %v; want %d", c, n, err, len(tc.want))
		}
	}
	top, err := s.Top(ctx, store.Query{SourceIP: prefix("10.0.0.0/8")}, "user.name", 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Bucket{{Value: "alice", Count: 4}, {Value: "bob", Count: 4}}
	if !slices.Equal(top, want) {
		t.Errorf("Top across segments = %v, want %v", top, want)
	}
	top, err = s.Top(ctx, store.Query{UserName: "carol"}, "source.ip", 5)
	if err != nil {
		t.Fatal(err)
	}
	want = []store.Bucket{{Value: "10.0.0.0", Count: 2}, {Value: "10.0.0.1", Count: 2}}
	if !slices.Equal(top, want) {
		t.Errorf("Top across segments = %v, want %v", top, want)
	}
}

// TestWALStaysBounded appends without pause and checks that checkpoints keep
// the WAL from growing with the log.
func TestWALStaysBounded(t *testing.T) {
	old := checkpointBytes
	checkpointBytes = 1 << 20
	defer func() { checkpointBytes = old }()
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "vigil.db"))
	defer s.Close()
	pool := benchEvents(1000)
	var maxWAL int64
	for b := range 40 {
		batch := slices.Clone(pool)
		for i := range batch {
			batch[i].ID = fmt.Sprintf("%d-%d", b, i)
		}
		if _, err := s.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "vigil.db-wal")); err == nil {
			maxWAL = max(maxWAL, fi.Size())
		}
	}
	// 40,000 events are over 100 MB of WAL frames; without checkpoints
	// reaching the end of the WAL, the file would hold them all.
	if maxWAL > 16<<20 {
		t.Errorf("WAL grew to %d MB", maxWAL>>20)
	}
	t.Logf("largest WAL, one sender: %.1f MB", float64(maxWAL)/(1<<20))

	// With 8 senders the writer is rarely idle, so its own checkpoints
	// seldom run: SQLite's, after a commit, keeps the WAL bounded.
	var wg sync.WaitGroup
	var mu sync.Mutex
	maxWAL = 0
	for g := range 8 {
		wg.Go(func() {
			for b := range 10 {
				batch := slices.Clone(pool)
				for i := range batch {
					batch[i].ID = fmt.Sprintf("c%d-%d-%d", g, b, i)
				}
				if _, err := s.Append(context.Background(), batch); err != nil {
					t.Error(err)
					return
				}
				if fi, err := os.Stat(filepath.Join(dir, "vigil.db-wal")); err == nil {
					mu.Lock()
					maxWAL = max(maxWAL, fi.Size())
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if maxWAL > 24<<20 {
		t.Errorf("WAL grew to %d MB with 8 senders", maxWAL>>20)
	}
	t.Logf("largest WAL, 8 senders: %.1f MB", float64(maxWAL)/(1<<20))
}

// TestMigrateFromVersion1 opens a database written with schema version 1
// (plain indexes, related without segments, full-text trigger).
func TestMigrateFromVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"PRAGMA journal_mode = WAL",
		`CREATE TABLE meta(key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID`,
		migrations[0],
		`INSERT INTO meta VALUES ('schema_version', 1)`,
		`INSERT INTO events(seq, event_id, user_name, message, canonical) VALUES
			(1, 'a', 'alice', 'login failed',
			 '{"@timestamp":"2026-01-02T03:04:05Z","event":{"id":"a"},"message":"login failed","related":{"objects":["order:1"]},"user":{"name":"alice"}}'),
			(2, 'b', 'bob', 'login ok',
			 '{"@timestamp":"2026-01-02T03:04:06Z","event":{"id":"b"},"message":"login ok","related":{"objects":["order:1","order:2"]},"user":{"name":"bob"}}')`,
		`INSERT INTO related(obj, seq) VALUES ('order:1', 1), ('order:1', 2), ('order:2', 2)`,
	} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%.60s: %v", stmt, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path)
	defer s.Close()
	if v, err := queryInt(s.w.conn, "SELECT value FROM meta WHERE key = 'schema_version'"); err != nil || v != int64(len(migrations)) {
		t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
	}
	ctx := context.Background()
	e := testEvent("c")
	e.UserName, e.Related, e.Message = "alice", []string{"order:2"}, "login failed again"
	if res, err := s.Append(ctx, []event.Event{testEvent("a"), e}); err != nil || !slices.Equal(res.Seqs, []uint64{1, 3}) {
		t.Fatalf("Append after migration = %v, %v; want [1 3]", res.Seqs, err)
	}
	for _, tc := range []struct {
		q    store.Query
		want []uint64
	}{
		{store.Query{UserName: "alice"}, []uint64{1, 3}},
		{store.Query{Related: "order:1"}, []uint64{1, 2}},
		{store.Query{Related: "order:2"}, []uint64{2, 3}},
		{store.Query{Text: "failed"}, []uint64{1, 3}},
		{store.Query{Text: "ok"}, []uint64{2}},
	} {
		recs, err := s.Search(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Seq)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Search(%+v) after migration = %v, want %v", tc.q, got, tc.want)
		}
	}
}
