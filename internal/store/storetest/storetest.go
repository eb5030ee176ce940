// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a function opening its store in a
// directory the suite chooses:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, dir string) store.Store {
//			s, err := sqlite.Open(filepath.Join(dir, "vigil.db"), sqlite.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// The suite closes every store it opens. Opening the same directory again
// must give back the same data (the suite uses that to test durability).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

// Opener opens the store kept in dir, creating it when dir holds none.
type Opener func(t *testing.T, dir string) store.Store

// Run runs the conformance suite against the backend open opens.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyBatch", testEmptyBatch},
		{"GapFreeAcrossBatches", testGapFree},
		{"Duplicates", testDuplicates},
		{"ConcurrentAppends", testConcurrentAppends},
		{"ReadPaging", testReadPaging},
		{"Filters", testFilters},
		{"Paginate", testPaginate},
		{"Count", testCount},
		{"Top", testTop},
		{"TopUnknownField", testTopUnknownField},
		{"Cursors", testCursors},
		{"Reopen", testReopen},
		{"AppendAfterClose", testAppendAfterClose},
		{"CancelledContext", testCancelledContext},
		{"Purge", testPurge},
		{"PurgeBadInput", testPurgeBadInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, &harness{t: t, open: open, dir: t.TempDir()})
		})
	}
}

// harness opens stores in one directory and closes them at the end.
type harness struct {
	t    *testing.T
	open Opener
	dir  string
}

// store opens the test's store; it is closed when the test ends unless the
// test closes it first through close.
func (h *harness) store() store.Store {
	h.t.Helper()
	s := h.open(h.t, h.dir)
	c := &closer{s: s}
	h.t.Cleanup(func() {
		if err := c.close(); err != nil {
			h.t.Errorf("Close: %v", err)
		}
	})
	return &closeOnce{Store: s, c: c}
}

type closer struct {
	once sync.Once
	s    store.Store
	err  error
}

func (c *closer) close() error {
	c.once.Do(func() { c.err = c.s.Close() })
	return c.err
}

type closeOnce struct {
	store.Store
	c *closer
}

func (s *closeOnce) Close() error { return s.c.close() }

var ctx = context.Background()

// base is the time of the first test event.
var base = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ev builds an event: ID and time from i, fields set by f, and canonical
// bytes encoding them (keys sorted, as event.Parse produces).
func ev(i int, f func(*event.Event)) event.Event {
	e := event.Event{
		ID:   fmt.Sprintf("ev-%04d", i),
		Time: base.Add(time.Duration(i) * time.Second),
	}
	if f != nil {
		f(&e)
	}
	e.Canonical = canonical(e)
	return e
}

func canonical(e event.Event) []byte {
	m := map[string]any{
		"@timestamp": e.Time.Format(time.RFC3339Nano),
		"event":      map[string]any{"id": e.ID},
		"vigil":      map[string]any{"schema": event.SchemaVersion},
	}
	put := func(path []string, v any) {
		cur := m
		for _, k := range path[:len(path)-1] {
			next, ok := cur[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[k] = next
			}
			cur = next
		}
		cur[path[len(path)-1]] = v
	}
	for _, f := range []struct {
		path []string
		v    string
	}{
		{[]string{"event", "action"}, e.Action},
		{[]string{"event", "category"}, e.Category},
		{[]string{"event", "outcome"}, e.Outcome},
		{[]string{"user", "name"}, e.UserName},
		{[]string{"user", "id"}, e.UserID},
		{[]string{"http", "request", "method"}, e.Method},
		{[]string{"http", "request", "id"}, e.RequestID},
		{[]string{"url", "path"}, e.Path},
		{[]string{"service", "name"}, e.Service},
		{[]string{"message"}, e.Message},
	} {
		if f.v != "" {
			put(f.path, f.v)
		}
	}
	if e.SourceIP.IsValid() {
		put([]string{"source", "ip"}, e.SourceIP.String())
	}
	if e.Status != 0 {
		put([]string{"http", "response", "status_code"}, e.Status)
	}
	if len(e.Related) > 0 {
		put([]string{"related", "objects"}, e.Related)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func (h *harness) append(s store.Store, events ...event.Event) store.AppendResult {
	h.t.Helper()
	res, err := s.Append(ctx, events)
	if err != nil {
		h.t.Fatalf("Append(%d events): %v", len(events), err)
	}
	if len(res.Seqs) != len(events) {
		h.t.Fatalf("Append(%d events) returned %d seqs", len(events), len(res.Seqs))
	}
	return res
}

func (h *harness) readAll(s store.Store) []store.Record {
	h.t.Helper()
	var all []store.Record
	after := uint64(0)
	for {
		recs, err := s.Read(ctx, after, 1000)
		if err != nil {
			h.t.Fatalf("Read(%d, 1000): %v", after, err)
		}
		if len(recs) == 0 {
			return all
		}
		all = append(all, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func (h *harness) lastSeq(s store.Store) uint64 {
	h.t.Helper()
	n, err := s.LastSeq(ctx)
	if err != nil {
		h.t.Fatalf("LastSeq: %v", err)
	}
	return n
}

func seqRange(first, last uint64) []uint64 {
	var out []uint64
	for s := first; s <= last; s++ {
		out = append(out, s)
	}
	return out
}

func seqsOf(recs []store.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func testRoundTrip(t *testing.T, h *harness) {
	s := h.store()
	if n := h.lastSeq(s); n != 0 {
		t.Fatalf("LastSeq of an empty store = %d, want 0", n)
	}
	if recs, err := s.Read(ctx, 0, 10); err != nil || len(recs) != 0 {
		t.Fatalf("Read of an empty store = %d records, %v; want none", len(recs), err)
	}
	big := make([]byte, 0, 200<<10)
	for len(big) < 200<<10 {
		big = append(big, "0123456789abcdef"...)
	}
	events := []event.Event{
		ev(1, func(e *event.Event) { e.Message = "plain" }),
		ev(2, func(e *event.Event) { e.Message = "unicode: é 中文 \u2028 emoji 🙂, escapes \" \\ \t" }),
		ev(3, func(e *event.Event) { e.Message = string(big) }),
		ev(4, nil),
	}
	// Canonical bytes are opaque to the store: not even valid JSON is
	// required, nor a particular key order.
	events[3].Canonical = []byte("{\"z\":1,\n \"a\": [1, 2.50, \"\\u00e9\"]}\x00\xff")
	res := h.append(s, events...)
	if want := []uint64{1, 2, 3, 4}; !slices.Equal(res.Seqs, want) || res.Duplicates != 0 {
		t.Fatalf("Append = seqs %v, %d duplicates; want %v, 0", res.Seqs, res.Duplicates, want)
	}
	if n := h.lastSeq(s); n != 4 {
		t.Fatalf("LastSeq = %d, want 4", n)
	}
	recs := h.readAll(s)
	if len(recs) != len(events) {
		t.Fatalf("Read returned %d records, want %d", len(recs), len(events))
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) {
			t.Errorf("record %d has seq %d, want %d", i, r.Seq, i+1)
		}
		if string(r.Canonical) != string(events[i].Canonical) {
			t.Errorf("record %d canonical bytes differ from those appended:\n got %.200q\nwant %.200q", i, r.Canonical, events[i].Canonical)
		}
	}
	found, err := s.Search(ctx, store.Query{})
	if err != nil {
		t.Fatalf("Search(all): %v", err)
	}
	if !slices.Equal(seqsOf(found), []uint64{1, 2, 3, 4}) {
		t.Errorf("Search(all) = %v, want [1 2 3 4]", seqsOf(found))
	}
	for i, r := range found {
		if string(r.Canonical) != string(events[i].Canonical) {
			t.Errorf("Search record %d canonical bytes differ from those appended", i)
		}
	}
}

func testEmptyBatch(t *testing.T, h *harness) {
	s := h.store()
	res, err := s.Append(ctx, nil)
	if err != nil || len(res.Seqs) != 0 || res.Duplicates != 0 {
		t.Fatalf("Append(no events) = %+v, %v; want an empty result", res, err)
	}
	h.append(s, ev(1, nil))
	if n := h.lastSeq(s); n != 1 {
		t.Fatalf("an empty batch consumed a sequence number: LastSeq = %d after one event", n)
	}
}

func testGapFree(t *testing.T, h *harness) {
	s := h.store()
	next, i := uint64(1), 0
	for _, size := range []int{1, 7, 1, 250, 3, 1000} {
		var batch []event.Event
		for range size {
			i++
			batch = append(batch, ev(i, nil))
		}
		res := h.append(s, batch...)
		if want := seqRange(next, next+uint64(size)-1); !slices.Equal(res.Seqs, want) {
			t.Fatalf("batch of %d: seqs %v…, want %d..%d", size, res.Seqs[:min(5, size)], next, next+uint64(size)-1)
		}
		next += uint64(size)
	}
	recs := h.readAll(s)
	if !slices.Equal(seqsOf(recs), seqRange(1, uint64(i))) {
		t.Fatalf("Read returned %d records, not seqs 1..%d in order", len(recs), i)
	}
	if n := h.lastSeq(s); n != uint64(i) {
		t.Fatalf("LastSeq = %d, want %d", n, i)
	}
}

func testDuplicates(t *testing.T, h *harness) {
	s := h.store()
	a, b, c, d := ev(1, nil), ev(2, nil), ev(3, nil), ev(4, nil)
	h.append(s, a, b)

	// A resent event may differ in its bytes (a retry re-stamped by a
	// shipper); the first copy is the one kept.
	a2 := a
	a2.Canonical = []byte(`{"event":{"id":"ev-0001"},"resent":true}`)
	res := h.append(s, c, a2, c, d, b)
	if want := []uint64{3, 1, 3, 4, 2}; !slices.Equal(res.Seqs, want) || res.Duplicates != 3 {
		t.Fatalf("Append(c, a again, c again, d, b again) = seqs %v, %d duplicates; want %v, 3", res.Seqs, res.Duplicates, want)
	}
	res = h.append(s, a, a, a)
	if want := []uint64{1, 1, 1}; !slices.Equal(res.Seqs, want) || res.Duplicates != 3 {
		t.Fatalf("Append(a, a, a) = seqs %v, %d duplicates; want %v, 3", res.Seqs, res.Duplicates, want)
	}
	e := ev(5, nil)
	res = h.append(s, e, e)
	if want := []uint64{5, 5}; !slices.Equal(res.Seqs, want) || res.Duplicates != 1 {
		t.Fatalf("Append(e, e) = seqs %v, %d duplicates; want %v, 1", res.Seqs, res.Duplicates, want)
	}
	recs := h.readAll(s)
	if !slices.Equal(seqsOf(recs), []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("stored seqs %v, want [1 2 3 4 5]", seqsOf(recs))
	}
	if string(recs[0].Canonical) != string(a.Canonical) {
		t.Errorf("the duplicate replaced the first copy: %s", recs[0].Canonical)
	}
	if n := h.lastSeq(s); n != 5 {
		t.Errorf("LastSeq = %d, want 5", n)
	}
}

func testConcurrentAppends(t *testing.T, h *harness) {
	s := h.store()
	const workers, batches, size = 16, 10, 50
	type result struct {
		ids  []string
		seqs []uint64
	}
	results := make([]result, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				batch := make([]event.Event, size)
				for i := range batch {
					batch[i] = ev(0, nil)
					batch[i].ID = fmt.Sprintf("w%d-b%d-%d", w, b, i)
					batch[i].Canonical = []byte(`{"id":"` + batch[i].ID + `"}`)
				}
				res, err := s.Append(ctx, batch)
				if err != nil {
					errs <- fmt.Errorf("worker %d batch %d: %w", w, b, err)
					return
				}
				if !slices.IsSorted(res.Seqs) {
					errs <- fmt.Errorf("worker %d batch %d: seqs not in batch order: %v", w, b, res.Seqs)
					return
				}
				for i := range batch {
					results[w].ids = append(results[w].ids, batch[i].ID)
				}
				results[w].seqs = append(results[w].seqs, res.Seqs...)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = workers * batches * size
	byseq := map[uint64]string{}
	for _, r := range results {
		for i, seq := range r.seqs {
			if other, ok := byseq[seq]; ok {
				t.Fatalf("seq %d given to both %s and %s", seq, other, r.ids[i])
			}
			byseq[seq] = r.ids[i]
		}
	}
	recs := h.readAll(s)
	if !slices.Equal(seqsOf(recs), seqRange(1, total)) {
		t.Fatalf("stored %d records, not seqs 1..%d", len(recs), total)
	}
	for _, r := range recs {
		if want := `{"id":"` + byseq[r.Seq] + `"}`; string(r.Canonical) != want {
			t.Fatalf("seq %d holds %s, but Append reported it for %s", r.Seq, r.Canonical, byseq[r.Seq])
		}
	}
	if n := h.lastSeq(s); n != total {
		t.Fatalf("LastSeq = %d, want %d", n, total)
	}
}

func testReadPaging(t *testing.T, h *harness) {
	s := h.store()
	var batch []event.Event
	for i := 1; i <= 250; i++ {
		batch = append(batch, ev(i, nil))
	}
	h.append(s, batch...)
	for _, tc := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 3, []uint64{1, 2, 3}},
		{247, 10, []uint64{248, 249, 250}},
		{250, 10, nil},
		{1000, 10, nil},
		{0, 0, seqRange(1, store.DefaultLimit)},
		{100, -1, seqRange(101, 200)},
	} {
		recs, err := s.Read(ctx, tc.after, tc.limit)
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", tc.after, tc.limit, err)
		}
		if !slices.Equal(seqsOf(recs), tc.want) {
			t.Errorf("Read(%d, %d) = seqs %v, want %v", tc.after, tc.limit, seqsOf(recs), tc.want)
		}
	}
}

// dataset is the events the query tests search, appended in this order so
// that event i has seq i+1.
func dataset() []event.Event {
	ip := netip.MustParseAddr
	login := func(i int, user, addr string, ok bool, msg string) event.Event {
		return ev(i, func(e *event.Event) {
			e.Category, e.Service = "authentication", "shop"
			e.Action, e.Outcome = "authn_login_fail", "failure"
			if ok {
				e.Action, e.Outcome = "authn_login_success", "success"
			}
			e.UserName, e.UserID = user, "id-"+user
			e.SourceIP = ip(addr)
			e.Method, e.Path, e.Status = "POST", "/login", 401
			if ok {
				e.Status = 200
			}
			e.RequestID = fmt.Sprintf("req-%d", i)
			e.Message = msg
		})
	}
	return []event.Event{
		login(1, "alice", "203.0.113.7", false, "Login failed for alice: bad password"),            // seq 1
		login(2, "alice", "203.0.113.7", false, "Login failed for alice: bad password"),            // seq 2
		login(3, "bob", "203.0.113.200", false, "Login FAILED for bob from Berlin"),                // seq 3
		login(4, "alice", "198.51.100.1", true, "login succeeded"),                                 // seq 4
		login(5, "carol", "2001:db8::1", false, "Login failed for carol: unknown user"),            // seq 5
		login(6, "carol", "2001:db8::2", false, "Login failed for carol: account locked (NEAR)"),   // seq 6
		login(7, "dave", "2001:db8:1::9", true, "Login ok"),                                        // seq 7
		login(8, "bob", "203.0.114.1", false, `password "hunter2" rejected; attempt -3 OR (more)`), // seq 8
		ev(9, func(e *event.Event) { // seq 9
			e.Category, e.Action, e.Outcome = "configuration", "sys_config_change", "success"
			e.UserName, e.UserID = "alice", "id-alice"
			e.Method, e.Path, e.Status = "PUT", "/admin/settings", 204
			e.RequestID, e.Service = "req-9", "admin"
			e.Related = []string{"setting:mfa", "user:alice"}
			e.Message = "MFA setting changed by alice"
		}),
		ev(10, func(e *event.Event) { // seq 10
			e.Category, e.Action, e.Outcome = "web", "authz_fail", "failure"
			e.UserName = "bob"
			e.SourceIP = ip("203.0.113.7")
			e.Method, e.Path, e.Status = "GET", "/admin/settings", 403
			e.RequestID, e.Service = "req-10", "admin"
			e.Related = []string{"user:alice"}
			e.Message = "bob denied access to admin settings"
		}),
		ev(11, func(e *event.Event) { // seq 11: a bare event
			e.Message = "heartbeat"
		}),
		ev(12, func(e *event.Event) { // seq 12: IPv4 written in its IPv6-mapped form
			e.Action = "authn_login_fail"
			e.UserName = "erin"
			e.SourceIP = ip("::ffff:203.0.113.9")
		}),
	}
}

func (h *harness) loaded() store.Store {
	h.t.Helper()
	s := h.store()
	// Two batches, to be sure queries see across transactions.
	d := dataset()
	h.append(s, d[:5]...)
	h.append(s, d[5:]...)
	return s
}

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// at is the time of dataset event i.
func at(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }

var filterCases = []struct {
	name string
	q    store.Query
	want []uint64
}{
	{"all", store.Query{}, seqRange(1, 12)},
	{"ip exact v4", store.Query{SourceIP: prefix("203.0.113.7/32")}, []uint64{1, 2, 10}},
	{"ip v4 /24", store.Query{SourceIP: prefix("203.0.113.0/24")}, []uint64{1, 2, 3, 10, 12}},
	{"ip v4 /16", store.Query{SourceIP: prefix("203.0.0.0/16")}, []uint64{1, 2, 3, 8, 10, 12}},
	{"ip v4 not masked", store.Query{SourceIP: prefix("203.0.113.99/24")}, []uint64{1, 2, 3, 10, 12}},
	{"ip v4 /0 excludes v6 and absent", store.Query{SourceIP: prefix("0.0.0.0/0")}, []uint64{1, 2, 3, 4, 8, 10, 12}},
	{"ip v4-mapped stored", store.Query{SourceIP: prefix("203.0.113.9/32")}, []uint64{12}},
	{"ip v6 exact", store.Query{SourceIP: prefix("2001:db8::2/128")}, []uint64{6}},
	{"ip v6 /64", store.Query{SourceIP: prefix("2001:db8::/64")}, []uint64{5, 6}},
	{"ip v6 /32", store.Query{SourceIP: prefix("2001:db8::/32")}, []uint64{5, 6, 7}},
	{"ip no match", store.Query{SourceIP: prefix("192.0.2.1/32")}, nil},
	{"user name", store.Query{UserName: "alice"}, []uint64{1, 2, 4, 9}},
	{"user id", store.Query{UserID: "id-carol"}, []uint64{5, 6}},
	{"user unknown", store.Query{UserName: "mallory"}, nil},
	{"action", store.Query{Action: "authn_login_fail"}, []uint64{1, 2, 3, 5, 6, 8, 12}},
	{"category", store.Query{Category: "configuration"}, []uint64{9}},
	{"outcome", store.Query{Outcome: "success"}, []uint64{4, 7, 9}},
	{"method", store.Query{Method: "GET"}, []uint64{10}},
	{"path", store.Query{Path: "/admin/settings"}, []uint64{9, 10}},
	{"path is exact", store.Query{Path: "/admin"}, nil},
	{"status", store.Query{Status: 401}, []uint64{1, 2, 3, 5, 6, 8}},
	{"request id", store.Query{RequestID: "req-3"}, []uint64{3}},
	{"service", store.Query{Service: "admin"}, []uint64{9, 10}},
	{"related", store.Query{Related: "user:alice"}, []uint64{9, 10}},
	{"related other", store.Query{Related: "setting:mfa"}, []uint64{9}},
	{"related unknown", store.Query{Related: "user:bob"}, nil},
	{"text one word", store.Query{Text: "failed"}, []uint64{1, 2, 3, 5, 6}},
	{"text case-insensitive", store.Query{Text: "BERLIN"}, []uint64{3}},
	{"text all words must match", store.Query{Text: "failed carol"}, []uint64{5, 6}},
	{"text words in any order", store.Query{Text: "carol failed locked"}, []uint64{6}},
	{"text no match", store.Query{Text: "failed dave"}, nil},
	{"text operators are words", store.Query{Text: "NEAR"}, []uint64{6}},
	{"text OR is a word", store.Query{Text: "alice OR bob"}, nil},
	{"text quotes and punctuation", store.Query{Text: `"hunter2" -3 (more)`}, []uint64{8}},
	{"text unbalanced syntax", store.Query{Text: `hunter2" (more`}, []uint64{8}},
	{"time from", store.Query{From: at(11)}, []uint64{11, 12}},
	{"time to is exclusive", store.Query{To: at(3)}, []uint64{1, 2}},
	{"time range", store.Query{From: at(4), To: at(6)}, []uint64{4, 5}},
	{"time range other zone", store.Query{From: at(4).In(time.FixedZone("X", 5*3600)), To: at(6)}, []uint64{4, 5}},
	{"after seq", store.Query{AfterSeq: 10}, []uint64{11, 12}},
	{"before seq", store.Query{BeforeSeq: 3}, []uint64{1, 2}},
	{"seq window", store.Query{AfterSeq: 3, BeforeSeq: 6}, []uint64{4, 5}},
	{"desc", store.Query{UserName: "alice", Desc: true}, []uint64{9, 4, 2, 1}},
	{"limit", store.Query{Action: "authn_login_fail", Limit: 3}, []uint64{1, 2, 3}},
	{"limit desc", store.Query{Action: "authn_login_fail", Limit: 2, Desc: true}, []uint64{12, 8}},
	{"combined user action", store.Query{UserName: "alice", Action: "authn_login_fail"}, []uint64{1, 2}},
	{"combined ip user", store.Query{SourceIP: prefix("203.0.113.0/24"), UserName: "bob"}, []uint64{3, 10}},
	{"combined time text", store.Query{From: at(2), To: at(6), Text: "failed"}, []uint64{2, 3, 5}},
	{"combined related path status", store.Query{Related: "user:alice", Path: "/admin/settings", Status: 403}, []uint64{10}},
	{"combined many", store.Query{
		SourceIP: prefix("203.0.113.0/24"), UserName: "alice", UserID: "id-alice", Action: "authn_login_fail",
		Category: "authentication", Outcome: "failure", Method: "POST", Path: "/login", Status: 401,
		Service: "shop", Text: "password", From: at(1), To: at(3), AfterSeq: 1, BeforeSeq: 9,
	}, []uint64{2}},
	{"combined no overlap", store.Query{UserName: "alice", Service: "nope"}, nil},
}

func testFilters(t *testing.T, h *harness) {
	s := h.loaded()
	for _, tc := range filterCases {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := s.Search(ctx, tc.q)
			if err != nil {
				t.Fatalf("Search(%+v): %v", tc.q, err)
			}
			if got := seqsOf(recs); !slices.Equal(got, tc.want) {
				t.Errorf("Search = seqs %v, want %v", got, tc.want)
			}
		})
	}
}

func testPaginate(t *testing.T, h *harness) {
	s := h.store()
	var batch []event.Event
	for i := 1; i <= 300; i++ {
		batch = append(batch, ev(i, func(e *event.Event) {
			e.Action = []string{"a", "b", "c"}[i%3]
		}))
	}
	h.append(s, batch...)
	var want []uint64 // action "b": i%3 == 1, seq == i
	for i := 1; i <= 300; i++ {
		if i%3 == 1 {
			want = append(want, uint64(i))
		}
	}

	var got []uint64
	q := store.Query{Action: "b", Limit: 7}
	for {
		recs, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		if len(recs) > 7 {
			t.Fatalf("page of %d records, limit 7", len(recs))
		}
		got = append(got, seqsOf(recs)...)
		q.AfterSeq = recs[len(recs)-1].Seq
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paging forward with AfterSeq = %v, want %v", got, want)
	}

	got = nil
	q = store.Query{Action: "b", Limit: 9, Desc: true}
	for {
		recs, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		got = append(got, seqsOf(recs)...)
		q.BeforeSeq = recs[len(recs)-1].Seq
	}
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paging backward with BeforeSeq = %v, want %v", got, want)
	}

	recs, err := s.Search(ctx, store.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != store.DefaultLimit {
		t.Errorf("Search with Limit 0 returned %d records, want the default %d", len(recs), store.DefaultLimit)
	}
}

func testCount(t *testing.T, h *harness) {
	s := h.loaded()
	for _, tc := range filterCases {
		if tc.q.Limit != 0 {
			continue
		}
		n, err := s.Count(ctx, tc.q)
		if err != nil {
			t.Fatalf("Count(%s): %v", tc.name, err)
		}
		if n != int64(len(tc.want)) {
			t.Errorf("Count(%s) = %d, want %d", tc.name, n, len(tc.want))
		}
	}
	q := store.Query{Action: "authn_login_fail", Limit: 1, Desc: true}
	if n, err := s.Count(ctx, q); err != nil || n != 7 {
		t.Errorf("Count ignoring Limit = %d, %v; want 7", n, err)
	}
}

func testTop(t *testing.T, h *harness) {
	s := h.loaded()
	for _, tc := range []struct {
		name  string
		q     store.Query
		field string
		n     int
		want  []store.Bucket
	}{
		// Ties are ordered by value: 203.0.113.200 before 2001:db8… is
		// address order (IPv4 first), not string order.
		{"top source ips", store.Query{}, "source.ip", 4, []store.Bucket{
			bucket("203.0.113.7", 3), bucket("198.51.100.1", 1), bucket("203.0.113.9", 1), bucket("203.0.113.200", 1),
		}},
		{"failed logins per user", store.Query{Action: "authn_login_fail"}, "user.name", 10, []store.Bucket{
			bucket("alice", 2), bucket("bob", 2), bucket("carol", 2), bucket("erin", 1),
		}},
		{"failed logins per user from a network", store.Query{Action: "authn_login_fail", SourceIP: prefix("203.0.113.0/24")}, "user.name", 10, []store.Bucket{
			bucket("alice", 2), bucket("bob", 1), bucket("erin", 1),
		}},
		{"top 1", store.Query{}, "user.name", 1, []store.Bucket{bucket("alice", 4)}},
		{"status codes", store.Query{}, "http.response.status_code", 3, []store.Bucket{
			bucket("401", 6), bucket("200", 2), bucket("204", 1),
		}},
		{"actions", store.Query{}, "event.action", 10, []store.Bucket{
			bucket("authn_login_fail", 7), bucket("authn_login_success", 2), bucket("authz_fail", 1), bucket("sys_config_change", 1),
		}},
		{"user ids", store.Query{Outcome: "success"}, "user.id", 5, []store.Bucket{
			bucket("id-alice", 2), bucket("id-dave", 1),
		}},
		{"categories", store.Query{Service: "admin"}, "event.category", 5, []store.Bucket{
			bucket("configuration", 1), bucket("web", 1),
		}},
		{"outcomes", store.Query{}, "event.outcome", 5, []store.Bucket{
			bucket("failure", 7), bucket("success", 3),
		}},
		{"methods", store.Query{}, "http.request.method", 5, []store.Bucket{
			bucket("POST", 8), bucket("GET", 1), bucket("PUT", 1),
		}},
		{"paths", store.Query{Text: "alice"}, "url.path", 5, []store.Bucket{
			bucket("/login", 2), bucket("/admin/settings", 1),
		}},
		{"services", store.Query{}, "service.name", 5, []store.Bucket{
			bucket("shop", 8), bucket("admin", 2),
		}},
		{"nothing matches", store.Query{UserName: "mallory"}, "source.ip", 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Top(ctx, tc.q, tc.field, tc.n)
			if err != nil {
				t.Fatalf("Top(%s, %d): %v", tc.field, tc.n, err)
			}
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Top(%s, %d) = %v, want %v", tc.field, tc.n, got, tc.want)
			}
		})
	}
}

func bucket(v string, n int64) store.Bucket { return store.Bucket{Value: v, Count: n} }

func testTopUnknownField(t *testing.T, h *harness) {
	s := h.loaded()
	for _, field := range []string{"message", "canonical", "user_name", "", "source.ip; DROP TABLE events"} {
		if _, err := s.Top(ctx, store.Query{}, field, 5); err == nil {
			t.Errorf("Top(%q) succeeded, want an error naming the allowed fields", field)
		}
	}
	if n := h.lastSeq(s); n != 12 {
		t.Errorf("LastSeq = %d after bad Top calls, want 12", n)
	}
}

func testCursors(t *testing.T, h *harness) {
	s := h.store()
	if seq, err := s.Cursor(ctx, "detect"); err != nil || seq != 0 {
		t.Fatalf("Cursor of an unknown consumer = %d, %v; want 0", seq, err)
	}
	for _, c := range []struct {
		name string
		seq  uint64
	}{{"detect", 5}, {"forward/splunk", 7}, {"detect", 42}} {
		if err := s.SetCursor(ctx, c.name, c.seq); err != nil {
			t.Fatalf("SetCursor(%q, %d): %v", c.name, c.seq, err)
		}
	}
	check := func(s store.Store) {
		t.Helper()
		for name, want := range map[string]uint64{"detect": 42, "forward/splunk": 7, "tail": 0} {
			if seq, err := s.Cursor(ctx, name); err != nil || seq != want {
				t.Errorf("Cursor(%q) = %d, %v; want %d", name, seq, err, want)
			}
		}
	}
	check(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check(h.store())
}

func testReopen(t *testing.T, h *harness) {
	s := h.store()
	d := dataset()
	h.append(s, d[:6]...)
	h.append(s, d[6:]...)
	before := h.readAll(s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = h.store()
	after := h.readAll(s)
	if len(after) != len(before) {
		t.Fatalf("after reopening: %d records, want %d", len(after), len(before))
	}
	for i := range before {
		if after[i].Seq != before[i].Seq || string(after[i].Canonical) != string(before[i].Canonical) {
			t.Fatalf("after reopening, record %d = seq %d %s; want seq %d %s", i, after[i].Seq, after[i].Canonical, before[i].Seq, before[i].Canonical)
		}
	}
	if n := h.lastSeq(s); n != 12 {
		t.Fatalf("LastSeq after reopening = %d, want 12", n)
	}
	// Indexes and full-text search survive too.
	if recs, err := s.Search(ctx, store.Query{Text: "berlin", UserName: "bob"}); err != nil || !slices.Equal(seqsOf(recs), []uint64{3}) {
		t.Fatalf("Search after reopening = %v, %v; want [3]", seqsOf(recs), err)
	}
	// Sequence numbers continue, and IDs stored before are still known.
	res := h.append(s, d[0], ev(100, nil))
	if want := []uint64{1, 13}; !slices.Equal(res.Seqs, want) || res.Duplicates != 1 {
		t.Fatalf("Append after reopening = %v, %d duplicates; want %v, 1", res.Seqs, res.Duplicates, want)
	}
}

func testAppendAfterClose(t *testing.T, h *harness) {
	s := h.store()
	h.append(s, ev(1, nil))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Append(ctx, []event.Event{ev(2, nil)}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Append after Close = %v, want store.ErrClosed", err)
	}
	if err := s.SetCursor(ctx, "detect", 1); !errors.Is(err, store.ErrClosed) {
		t.Errorf("SetCursor after Close = %v, want store.ErrClosed", err)
	}
	s = h.store()
	if n := h.lastSeq(s); n != 1 {
		t.Errorf("LastSeq after reopening = %d, want 1", n)
	}
}

func testCancelledContext(t *testing.T, h *harness) {
	s := h.store()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cctx, []event.Event{ev(1, nil), ev(2, nil)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.SetCursor(cctx, "detect", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("SetCursor with a cancelled context = %v, want context.Canceled", err)
	}
	if n := h.lastSeq(s); n != 0 {
		t.Fatalf("LastSeq = %d after a cancelled Append, want 0", n)
	}
	if seq, err := s.Cursor(ctx, "detect"); err != nil || seq != 0 {
		t.Fatalf("Cursor = %d, %v after a cancelled SetCursor, want 0", seq, err)
	}
	// The events can be sent again and get the first sequence numbers.
	res := h.append(s, ev(1, nil), ev(2, nil))
	if !slices.Equal(res.Seqs, []uint64{1, 2}) || res.Duplicates != 0 {
		t.Fatalf("Append after a cancelled one = %v, %d duplicates; want [1 2], 0", res.Seqs, res.Duplicates)
	}
}
