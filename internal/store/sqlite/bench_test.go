package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

const benchBatch = 1000

// benchStart is the @timestamp of the first benchmark event. Timestamps then
// advance 10 µs per event, as a live log's do: with the pool's timestamps
// repeating, every batch would insert all over the time index, which no
// real sender causes.
var benchStart = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// benchRandomIDs makes BenchmarkAppend use random event IDs (see
// BenchmarkAppendRandomIDs).
var benchRandomIDs = false

// BenchmarkAppend measures durable ingest: batches of 1000 realistic events
// (about 400 bytes of canonical JSON each, an address, a user, an action, a
// path, a request id and a message of a few words) appended from 1 and 8
// goroutines, each Append returning after its transaction's fsync.
func BenchmarkAppend(b *testing.B) {
	for _, goroutines := range []int{1, 8} {
		b.Run(fmt.Sprintf("goroutines=%d", goroutines), func(b *testing.B) {
			benchmarkAppend(b, goroutines, Options{})
		})
	}
}

// BenchmarkAppendRandomIDs is BenchmarkAppend with random event IDs, as
// senders using UUIDv4 would send: each new ID lands at a random place in the
// event_id index.
func BenchmarkAppendRandomIDs(b *testing.B) {
	benchRandomIDs = true
	defer func() { benchRandomIDs = false }()
	benchmarkAppend(b, 8, Options{})
}

func benchmarkAppend(b *testing.B, goroutines int, opts Options) {
	s, err := Open(filepath.Join(b.TempDir(), "vigil.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pool := benchEvents(10000)
	ctx := context.Background()
	var (
		next int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	b.ResetTimer()
	for range goroutines {
		wg.Go(func() {
			batch := make([]event.Event, benchBatch)
			ids := make([]byte, 0, 32*benchBatch)
			for {
				n := atomic.AddInt64(&next, 1)
				if n > int64(b.N) {
					return
				}
				// Unique IDs, time-ordered like UUIDv7, or random like
				// UUIDv4 with benchRandomIDs.
				ids = ids[:0]
				for i := range batch {
					batch[i] = pool[(int(n)*benchBatch+i)%len(pool)]
					batch[i].Time = benchStart.Add(time.Duration(int(n)*benchBatch+i) * 10 * time.Microsecond)
					start := len(ids)
					if benchRandomIDs {
						ids = strconv.AppendUint(ids, rand.Uint64(), 16)
						ids = append(ids, '-')
					}
					ids = strconv.AppendInt(ids, n, 36)
					ids = append(ids, '-')
					ids = strconv.AppendInt(ids, int64(i), 36)
					batch[i].ID = string(ids[start:])
				}
				if _, err := s.Append(ctx, batch); err != nil {
					fail.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "events/s")
}

// benchEvents returns n varied events shaped like web application security
// events.
func benchEvents(n int) []event.Event {
	r := rand.New(rand.NewPCG(1, 2))
	actions := []string{"authn_login_success", "authn_login_fail", "authz_fail", "input_validation_fail",
		"session_created", "session_expired", "sys_config_change", "user_created", "http_request", "http_request"}
	paths := make([]string, 60)
	for i := range paths {
		paths[i] = fmt.Sprintf("/api/v1/%s/%d", []string{"orders", "users", "cart", "login", "admin"}[i%5], i)
	}
	words := []string{"login", "failed", "for", "user", "from", "password", "invalid", "token", "expired",
		"request", "denied", "access", "admin", "session", "created", "order", "payment", "accepted", "rate", "limit"}
	events := make([]event.Event, n)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range events {
		var ip netip.Addr
		if r.IntN(10) == 0 {
			ip = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
		} else {
			ip = netip.AddrFrom4([4]byte{byte(10 + r.IntN(200)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		}
		e := event.Event{
			ID:        fmt.Sprintf("%016x", r.Uint64()),
			Time:      base.Add(time.Duration(i) * time.Millisecond),
			Kind:      "event",
			Category:  "authentication",
			Action:    actions[r.IntN(len(actions))],
			Outcome:   []string{"success", "failure"}[r.IntN(2)],
			SourceIP:  ip,
			UserName:  fmt.Sprintf("user%d", r.IntN(5000)),
			UserID:    strconv.Itoa(r.IntN(5000)),
			Method:    []string{"GET", "POST", "PUT"}[r.IntN(3)],
			Path:      paths[r.IntN(len(paths))],
			Status:    []int{200, 201, 302, 400, 401, 403, 404, 500}[r.IntN(8)],
			RequestID: fmt.Sprintf("%016x", r.Uint64()),
			Service:   "shop",
			Host:      "web-1",
		}
		for range 4 + r.IntN(5) {
			if e.Message != "" {
				e.Message += " "
			}
			e.Message += words[r.IntN(len(words))]
		}
		if r.IntN(4) == 0 {
			e.Related = []string{"order:" + strconv.Itoa(r.IntN(100000))}
		}
		canonical, err := json.Marshal(map[string]any{
			"@timestamp": e.Time.Format(time.RFC3339Nano),
			"event": map[string]any{"id": e.ID, "kind": e.Kind, "category": []string{e.Category},
				"action": e.Action, "outcome": e.Outcome},
			"source":  map[string]any{"ip": ip.String()},
			"user":    map[string]any{"name": e.UserName, "id": e.UserID},
			"http":    map[string]any{"request": map[string]any{"method": e.Method, "id": e.RequestID}, "response": map[string]any{"status_code": e.Status}},
			"url":     map[string]any{"path": e.Path},
			"service": map[string]any{"name": e.Service},
			"message": e.Message,
			"vigil":   map[string]any{"schema": event.SchemaVersion},
		})
		if err != nil {
			panic(err)
		}
		e.Canonical = canonical
		events[i] = e
	}
	return events
}

func TestBenchEventsAreRealistic(t *testing.T) {
	total := 0
	for _, e := range benchEvents(1000) {
		total += len(e.Canonical)
	}
	if avg := total / 1000; avg < 350 || avg > 500 {
		t.Errorf("benchmark events average %d canonical bytes, want about 400", avg)
	}
}

// BenchmarkSearch measures common queries over 200,000 stored events.
func BenchmarkSearch(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "vigil.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pool := benchEvents(200000)
	for i := 0; i < len(pool); i += 10000 {
		if _, err := s.Append(context.Background(), pool[i:i+10000]); err != nil {
			b.Fatal(err)
		}
	}
	// Search the segments as they are once written out (postings and
	// packs tables), not while in memory.
	waitFlushed(b, s, uint64(len(pool))>>segShift)
	e := pool[12345]
	for _, bc := range []struct {
		name string
		q    store.Query
	}{
		{"ip", store.Query{SourceIP: netip.PrefixFrom(e.SourceIP, e.SourceIP.BitLen())}},
		{"ipv4-16", store.Query{SourceIP: netip.MustParsePrefix("50.10.0.0/16")}},
		{"user", store.Query{UserName: e.UserName}},
		{"action-desc", store.Query{Action: "authn_login_fail", Desc: true}},
		{"request-id", store.Query{RequestID: e.RequestID}},
		{"path", store.Query{Path: e.Path}},
		{"time-1min", store.Query{From: e.Time, To: e.Time.Add(time.Minute)}},
		{"text", store.Query{Text: "password expired"}},
		{"user+action", store.Query{UserName: e.UserName, Action: "authn_login_fail"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Search(context.Background(), bc.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("top-failed-logins-per-user", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Top(context.Background(), store.Query{Action: "authn_login_fail"}, "user.name", 10); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("count-action", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Count(context.Background(), store.Query{Action: "authn_login_fail"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSearchOrderedIDs looks up one request id among 400,000 events
// (6 segments written out) whose request ids grow with time, as the SDK's
// UUIDv7 ones do: the segments' value bounds leave one segment to read.
func BenchmarkSearchOrderedIDs(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "vigil.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pool := benchEvents(400000)
	for i := range pool {
		pool[i].RequestID = fmt.Sprintf("0195a%011x-7000-8000-000000000000", i)
	}
	for i := 0; i < len(pool); i += 10000 {
		if _, err := s.Append(context.Background(), pool[i:i+10000]); err != nil {
			b.Fatal(err)
		}
	}
	waitFlushed(b, s, uint64(len(pool))>>segShift)
	q := store.Query{RequestID: pool[12345].RequestID}
	for b.Loop() {
		recs, err := s.Search(context.Background(), q)
		if err != nil || len(recs) != 1 {
			b.Fatalf("%d records, %v", len(recs), err)
		}
	}
}
