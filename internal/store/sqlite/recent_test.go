package sqlite

import (
	"fmt"
	"slices"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

func TestRecentCache(t *testing.T) {
	var c recentCache
	add := func(first, n uint64, size int) {
		var seqs []uint64
		var evs []event.Event
		for i := range n {
			seqs = append(seqs, first+i)
			evs = append(evs, event.Event{ID: fmt.Sprint(first + i), Canonical: make([]byte, size)})
		}
		c.add(seqs, evs)
	}
	seqsOf := func(after uint64, limit int, last uint64) (string, bool) {
		recs, ok := c.read(after, limit, last)
		var s []uint64
		for _, r := range recs {
			s = append(s, r.Seq)
		}
		return fmt.Sprint(s), ok
	}
	if _, ok := c.read(0, 10, 5); ok {
		t.Fatal("empty cache answered")
	}
	add(11, 5, 10) // 11..15
	add(16, 3, 10) // 16..18
	for _, tc := range []struct {
		after uint64
		limit int
		last  uint64
		want  string
		ok    bool
	}{
		{10, 100, 18, "[11 12 13 14 15 16 17 18]", true},
		{12, 4, 18, "[13 14 15 16]", true},
		{15, 100, 17, "[16 17]", true}, // not past the committed last
		{18, 100, 18, "[]", true},
		{9, 100, 18, "", false}, // 10 is not cached
		{10, 100, 20, "", false},
	} {
		got, ok := seqsOf(tc.after, tc.limit, tc.last)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("read(%d, %d, %d) = %s, %v; want %s, %v", tc.after, tc.limit, tc.last, got, ok, tc.want, tc.ok)
		}
	}
	// A gap starts afresh; the byte bound drops the oldest chunks.
	add(30, 2, 10)
	if _, ok := c.read(15, 10, 31); ok {
		t.Error("read across a gap answered from the cache")
	}
	for i := range uint64(10) {
		add(32+i*4, 4, recentBytes/16)
	}
	if c.bytes > recentBytes {
		t.Errorf("cache holds %d bytes, bound %d", c.bytes, recentBytes)
	}
	recs, ok := c.read(70, 10, 71)
	if !ok || !slices.Equal([]uint64{recs[0].Seq}, []uint64{71}) {
		t.Errorf("latest record: %v %v", recs, ok)
	}
	seqs, evs, ok := c.readParsed(69, 10, 71)
	if !ok || !slices.Equal(seqs, []uint64{70, 71}) || evs[0].ID != "70" || evs[1].ID != "71" {
		t.Errorf("latest parsed events: %v %v %v", seqs, evs, ok)
	}
	c.forget()
	if _, ok := c.read(70, 10, 71); ok {
		t.Error("forgotten cache answered")
	}
}
