package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vigilsec/vigil/internal/event"
)

// benchEvent is an event of about 500 canonical bytes, like a web request
// log line.
func benchEvent(i int) []byte {
	return []byte(fmt.Sprintf(`{"@timestamp":"2026-11-23T10:00:00Z","event":{"id":"bench-%08d","action":"http_request","category":"web","outcome":"success"},`+
		`"source":{"ip":"203.0.113.%d","port":%d},"user":{"name":"user%d","id":"%d"},"http":{"request":{"method":"GET","id":"req-%08d"},"response":{"status_code":200,"body":{"bytes":5120}}},`+
		`"url":{"path":"/api/v1/orders/%d","query":"page=2&sort=desc"},"user_agent":{"original":"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"},`+
		`"service":{"name":"shop"},"message":"GET /api/v1/orders/%d answered 200 in 12 ms"}`, i, i%250, 1024+i%60000, i%5000, i%5000, i, i%100000, i%100000))
}

// BenchmarkSync measures the ledger keeping up with the store: read the
// committed events from SQLite, hash them, and commit the stored hashes in
// batches of 10,000 (synchronous=FULL), then sign. One iteration hashes
// the whole store into a fresh ledger.
func BenchmarkSync(b *testing.B) {
	const n = 200_000
	dir := b.TempDir()
	st := openStore(b, dir)
	defer st.Close()
	evs := make([]event.Event, 0, 10000)
	var size int
	for i := 0; i < n; i++ {
		ev, err := event.Parse(benchEvent(i), event.Limits{}, t0)
		if err != nil {
			b.Fatal(err)
		}
		size += len(ev.Canonical)
		evs = append(evs, ev)
		if len(evs) == cap(evs) {
			if _, err := st.Append(context.Background(), evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := Open(b.TempDir(), st, Options{Log: quiet})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		cp, err := l.Sync(context.Background())
		if err != nil || cp.Size != n {
			b.Fatal(cp.Size, err)
		}
		b.ReportMetric(n/time.Since(start).Seconds(), "events/s")
		l.Close()
	}
	b.ReportMetric(float64(size)/n, "bytes/event")
}

// BenchmarkHashLeaves measures hashing alone: SHA-256 of the canonical
// bytes and the tree's stored hashes, no I/O.
func BenchmarkHashLeaves(b *testing.B) {
	data := make([][]byte, 4096)
	for i := range data {
		data[i] = benchEvent(i)
	}
	f, _ := newFrontier(0, nil)
	b.SetBytes(int64(len(data[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.appendLeaf(tlog.RecordHash(data[i%len(data)])); err != nil {
			b.Fatal(err)
		}
	}
}
