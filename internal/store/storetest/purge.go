package storetest

import (
	"slices"
	"testing"

	"github.com/vigilsec/vigil/internal/store"
)

// testPurge checks that purged events are gone from every read, that their
// sequence numbers are recorded and never handed out again, that purging
// again is harmless, and that all of it survives a reopen.
func testPurge(t *testing.T, h *harness) {
	s := h.loaded()
	p, ok := s.(store.Purger)
	if !ok {
		if c, isWrapped := s.(*closeOnce); isWrapped {
			p, ok = c.Store.(store.Purger)
		}
	}
	if !ok {
		t.Skip("the backend does not implement store.Purger")
	}
	res, err := p.Purge(ctx, "run-1", []uint64{2, 3, 8})
	if err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if res != (store.PurgeResult{Purged: 3}) {
		t.Errorf("Purge = %+v, want 3 purged", res)
	}
	check := func(t *testing.T, s store.Store, p store.Purger) {
		t.Helper()
		if got, want := seqsOf(h.readAll(s)), []uint64{1, 4, 5, 6, 7, 9, 10, 11, 12}; !slices.Equal(got, want) {
			t.Errorf("Read = %v, want %v", got, want)
		}
		searches := []struct {
			q    store.Query
			want []uint64
		}{
			{store.Query{}, []uint64{1, 4, 5, 6, 7, 9, 10, 11, 12}},
			{store.Query{UserName: "bob"}, []uint64{10}},
			{store.Query{UserName: "alice"}, []uint64{1, 4, 9}},
			{store.Query{Text: "password"}, []uint64{1}},
			{store.Query{SourceIP: prefix("203.0.113.0/24")}, []uint64{1, 10, 12}},
			{store.Query{From: at(2), To: at(9)}, []uint64{4, 5, 6, 7}},
			{store.Query{Desc: true, Limit: 3}, []uint64{12, 11, 10}},
		}
		for _, tc := range searches {
			recs, err := s.Search(ctx, tc.q)
			if err != nil {
				t.Fatalf("Search(%+v): %v", tc.q, err)
			}
			if got := seqsOf(recs); !slices.Equal(got, tc.want) {
				t.Errorf("Search(%+v) = %v, want %v", tc.q, got, tc.want)
			}
			n, err := s.Count(ctx, tc.q)
			if err != nil {
				t.Fatalf("Count(%+v): %v", tc.q, err)
			}
			if tc.q.Limit == 0 && n != int64(len(tc.want)) {
				t.Errorf("Count(%+v) = %d, want %d", tc.q, n, len(tc.want))
			}
		}
		top, err := s.Top(ctx, store.Query{}, "user.name", 10)
		if err != nil {
			t.Fatalf("Top: %v", err)
		}
		wantTop := []store.Bucket{bucket("alice", 3), bucket("carol", 2), bucket("bob", 1), bucket("dave", 1), bucket("erin", 1)}
		if !slices.Equal(top, wantTop) {
			t.Errorf("Top(user.name) = %v, want %v", top, wantTop)
		}
		if n := h.lastSeq(s); n != 12 {
			t.Errorf("LastSeq = %d, want 12", n)
		}
		ranges, err := p.PurgedRanges(ctx, 0, 100)
		if err != nil {
			t.Fatalf("PurgedRanges: %v", err)
		}
		wantRanges := []store.PurgedRange{{First: 2, Last: 3, Run: "run-1"}, {First: 8, Last: 8, Run: "run-1"}}
		if !slices.Equal(ranges, wantRanges) {
			t.Errorf("PurgedRanges = %v, want %v", ranges, wantRanges)
		}
	}
	check(t, s, p)

	// Again, as after a crash in the middle of a purge: nothing changes.
	res, err = p.Purge(ctx, "run-2", []uint64{2, 3, 8})
	if err != nil {
		t.Fatalf("Purge again: %v", err)
	}
	if res != (store.PurgeResult{Absent: 3}) {
		t.Errorf("Purge again = %+v, want 3 absent", res)
	}
	check(t, s, p)

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = h.store()
	p = s.(*closeOnce).Store.(store.Purger)
	check(t, s, p)
	// Purged numbers are never handed out again, even the last one.
	if _, err := p.Purge(ctx, "run-3", []uint64{12}); err != nil {
		t.Fatalf("Purge(12): %v", err)
	}
	r := h.append(s, ev(100, nil))
	if r.Seqs[0] != 13 {
		t.Errorf("append after purging the last event got seq %d, want 13", r.Seqs[0])
	}
}

// testPurgeBadInput checks that Purge refuses unordered input and an empty
// run name, changing nothing.
func testPurgeBadInput(t *testing.T, h *harness) {
	s := h.loaded()
	p, ok := s.(*closeOnce).Store.(store.Purger)
	if !ok {
		t.Skip("the backend does not implement store.Purger")
	}
	for _, tc := range []struct {
		run  string
		seqs []uint64
	}{
		{"r", []uint64{3, 2}},
		{"r", []uint64{2, 2}},
		{"", []uint64{1}},
		{"r", []uint64{0}},
	} {
		if _, err := p.Purge(ctx, tc.run, tc.seqs); err == nil {
			t.Errorf("Purge(%q, %v) succeeded", tc.run, tc.seqs)
		}
	}
	if n := len(h.readAll(s)); n != 12 {
		t.Errorf("%d events left, want 12", n)
	}
}
