package ledger

import (
	"fmt"
	"math/bits"

	"golang.org/x/mod/sumdb/tlog"
)

// node is a complete subtree of the Merkle tree: the 2^level leaves starting
// at leaf start (a multiple of 2^level), with its hash when known.
type node struct {
	level int
	start int64
	index int64 // tlog.StoredHashIndex(level, start>>level)
	hash  tlog.Hash
}

func newNode(level int, start int64, h tlog.Hash) node {
	return node{level: level, start: start, index: tlog.StoredHashIndex(level, start>>level), hash: h}
}

// rangeNodes returns the maximal complete subtrees covering leaves [lo, hi),
// left to right: from each position, the largest aligned subtree that fits.
// For lo = 0 they are the subtrees of the set bits of hi, largest first,
// which is what tlog.TreeHash reads to compute the root of a tree of size hi.
func rangeNodes(lo, hi int64) []node {
	var out []node
	for p := lo; p < hi; {
		level := 62
		if p > 0 {
			level = bits.TrailingZeros64(uint64(p))
		}
		for level > 0 && p+int64(1)<<level > hi {
			level--
		}
		out = append(out, newNode(level, p, tlog.Hash{}))
		p += int64(1) << level
	}
	return out
}

// frontier is the compact form of a tree of size leaves: the hashes of the
// complete subtrees of rangeNodes(0, size), largest first. It is all that is
// needed to append leaves (tlog.StoredHashesForRecordHash reads only these
// hashes) and to compute the root (tlog.TreeHash reads only these too).
type frontier struct {
	size  int64
	nodes []node
}

// newFrontier returns the frontier of a tree of size leaves whose
// rangeNodes(0, size) have the given hashes.
func newFrontier(size int64, hashes []tlog.Hash) (*frontier, error) {
	nodes := rangeNodes(0, size)
	if len(hashes) != len(nodes) {
		return nil, fmt.Errorf("frontier of a tree of size %d needs %d hashes, got %d", size, len(nodes), len(hashes))
	}
	for i := range nodes {
		nodes[i].hash = hashes[i]
	}
	return &frontier{size: size, nodes: nodes}, nil
}

// ReadHashes implements tlog.HashReader for the frontier's nodes.
func (f *frontier) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		found := false
		for j := len(f.nodes) - 1; j >= 0; j-- {
			if f.nodes[j].index == x {
				out[i], found = f.nodes[j].hash, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("hash %d is not on the frontier of a tree of size %d", x, f.size)
		}
	}
	return out, nil
}

// appendLeaf adds a leaf and returns the hashes to store for it, starting at
// tlog.StoredHashIndex(0, size) (the leaf hash, then the subtrees it
// completes), as tlog.StoredHashes defines them.
func (f *frontier) appendLeaf(leaf tlog.Hash) ([]tlog.Hash, error) {
	hashes, err := tlog.StoredHashesForRecordHash(f.size, leaf, f)
	if err != nil {
		return nil, fmt.Errorf("hash leaf %d: %w", f.size, err)
	}
	m := len(hashes) - 1
	if m > len(f.nodes) {
		return nil, fmt.Errorf("hash leaf %d: frontier has %d nodes, leaf completes %d", f.size, len(f.nodes), m)
	}
	f.nodes = f.nodes[:len(f.nodes)-m]
	f.nodes = append(f.nodes, newNode(m, f.size+1-int64(1)<<m, hashes[m]))
	f.size++
	return hashes, nil
}

// appendNode adds a complete subtree of 2^level leaves with hash h. The tree
// size must be a multiple of 2^level.
func (f *frontier) appendNode(level int, h tlog.Hash) error {
	if level < 0 || level > 62 || f.size&(int64(1)<<level-1) != 0 {
		return fmt.Errorf("a subtree of height %d cannot follow %d leaves", level, f.size)
	}
	width := int64(1) << level
	start := f.size
	for len(f.nodes) > 0 && f.nodes[len(f.nodes)-1].level == level {
		top := f.nodes[len(f.nodes)-1]
		f.nodes = f.nodes[:len(f.nodes)-1]
		h = tlog.NodeHash(top.hash, h)
		level++
		start = top.start
	}
	f.nodes = append(f.nodes, newNode(level, start, h))
	f.size += width
	return nil
}

// root returns the tree's root hash (the hash of the empty string for an
// empty tree).
func (f *frontier) root() tlog.Hash {
	h, err := tlog.TreeHash(f.size, f)
	if err != nil {
		// The frontier holds exactly the nodes TreeHash reads.
		panic(fmt.Sprintf("ledger: root of frontier: %v", err))
	}
	return h
}

// hashes returns the frontier's node hashes, largest subtree first.
func (f *frontier) hashes() []tlog.Hash {
	out := make([]tlog.Hash, len(f.nodes))
	for i, n := range f.nodes {
		out[i] = n.hash
	}
	return out
}

// clone returns an independent copy.
func (f *frontier) clone() *frontier {
	return &frontier{size: f.size, nodes: append([]node(nil), f.nodes...)}
}
