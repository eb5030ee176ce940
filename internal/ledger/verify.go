package ledger

import (
	"cmp"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/tlog"
)

// Reason says what is wrong with an event or a checkpoint.
type Reason string

// The reasons a verifier reports.
const (
	// Changed: the event's bytes hash to something else than the leaf
	// recorded for its sequence number.
	Changed Reason = "changed"
	// Missing: there is no event with this sequence number.
	Missing Reason = "missing"
	// Reordered: the event at this sequence number is the one recorded at
	// another (a swap or a shift).
	Reordered Reason = "reordered"
	// SignatureInvalid: a checkpoint is not signed by the given public key.
	SignatureInvalid Reason = "signature invalid"
	// Rewritten: the events and the stored tree agree with each other but
	// not with the signed checkpoint: both were rebuilt.
	Rewritten Reason = "rewritten"
	// Malformed: a line of an export does not follow the format.
	Malformed Reason = "malformed"
)

// Problem is one thing found wrong. Seq is 0 for a problem of a checkpoint
// rather than of an event.
type Problem struct {
	Seq    uint64 `json:"seq,omitempty"`
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
}

func (p Problem) String() string {
	if p.Seq == 0 {
		return fmt.Sprintf("%s: %s", p.Reason, p.Detail)
	}
	return fmt.Sprintf("event %d: %s: %s", p.Seq, p.Reason, p.Detail)
}

// maxProblems bounds the problems a Report lists; the rest are counted.
const maxProblems = 1000

// Report is the outcome of a verification.
type Report struct {
	// Checkpoint is the newest checkpoint whose signature verified.
	Checkpoint Checkpoint `json:"checkpoint"`
	// FromSeq and ToSeq are the range of sequence numbers checked.
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	// Events is the number of events read.
	Events uint64 `json:"events"`
	// Checkpoints is the number of signed checkpoints checked.
	Checkpoints int `json:"checkpoints"`
	// Uncovered counts events present but not yet covered by a signed
	// checkpoint (stored after the last one): not checked, not a problem.
	Uncovered uint64 `json:"uncovered,omitempty"`
	// Purged counts events absent because retention removed them and
	// recorded the removal (VerifyDataDir): their recorded leaves are used,
	// not a problem.
	Purged uint64 `json:"purged,omitempty"`
	// Omitted counts the lines of an export that give only an event's
	// recorded leaf, not its bytes (an archive of a purge holds the purged
	// events and only the leaves of the others in its range).
	Omitted uint64 `json:"omitted,omitempty"`
	// Problems are what was found wrong, the first bad event first.
	Problems []Problem `json:"problems,omitempty"`
	// Dropped counts problems beyond the ones listed.
	Dropped int `json:"dropped,omitempty"`
	// Notes are remarks that do not make the verification fail.
	Notes []string `json:"notes,omitempty"`
	// SignedBy names the key (name+hash) that signed Checkpoint: the key
	// given, or, after key rotations, the key of the chain for its size.
	SignedBy string `json:"signed_by,omitempty"`
}

// noteKeys records which keys the checkpoints were checked against.
func (r *Report) noteKeys(k *Keys) {
	if r.Checkpoint.Note != "" {
		r.SignedBy = k.forSize(r.Checkpoint.Size)
	}
	if k.Rotated() {
		r.Notes = append(r.Notes, fmt.Sprintf("the log's signing key was rotated %d time(s): checkpoints were checked against the chain from the key given: %s", len(k.keys)-1, k))
	}
}

// OK reports whether nothing was found wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.Dropped == 0 }

// FirstBad returns the problem of the event with the lowest sequence number,
// or, when no event is named, the first problem.
func (r *Report) FirstBad() (Problem, bool) {
	for _, p := range r.Problems {
		if p.Seq != 0 {
			return p, true
		}
	}
	if len(r.Problems) > 0 {
		return r.Problems[0], true
	}
	return Problem{}, false
}

func (r *Report) add(p Problem) {
	if len(r.Problems) >= maxProblems {
		r.Dropped++
		return
	}
	r.Problems = append(r.Problems, p)
}

// sort orders the problems by sequence number, problems of events first.
func (r *Report) sort() {
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		ka, kb := a.Seq, b.Seq
		if ka == 0 {
			ka = ^uint64(0)
		}
		if kb == 0 {
			kb = ^uint64(0)
		}
		return cmp.Compare(ka, kb)
	})
}

// VerifyOptions tune a verification.
type VerifyOptions struct {
	// Progress, when set, is called now and then with the number of events
	// checked and the number expected.
	Progress func(done, total uint64)
}

func (o VerifyOptions) progress(done, total uint64) {
	if o.Progress != nil && (done%4096 == 0 || done == total) {
		o.Progress(done, total)
	}
}

// checker recomputes a tree from events and compares it with the recorded
// leaves (ledger.db's or an export's) and with signed checkpoints. It keeps
// two frontiers: comp, from the events' bytes, and rec, from the recorded
// leaves. When rec matches a signed root, the recorded leaves are authentic
// and each event whose hash differs from its recorded leaf is the one that
// was altered.
type checker struct {
	rep  *Report
	comp *frontier
	rec  *frontier

	// segment lists the events whose hash differs from their recorded leaf
	// since the last comparison with a signed root.
	segment []uint64
	// segDropped counts the segment's mismatches beyond maxProblems.
	segDropped int
	// pending maps the hash of such an event to its sequence number, so
	// that a later recorded leaf equal to it shows the event was moved.
	pending map[tlog.Hash]uint64
	// displaced maps the recorded leaf of such an event to its sequence
	// number, so that the event, found later elsewhere, is seen as moved.
	displaced map[tlog.Hash]uint64
}

func newChecker(rep *Report, comp, rec *frontier) *checker {
	return &checker{rep: rep, comp: comp, rec: rec, pending: map[tlog.Hash]uint64{}, displaced: map[tlog.Hash]uint64{}}
}

// event checks the event seq (leaf seq-1) against its recorded leaf and
// appends both to their trees. It returns the stored hashes of each tree
// for the leaf (see tlog.StoredHashes).
func (c *checker) event(seq uint64, canonical []byte, recorded tlog.Hash) (comp, rec []tlog.Hash, err error) {
	h := tlog.RecordHash(canonical)
	if s, ok := c.pending[recorded]; ok {
		c.reordered(s, seq)
	}
	if h != recorded {
		if len(c.rep.Problems) >= maxProblems {
			c.segDropped++
		}
		if at, ok := c.displaced[h]; ok {
			// The event recorded at an earlier bad position moved here.
			c.rep.add(Problem{Seq: seq, Reason: Reordered, Detail: fmt.Sprintf("it is the event recorded at sequence %d", at)})
		} else {
			c.rep.add(Problem{Seq: seq, Reason: Changed, Detail: fmt.Sprintf("its hash %s differs from the leaf recorded in the tree, %s", h, recorded)})
		}
		if len(c.pending) < maxProblems {
			c.pending[h] = seq
			c.displaced[recorded] = seq
		}
		if len(c.segment) < maxProblems {
			c.segment = append(c.segment, seq)
		}
	}
	if comp, err = c.comp.appendLeaf(h); err != nil {
		return nil, nil, err
	}
	if rec, err = c.rec.appendLeaf(recorded); err != nil {
		return nil, nil, err
	}
	return comp, rec, nil
}

// reordered marks event seq, reported changed, as the event recorded at at.
func (c *checker) reordered(seq, at uint64) {
	for i := range c.rep.Problems {
		p := &c.rep.Problems[i]
		if p.Seq == seq && p.Reason == Changed {
			p.Reason = Reordered
			p.Detail = fmt.Sprintf("it is the event recorded at sequence %d", at)
		}
	}
}

// missing records that event seq is absent; its recorded leaf keeps both
// trees going so that later events are still checked.
func (c *checker) missing(seq uint64, recorded tlog.Hash, detail string) error {
	c.rep.add(Problem{Seq: seq, Reason: Missing, Detail: detail})
	if _, err := c.comp.appendLeaf(recorded); err != nil {
		return err
	}
	_, err := c.rec.appendLeaf(recorded)
	return err
}

// againstRoot compares the trees, now of cp.Size leaves, with cp's signed
// root. lo..hi are the events checked since the last matching checkpoint.
// It reports whether the events match.
func (c *checker) againstRoot(cp Checkpoint, lo, hi uint64) bool {
	defer func() { c.segment, c.segDropped = nil, 0 }()
	compOK := c.comp.root() == cp.Hash
	recOK := c.rec.root() == cp.Hash
	if compOK {
		if len(c.segment) > 0 || !recOK {
			c.rep.Notes = append(c.rep.Notes, fmt.Sprintf("the recorded tree hashes differ from the events' but the events match the checkpoint of %d events: only the recorded hashes were altered", cp.Size))
			c.dropSegment()
		}
		return true
	}
	if recOK {
		return false // the recorded leaves are authentic: segment names the altered events
	}
	if len(c.segment) == 0 {
		if slices.ContainsFunc(c.rep.Problems, func(p Problem) bool { return p.Reason == Rewritten }) {
			return false // a consequence of the rewrite already reported
		}
		c.rep.add(Problem{Seq: lo, Reason: Rewritten, Detail: fmt.Sprintf(
			"the events %d..%d and the stored tree agree with each other but not with the checkpoint of %d events signed at %s: events and tree were rebuilt",
			lo, hi, cp.Size, cp.Time.Format("2006-01-02T15:04:05Z07:00"))})
		return false
	}
	for i := range c.rep.Problems {
		if slices.Contains(c.segment, c.rep.Problems[i].Seq) && c.rep.Problems[i].Reason == Changed {
			c.rep.Problems[i].Detail += " (the recorded tree does not match the signed checkpoint either: other events may be altered too)"
		}
	}
	return false
}

// dropSegment withdraws the problems of the current segment: the events
// matched a signed root, so the recorded leaves were at fault.
func (c *checker) dropSegment() {
	kept := c.rep.Problems[:0]
	for _, p := range c.rep.Problems {
		if (p.Reason == Changed || p.Reason == Reordered) && slices.Contains(c.segment, p.Seq) {
			continue
		}
		kept = append(kept, p)
	}
	c.rep.Problems = kept
	c.rep.Dropped -= c.segDropped
	for _, m := range []map[tlog.Hash]uint64{c.pending, c.displaced} {
		for h, s := range m {
			if slices.Contains(c.segment, s) {
				delete(m, h)
			}
		}
	}
}
