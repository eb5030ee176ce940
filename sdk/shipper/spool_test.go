package shipper

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func openTestSpool(t *testing.T, dir string) *spool {
	t.Helper()
	sp, err := openSpool(dir, 1<<20, 4096, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.close() })
	return sp
}

func spoolLines(n, from int) *batch {
	b := &batch{}
	for i := from; i < from+n; i++ {
		b.add(fmt.Appendf(nil, `{"event.id":"r-%d","message":"record %d of the spool test"}`, i, i), i%2 == 0, int32(i))
	}
	return b
}

// readAll replays everything, committing, and returns the lines.
func readAll(t *testing.T, sp *spool) []string {
	t.Helper()
	var got []string
	for {
		b := &batch{}
		if err := sp.readBatch(b, 7, 1<<20); err != nil {
			t.Fatal(err)
		}
		if b.n() == 0 {
			return got
		}
		for i := range b.n() {
			got = append(got, string(b.line(i)))
		}
		if err := sp.commit(b); err != nil {
			t.Fatal(err)
		}
	}
}

func linesOf(b *batch) []string {
	var out []string
	for i := range b.n() {
		out = append(out, string(b.line(i)))
	}
	return out
}

func segFiles(t *testing.T, dir string) []string {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	return segs
}

// Records survive a reopen from the acknowledged cursor on, across segments;
// a torn tail and a corrupt last record are cut, not replayed.
func TestSpoolRecoversAfterCrash(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	sp := openTestSpool(t, dir)
	all := spoolLines(300, 0)
	if c, w, d, err := sp.appendBatch(all, 1<<20); err != nil || c != 300 || w != 300 || d != 0 {
		t.Fatalf("append: %d %d %d %v", c, w, d, err)
	}
	if n := len(segFiles(t, dir)); n < 3 {
		t.Fatalf("%d segments, want several (segMax 4096)", n)
	}
	// Deliver the first 30 records.
	for delivered := 0; delivered < 30; {
		b := &batch{}
		sp.readBatch(b, 30-delivered, 1<<20)
		sp.commit(b)
		delivered += b.n()
	}
	sp.close()

	segs := segFiles(t, dir)
	last := segs[len(segs)-1]
	data, _ := os.ReadFile(last)
	// Corrupt the last record's last byte, then add half a record.
	data[len(data)-2] ^= 0xff
	data = append(data, appendRecord(nil, []byte(`{"event.id":"torn"}`), true)[:12]...)
	os.WriteFile(last, data, 0o600)

	sp = openTestSpool(t, dir)
	want := linesOf(all)[30:299] // the last record was corrupted
	if p := sp.pending.Load(); p != int64(len(want)) {
		t.Errorf("pending after reopen: %d, want %d", p, len(want))
	}
	got := readAll(t, sp)
	if !slices.Equal(got, want) {
		t.Errorf("replayed %d records:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
	if segs := segFiles(t, dir); len(segs) != 0 || sp.size.Load() != 0 {
		t.Errorf("after replaying everything: segments %v, size %d", segs, sp.size.Load())
	}
}

// Without a readable cursor, the spool replays from its first segment:
// re-sending is harmless, losing is not.
func TestSpoolLostCursorReplaysFromStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	sp := openTestSpool(t, dir)
	sp.appendBatch(spoolLines(10, 0), 1<<20)
	b := &batch{}
	sp.readBatch(b, 4, 1<<20)
	sp.commit(b)
	sp.close()
	os.WriteFile(filepath.Join(dir, cursorName), []byte("garbage"), 0o600)
	sp = openTestSpool(t, dir)
	if got := readAll(t, sp); len(got) != 10 {
		t.Errorf("replayed %d records, want all 10", len(got))
	}
}

// The bound holds: best-effort records stop at beLimit, critical ones at the
// spool's bound, and what does not fit is left in the batch.
func TestSpoolBound(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := openSpool(dir, 8192, 4096, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.close()
	b := spoolLines(200, 0) // half critical
	consumed, written, dropped, err := sp.appendBatch(b, 6000)
	if err != nil {
		t.Fatal(err)
	}
	if consumed == 200 || written == 0 || dropped == 0 || consumed != written+dropped {
		t.Errorf("consumed %d, written %d, dropped %d", consumed, written, dropped)
	}
	var onDisk int64
	for _, p := range segFiles(t, dir) {
		fi, _ := os.Stat(p)
		onDisk += fi.Size()
	}
	if onDisk > 8192 || onDisk != sp.size.Load() {
		t.Errorf("spool files hold %d bytes (counted %d), bound 8192", onDisk, sp.size.Load())
	}
	// Past beLimit, only critical records were written.
	got := readAll(t, sp)
	lastBE, lastCrit := -1, -1
	for i, l := range got {
		var n int
		fmt.Sscanf(l, `{"event.id":"r-%d"`, &n)
		if n%2 == 0 {
			lastCrit = i
		} else {
			lastBE = i
		}
	}
	if lastBE < 0 || lastCrit < lastBE+2 {
		t.Errorf("last best-effort record at %d, last critical at %d: critical ones should go on past the best-effort limit", lastBE, lastCrit)
	}
}
