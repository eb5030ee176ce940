package ledger

import (
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is tlog's reference hash storage: a slice indexed by
// tlog.StoredHashIndex, filled with tlog.StoredHashes.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		if x >= int64(len(m)) {
			return nil, fmt.Errorf("index %d beyond %d", x, len(m))
		}
		out[i] = m[x]
	}
	return out, nil
}

func leafData(i int) []byte { return []byte(fmt.Sprintf(`{"n":%d}`, i)) }

// reference builds tlog's stored hashes for n leaves.
func reference(t testing.TB, n int) memHashes {
	t.Helper()
	var m memHashes
	for i := 0; i < n; i++ {
		hs, err := tlog.StoredHashes(int64(i), leafData(i), m)
		if err != nil {
			t.Fatal(err)
		}
		m = append(m, hs...)
	}
	return m
}

func TestFrontierMatchesTlog(t *testing.T) {
	const n = 300
	ref := reference(t, n)
	f, _ := newFrontier(0, nil)
	var got memHashes
	for i := 0; i < n; i++ {
		hs, err := f.appendLeaf(tlog.RecordHash(leafData(i)))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hs...)
		want, err := tlog.TreeHash(int64(i+1), ref)
		if err != nil {
			t.Fatal(err)
		}
		if f.root() != want {
			t.Fatalf("root of %d leaves: got %s, want %s", i+1, f.root(), want)
		}
	}
	if len(got) != len(ref) {
		t.Fatalf("%d stored hashes, want %d", len(got), len(ref))
	}
	for i := range ref {
		if got[i] != ref[i] {
			t.Fatalf("stored hash %d differs", i)
		}
	}
	// A frontier loaded from the stored hashes continues identically.
	for _, size := range []int64{0, 1, 2, 7, 8, 100, 255, 256, 299} {
		nodes := rangeNodes(0, size)
		idx := make([]int64, len(nodes))
		for i, nd := range nodes {
			idx[i] = nd.index
		}
		hs, err := ref.ReadHashes(idx)
		if err != nil {
			t.Fatal(err)
		}
		g, err := newFrontier(size, hs)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := tlog.TreeHash(size, ref)
		if g.root() != want {
			t.Errorf("loaded frontier of %d: wrong root", size)
		}
	}
}

// TestRangeRoot checks the export's proof: the left range hashes, the leaves
// of [lo, hi) and the right range hashes give the root of the tree.
func TestRangeRoot(t *testing.T) {
	const n = 40
	ref := reference(t, n)
	read := func(nodes []node) []tlog.Hash {
		idx := make([]int64, len(nodes))
		for i, nd := range nodes {
			idx[i] = nd.index
		}
		hs, err := ref.ReadHashes(idx)
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	for m := int64(1); m <= n; m++ {
		want, _ := tlog.TreeHash(m, ref)
		for lo := int64(0); lo < m; lo++ {
			for hi := lo + 1; hi <= m; hi++ {
				f, err := newFrontier(lo, read(rangeNodes(0, lo)))
				if err != nil {
					t.Fatal(err)
				}
				for i := lo; i < hi; i++ {
					if _, err := f.appendLeaf(tlog.RecordHash(leafData(int(i)))); err != nil {
						t.Fatal(err)
					}
				}
				right := rangeNodes(hi, m)
				for i, h := range read(right) {
					if err := f.appendNode(right[i].level, h); err != nil {
						t.Fatalf("m=%d lo=%d hi=%d: %v", m, lo, hi, err)
					}
				}
				if f.size != m || f.root() != want {
					t.Fatalf("m=%d lo=%d hi=%d: size %d, root %s, want %s", m, lo, hi, f.size, f.root(), want)
				}
			}
		}
	}
}

func TestAppendNodeRefusesMisaligned(t *testing.T) {
	f, _ := newFrontier(0, nil)
	f.appendLeaf(tlog.RecordHash([]byte("a")))
	if err := f.appendNode(1, tlog.Hash{}); err == nil {
		t.Fatal("a subtree of 2 leaves after 1 leaf was accepted")
	}
}
