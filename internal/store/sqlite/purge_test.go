package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// TestPurgeAcrossSegments purges events of a closed segment (while it is
// being written out, most likely), of the same segment once written out to
// the postings table, and of the open one, and checks that no query finds
// them, before and after a reopen.
func TestPurgeAcrossSegments(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	const n = segSize + 5000
	batch := make([]event.Event, 0, 10000)
	for i := 1; i <= n; i++ {
		user := fmt.Sprintf("u%d", i%7)
		// Two events a path: short lists, written out packed.
		e := event.Event{ID: fmt.Sprintf("e%d", i), UserName: user, Message: "word" + user,
			Path: fmt.Sprintf("/o/%d", i/2), Time: time.Unix(int64(i), 0).UTC()}
		e.Canonical = fmt.Appendf(nil, `{"event":{"id":%q},"message":%q,"user":{"name":%q},"url":{"path":%q}}`,
			e.ID, e.Message, user, e.Path)
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n {
			if _, err := s.Append(ctx, batch); err != nil {
				t.Fatalf("Append: %v", err)
			}
			batch = batch[:0]
		}
	}
	var early, late []uint64
	for seq := uint64(1); seq <= n; seq++ {
		switch {
		case seq >= 100 && seq < 300:
			early = append(early, seq)
		case seq < segSize && seq%3 == 0, seq >= segSize && seq%2 == 0:
			late = append(late, seq)
		}
	}
	res, err := s.Purge(ctx, "early", early)
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Purged != int64(len(early)) {
		t.Fatalf("Purge = %+v, want %d purged", res, len(early))
	}
	waitFlushed(t, s, 1)
	if res, err = s.Purge(ctx, "late", late); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res.Purged != int64(len(late)) || res.Absent != 0 {
		t.Fatalf("Purge = %+v, want %d purged", res, len(late))
	}
	purge := append(early, late...)
	gone := map[uint64]bool{}
	for _, seq := range purge {
		gone[seq] = true
	}
	counts := map[string]int64{}
	for seq := uint64(1); seq <= n; seq++ {
		if !gone[seq] {
			counts[fmt.Sprintf("u%d", seq%7)]++
		}
	}
	paths := map[string]int64{}
	for seq := uint64(1); seq <= n; seq++ {
		if !gone[seq] {
			paths[fmt.Sprintf("/o/%d", seq/2)]++
		}
	}
	want := func(user string) int64 { return counts[user] }
	check := func(s *Store) {
		t.Helper()
		total, err := s.Count(ctx, store.Query{})
		if err != nil {
			t.Fatal(err)
		}
		if total != int64(n-len(purge)) {
			t.Errorf("Count() = %d, want %d", total, n-len(purge))
		}
		for _, u := range []string{"u0", "u3"} {
			for _, q := range []store.Query{{UserName: u}, {Text: "word" + u}} {
				c, err := s.Count(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if c != want(u) {
					t.Errorf("Count(%+v) = %d, want %d", q, c, want(u))
				}
			}
		}
		// Paths of events purged before and after their segment was
		// written out, of events partly purged, and of the open segment.
		for _, k := range []int{49, 50, 51, 149, 150, 300, 301, segSize/2 - 3, segSize / 2, segSize/2 + 1000, segSize/2 + 2400} {
			p := fmt.Sprintf("/o/%d", k)
			if c, err := s.Count(ctx, store.Query{Path: p}); err != nil || c != paths[p] {
				t.Errorf("Count(path %s) = %d, %v; want %d", p, c, err, paths[p])
			}
		}
		ptop, err := s.Top(ctx, store.Query{AfterSeq: 89, BeforeSeq: 1000}, "url.path", 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range ptop {
			if b.Count != paths[b.Value] {
				t.Errorf("Top(url.path): %s counted %d, want %d", b.Value, b.Count, paths[b.Value])
			}
		}
		if len(ptop) != 200 {
			t.Errorf("Top(url.path) gave %d paths, want 200", len(ptop))
		}
		top, err := s.Top(ctx, store.Query{}, "user.name", 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(top) != 1 || top[0].Count != want(top[0].Value) {
			t.Errorf("Top = %v, want counts without purged events", top)
		}
		for _, q := range []store.Query{{Limit: store.MaxLimit}, {Limit: store.MaxLimit, AfterSeq: segSize + 50}, {Limit: store.MaxLimit, AfterSeq: 2*segSize - 10}} {
			recs, err := s.Search(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if i := slices.IndexFunc(recs, func(r store.Record) bool { return gone[r.Seq] }); i >= 0 {
				t.Errorf("Search(%+v) returned purged event %d", q, recs[i].Seq)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	check(s)
}

// TestPurgeNewestKeepsNumbering purges the newest events and reopens the
// store: their sequence numbers are never handed out again (the purge
// records the last number; ordinary commits no longer do).
func TestPurgeNewestKeepsNumbering(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s := open(t, path)
	var batch []event.Event
	for i := range 10 {
		batch = append(batch, testEvent(fmt.Sprintf("n%d", i)))
	}
	if _, err := s.Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Purge(ctx, "newest", []uint64{8, 9, 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if n, _ := s.LastSeq(ctx); n != 10 {
		t.Errorf("LastSeq after reopening = %d, want 10", n)
	}
	res, err := s.Append(ctx, []event.Event{testEvent("after")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Seqs[0] != 11 {
		t.Errorf("next event got seq %d, want 11 (8–10 were purged, not free)", res.Seqs[0])
	}
}
