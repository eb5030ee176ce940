package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

var quiet = slog.New(slog.DiscardHandler)

// t0 is the test clock's start.
var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// openStore opens the SQLite store of a data directory.
func openStore(t testing.TB, dir string) *sqlite.Store {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(dir, EventsFile), sqlite.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return st
}

// testEvent is the JSON of the i-th test event.
func testEvent(i int) string {
	users := []string{"alice", "bob", "carol", "dave"}
	return fmt.Sprintf(`{"event":{"id":"ev-%06d","action":"authn_login_fail","outcome":"failure"},"@timestamp":"%s","source":{"ip":"203.0.113.%d"},"user":{"name":"%s"},"message":"login failed for %s <script>&"}`,
		i, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%250, users[i%len(users)], users[i%len(users)])
}

// appendEvents stores the test events from..to-1.
func appendEvents(t testing.TB, st store.Store, from, to int) {
	t.Helper()
	var evs []event.Event
	for i := from; i < to; i++ {
		ev, err := event.Parse([]byte(testEvent(i)), event.Limits{}, t0)
		if err != nil {
			t.Fatalf("parse event %d: %v", i, err)
		}
		evs = append(evs, ev)
		if len(evs) == 5000 || i == to-1 {
			if _, err := st.Append(context.Background(), evs); err != nil {
				t.Fatalf("append: %v", err)
			}
			evs = evs[:0]
		}
	}
}

// openLedger opens the ledger of dir over st and closes it at the end of
// the test.
func openLedger(t testing.TB, dir string, st store.Store, opts Options) *Ledger {
	t.Helper()
	if opts.Log == nil {
		opts.Log = quiet
	}
	l, err := Open(dir, st, opts)
	if err != nil {
		t.Fatalf("open ledger: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dataDir makes a data directory with n events, a ledger synced over them
// (checkpoints at each size in sizes, then at n), both closed.
func dataDir(t testing.TB, n int, sizes ...int) (dir, pubkey string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "data")
	st := openStore(t, dir)
	c := newClock()
	l, err := Open(dir, st, Options{Log: quiet, Now: c.Now, Origin: "vigil.test/log"})
	if err != nil {
		t.Fatal(err)
	}
	done := 0
	for _, s := range append(sizes, n) {
		appendEvents(t, st, done, s)
		done = s
		c.Add(time.Second)
		if _, err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	pubkey = l.PublicKey()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, pubkey
}

// copyDir copies the regular files of a closed data directory.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
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

// sqlite3 runs SQL on a database file with the sqlite3 command-line tool.
func sqlite3(t testing.TB, db, sql string) {
	t.Helper()
	bin, err := exec.LookPath("sqlite3")
	if err != nil {
		t.Fatalf("the sqlite3 command-line tool is needed to tamper with the data in this test: apt-get install -y sqlite3")
	}
	cmd := exec.Command(bin, db)
	cmd.Stdin = strings.NewReader(sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", db, err, out)
	}
}
