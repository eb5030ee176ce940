package sqlite

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// TestPostingsAgainstScan checks every kind of query against a plain scan of
// the events, while the postings of a segment are in memory, once they are
// written out, after a reopen, and after a crash in the middle of writing
// them out. The store starts numbering just below a segment boundary so
// that the events span two segments. Some fields take a new or rare value
// in many events (users u0…u599, addresses in 10.2.0.0/22, order paths,
// words n0…n2999), so that their short lists are packed among long ones.
func TestPostingsAgainstScan(t *testing.T) {
	// Rows of 300 bytes: the longer lists are cut into several parts.
	defer func(n int) { listRowBytes = n }(listRowBytes)
	listRowBytes = 300
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := open(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const start = 2<<segShift - 1500 // segment 1 gets 1500 events, segment 2 the rest
	poison(t, path, fmt.Sprintf(`INSERT INTO meta(key, value) VALUES ('last_seq', %d)`, start))
	s = open(t, path)
	ctx := context.Background()

	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	users := []string{"alice", "bob", "carol", "dave", "Émile"}
	paths := []string{"/login", "/cart", "/admin/settings", "/.env"}
	words := []string{"login", "failed", "password", "Berlin", "cart", "ok", "ÉTÉ", "token-42"}
	var all []event.Event
	for i := range 4000 {
		ip := netip.AddrFrom4([4]byte{10, byte(rng.IntN(2)), 0, byte(rng.IntN(8))})
		if rng.IntN(5) == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", rng.IntN(4)))
		}
		if rng.IntN(4) == 0 {
			ip = netip.AddrFrom4([4]byte{10, 2, byte(rng.IntN(4)), byte(rng.IntN(256))})
		}
		user := users[rng.IntN(len(users))]
		if rng.IntN(2) == 0 {
			user = fmt.Sprintf("u%d", rng.IntN(600))
		}
		path := paths[rng.IntN(len(paths))]
		if rng.IntN(3) == 0 {
			path = fmt.Sprintf("/orders/%d", rng.IntN(2000))
		}
		msg := make([]string, 1+rng.IntN(4))
		for j := range msg {
			msg[j] = words[rng.IntN(len(words))]
		}
		if rng.IntN(2) == 0 {
			msg = append(msg, fmt.Sprintf("n%d", rng.IntN(3000)))
		}
		doc := fmt.Sprintf(`{"event":{"id":"p%d","action":%q,"outcome":%q},"@timestamp":%q,
			"source":{"ip":%q},"user":{"name":%q},"url":{"path":%q},"http":{"response":{"status_code":%d}},
			"message":%q,"related":{"objects":[%q]}}`,
			i, []string{"authn_login_fail", "authn_login_success", "http_request"}[rng.IntN(3)],
			[]string{"success", "failure"}[rng.IntN(2)],
			// Mostly in order, sometimes late: blocks overlap in time.
			t0.Add(time.Duration(i-rng.IntN(50))*time.Second).Format(time.RFC3339Nano),
			ip, user, path,
			[]int{200, 302, 404, 500}[rng.IntN(4)], strings.Join(msg, " "),
			fmt.Sprintf("order:%d", rng.IntN(20)))
		e, err := event.Parse([]byte(doc), event.Limits{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, e)
	}
	for b := 0; b < len(all); b += 250 {
		if _, err := s.Append(ctx, all[b:b+250]); err != nil {
			t.Fatal(err)
		}
	}

	queries := []store.Query{
		{},
		{UserName: "alice"},
		{UserName: "Émile", Desc: true, Limit: 7},
		{SourceIP: prefix("10.1.0.0/16")},
		{SourceIP: prefix("10.0.0.3/32"), Action: "authn_login_fail"},
		{SourceIP: prefix("2001:db8::/126"), Desc: true},
		{Path: "/.env", Status: 404},
		{Related: "order:7"},
		{Text: "failed password"},
		{Text: "berlin"},
		{Text: "été"},
		{Text: "token 42"},
		{Outcome: "failure", UserName: "bob", Limit: 10000},
		{From: t0.Add(1000 * time.Second), To: t0.Add(2600 * time.Second)},
		{From: t0.Add(1400 * time.Second), To: t0.Add(1600 * time.Second), UserName: "carol", Desc: true},
		{From: t0.Add(3990 * time.Second)},
		{AfterSeq: start + 1400, BeforeSeq: start + 1700, Action: "http_request"},
		{UserName: "nobody"},
		{UserName: "u17"},
		{UserName: "u599", Desc: true},
		{UserName: "u", Limit: 5},
		{SourceIP: prefix("10.2.0.0/16")},
		{SourceIP: prefix("10.2.1.0/24")},
		{SourceIP: prefix("10.2.2.128/25"), Outcome: "failure"},
		{SourceIP: prefix("10.2.3.7/32")},
		{Path: "/orders/1234"},
		{Path: "/orders/7", UserName: "alice"},
		{Text: "n777"},
		{Text: "n12 login"},
	}
	check := func(stage string) {
		t.Helper()
		for _, q := range queries {
			if q.Limit == 0 {
				q.Limit = 10000
			}
			want := scan(all, start, q)
			recs, err := s.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: Search(%+v): %v", stage, q, err)
			}
			got := make([]uint64, len(recs))
			for i, r := range recs {
				got[i] = r.Seq
				if string(r.Canonical) != string(all[r.Seq-start-1].Canonical) {
					t.Fatalf("%s: record %d has the wrong bytes", stage, r.Seq)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: Search(%+v): %d events, want %d", stage, q, len(got), len(want))
			}
			unlimited := q
			unlimited.Limit = 0
			wantN := len(scan(all, start, unlimited))
			if n, err := s.Count(ctx, q); err != nil || n != int64(wantN) {
				t.Errorf("%s: Count(%+v) = %d, %v; want %d", stage, q, n, err, wantN)
			}
			for _, field := range []string{"user.name", "source.ip", "http.response.status_code", "url.path"} {
				top, err := s.Top(ctx, q, field, 3)
				if err != nil {
					t.Fatalf("%s: Top: %v", stage, err)
				}
				if w := scanTop(all, start, q, field, 3); !slices.Equal(top, w) {
					t.Errorf("%s: Top(%+v, %s) = %v, want %v", stage, q, field, top, w)
				}
			}
		}
	}

	check("in memory or partly written")
	waitFlushed(t, s, 2)
	check("written out")
	written := dumpPostings(t, s)
	for _, want := range []string{"packs ", "lists ", " part 2 "} {
		if !strings.Contains(written, want) {
			t.Fatalf("segment 1 written out without %q", want)
		}
	}
	pruned := func(stage string) {
		t.Helper()
		// A value below or above every value of the field in segment 1
		// skips it; one between reads it. (From segment 1 on: segment 0
		// holds no event and no bounds.)
		for _, c := range []struct {
			q     store.Query
			reads int64
		}{
			{store.Query{UserName: "0nobody"}, 0},
			{store.Query{UserName: "Ωmega"}, 0},
			{store.Query{UserName: "nobody"}, 1},
			{store.Query{SourceIP: prefix("2001:db9::/32")}, 0},
			{store.Query{SourceIP: prefix("10.9.0.0/16")}, 1},
		} {
			c.q.AfterSeq = start
			before := s.postingsReads.Load()
			if _, err := s.Search(ctx, c.q); err != nil {
				t.Fatal(err)
			}
			if got := s.postingsReads.Load() - before; got != c.reads {
				t.Errorf("%s: Search(%+v) read the postings of %d written-out segments, want %d", stage, c.q, got, c.reads)
			}
		}
	}
	pruned("written out")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	check("reopened")
	pruned("reopened")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Lists as a version before schema 5 wrote them: one row each in
	// postings.
	poison(t, path, `INSERT INTO postings(seg, field, value, seqs)
		SELECT seg, field, value, seqs FROM lists WHERE seg = 1 AND part = 0 AND NOT EXISTS
			(SELECT 1 FROM lists l WHERE l.seg = lists.seg AND l.field = lists.field AND l.value = lists.value AND l.part = 1);
		DELETE FROM lists WHERE seg = 1 AND part = 0 AND (field, value) IN (SELECT field, value FROM postings WHERE seg = 1)`)
	s = open(t, path)
	if !strings.Contains(dumpPostings(t, s), "postings ") {
		t.Fatal("no list moved to postings")
	}
	check("in postings")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash halfway through writing segment 1 out: some of its postings
	// are in the table, the mark still says segment 1 is in memory. It is
	// written out again in chunks of another size: the packs must come out
	// the same, or old ones would overlap new ones.
	poison(t, path, `DELETE FROM postings WHERE seg = 1 AND length(value) % 2 = 0`)
	poison(t, path, `DELETE FROM lists WHERE seg = 1 AND length(value) % 2 = 1`)
	poison(t, path, `DELETE FROM packs WHERE seg = 1 AND length(first) % 2 = 1`)
	poison(t, path, `UPDATE meta SET value = 1 WHERE key = 'postings_seg'`)
	defer func(n int) { flushChunkKeys = n }(flushChunkKeys)
	flushChunkKeys = 7
	s = open(t, path)
	defer s.Close()
	check("after a crash while writing postings out")
	waitFlushed(t, s, 2)
	check("written out again")
	if again := dumpPostings(t, s); again != written {
		t.Errorf("postings written out again differ:\n%s\nfirst time:\n%s", again, written)
	}
}

// dumpPostings lists the rows of segment 1 in postings, lists and packs.
func dumpPostings(t *testing.T, s *Store) string {
	t.Helper()
	rows, err := s.db.Query(`SELECT 'postings', field, hex(value), hex(seqs) FROM postings WHERE seg = 1
		UNION ALL SELECT 'lists', field, hex(value) || ' part ' || part, hex(seqs) FROM lists WHERE seg = 1
		UNION ALL SELECT 'packs', field, hex(first), hex(data) FROM packs WHERE seg = 1 ORDER BY 1, 2, 3`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var table, value, data string
		var f int
		if err := rows.Scan(&table, &f, &value, &data); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %s %s\n", table, f, value, data)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// waitFlushed waits until the postings of every segment before seg are in
// the table.
func waitFlushed(t testing.TB, s *Store, seg uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s.idx.mu.RLock()
		done := s.idx.flushed >= seg
		s.idx.mu.RUnlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postings of segment %d not written out", seg-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scan is the reference: the seqs of the events matching q, by a plain
// comparison of each event's fields.
func scan(all []event.Event, start uint64, q store.Query) []uint64 {
	var out []uint64
	for i := range all {
		if seq := start + uint64(i) + 1; matches(&all[i], seq, q) {
			out = append(out, seq)
		}
	}
	if q.Desc {
		slices.Reverse(out)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

func matches(e *event.Event, seq uint64, q store.Query) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	if seq <= q.AfterSeq || q.BeforeSeq > 0 && seq >= q.BeforeSeq ||
		!q.From.IsZero() && e.Time.Before(q.From) || !q.To.IsZero() && !e.Time.Before(q.To) ||
		q.SourceIP.IsValid() && !q.SourceIP.Contains(e.SourceIP) ||
		!eq(q.UserName, e.UserName) || !eq(q.Action, e.Action) || !eq(q.Outcome, e.Outcome) ||
		!eq(q.Path, e.Path) || q.Status != 0 && q.Status != e.Status ||
		q.Related != "" && !slices.Contains(e.Related, q.Related) {
		return false
	}
	if q.Text != "" {
		var have []string
		forEachWord(e.Message, func(w string) bool { have = append(have, w); return true })
		words, _ := queryWords(q.Text)
		for _, w := range words {
			if !slices.Contains(have, w) {
				return false
			}
		}
	}
	return true
}

func scanTop(all []event.Event, start uint64, q store.Query, field string, n int) []store.Bucket {
	q.Limit, q.Desc = 0, false
	counts := map[string]int64{}
	for _, seq := range scan(all, start, q) {
		e := &all[seq-start-1]
		switch field {
		case "user.name":
			counts[e.UserName]++
		case "source.ip":
			counts[e.SourceIP.String()]++
		case "http.response.status_code":
			counts[fmt.Sprint(e.Status)]++
		case "url.path":
			counts[e.Path]++
		}
	}
	var out []store.Bucket
	for v, c := range counts {
		out = append(out, store.Bucket{Value: v, Count: c})
	}
	slices.SortFunc(out, func(a, b store.Bucket) int {
		if a.Count != b.Count {
			return int(b.Count - a.Count)
		}
		if field == "source.ip" {
			return netip.MustParseAddr(a.Value).Compare(netip.MustParseAddr(b.Value))
		}
		return strings.Compare(a.Value, b.Value)
	})
	return out[:min(n, len(out))]
}

// FuzzPacks decodes arbitrary bytes as a pack (it must fail cleanly or give
// lists decodeList accepts) and checks that a pack made of the values and
// lists it gave decodes to the same.
func FuzzPacks(f *testing.F) {
	f.Add(appendPacked(appendPacked(nil, "/orders/17", []uint16{3, 90}), "/orders/18", []uint16{65535}))
	f.Add([]byte{0x02, 'a', 'b', 0x01, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		type entry struct {
			v string
			l []uint16
		}
		var got []entry
		if eachPacked(data, nil, func(v []byte, l []uint16) error {
			got = append(got, entry{string(v), slices.Clone(l)})
			return nil
		}) != nil {
			return
		}
		var pack []byte
		for _, e := range got {
			if len(e.l) > packMaxOffs {
				return // never written: appendPacked's length byte is for short lists
			}
			pack = appendPacked(pack, e.v, e.l)
		}
		var again []entry
		if err := eachPacked(pack, nil, func(v []byte, l []uint16) error {
			again = append(again, entry{string(v), slices.Clone(l)})
			return nil
		}); err != nil {
			t.Fatalf("re-encoded pack: %v", err)
		}
		if !slices.EqualFunc(got, again, func(a, b entry) bool { return a.v == b.v && slices.Equal(a.l, b.l) }) {
			t.Fatalf("round trip: %v, then %v", got, again)
		}
	})
}
