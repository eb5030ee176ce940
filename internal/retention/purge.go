package retention

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vigilsec/vigil/internal/atomicfile"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/store"
)

// ArchiveDir is the folder of the data directory that holds archives.
const ArchiveDir = "archive"

// maxAuditRanges bounds the ranges one audit event lists; the digest of the
// whole list of sequence numbers is always given.
const maxAuditRanges = 1000

// Purger runs purges: plan, archive, audit event, removal. Only one runs at
// a time.
type Purger struct {
	Store   store.Store // must implement store.Purger
	Ledger  *ledger.Ledger
	DataDir string
	Config  Config // defaults set, validated
	Holds   *Holds
	Now     func() time.Time // default time.Now
	Log     *slog.Logger     // default slog.Default()
	Metrics *Metrics         // optional

	// beforeRemove, when set (tests), is called after a batch is archived
	// and audited, before it is removed; an error stops the run there, as
	// a crash would. beforeAudit likewise after the archive, before the
	// audit event.
	beforeRemove func(run string, b Batch) error
	beforeAudit  func(run string, b Batch) error

	mu sync.Mutex
}

// Request is one purge.
type Request struct {
	Selection
	// DryRun computes what would be purged and changes nothing.
	DryRun bool
}

// Result tells what a purge did (or, dry, would do).
type Result struct {
	Run     string         `json:"run"`
	DryRun  bool           `json:"dry_run"`
	Events  int64          `json:"events"`
	ByType  map[Type]int64 `json:"by_type"`
	Batches int            `json:"batches"`
	// Absent counts events selected that were already gone (a re-run
	// after a crash).
	Absent   int64     `json:"absent,omitempty"`
	Archives []Archive `json:"archives,omitempty"`
	// Audit holds the sequence numbers of the vigil_purge events appended.
	Audit []uint64 `json:"audit_seqs,omitempty"`
	// Checkpoint is the size of the checkpoint the purge was sealed by.
	Checkpoint int64     `json:"checkpoint_size"`
	Oldest     time.Time `json:"oldest,omitzero"`
	Newest     time.Time `json:"newest,omitzero"`
}

// Archive is one archive file written by a purge.
type Archive struct {
	File    string `json:"file"` // name in DATA/archive
	SHA256  string `json:"sha256"`
	Bytes   int64  `json:"bytes"`
	Events  int    `json:"events"`
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
}

// ErrBusy is returned when a purge is already running.
var ErrBusy = errors.New("a purge is already running")

func (p *Purger) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Purger) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

// Run purges what req selects at the Purger's clock's now. The ledger is
// synced first; only events covered by its latest checkpoint are purged.
// For each batch: the archive file is written and synced, the vigil_purge
// audit event appended, then the events removed. A run stopped at any
// point (crash, ctx) leaves a consistent state; running again finishes it.
func (p *Purger) Run(ctx context.Context, req Request) (*Result, error) {
	if !p.mu.TryLock() {
		return nil, ErrBusy
	}
	defer p.mu.Unlock()
	start := p.now()
	res, err := p.run(ctx, req)
	if p.Metrics != nil && !req.DryRun {
		p.Metrics.observe(start, res, err)
	}
	return res, err
}

func (p *Purger) run(ctx context.Context, req Request) (*Result, error) {
	purger, ok := p.Store.(store.Purger)
	if !ok {
		return nil, errors.New("purge: the store cannot purge")
	}
	if p.Ledger == nil {
		return nil, errors.New("purge: no ledger")
	}
	now := p.now().UTC()
	res := &Result{Run: runName(now), DryRun: req.DryRun, ByType: map[Type]int64{}}
	if !req.DryRun {
		p.removePartialArchives()
		if err := p.removeOrphanArchives(ctx); err != nil {
			return res, fmt.Errorf("purge: %w", err)
		}
	}
	cp, err := p.Ledger.Sync(ctx)
	if err != nil {
		return res, fmt.Errorf("purge: seal the log: %w", err)
	}
	res.Checkpoint = cp.Size
	plan := &Planner{Store: p.Store, Config: p.Config, Holds: p.Holds}
	err = plan.Plan(ctx, now, req.Selection, uint64(cp.Size), func(b Batch) error {
		res.Batches++
		if !req.DryRun {
			if err := p.purgeBatch(ctx, purger, res, req, b, now, cp.Size); err != nil {
				return err
			}
		}
		res.Events += int64(len(b.Seqs))
		for t, n := range b.ByType {
			res.ByType[t] += n
		}
		if res.Oldest.IsZero() || b.Oldest.Before(res.Oldest) {
			res.Oldest = b.Oldest
		}
		if b.Newest.After(res.Newest) {
			res.Newest = b.Newest
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("purge %s: %w", res.Run, err)
	}
	p.log().Info("retention: purge done", "run", res.Run, "dry_run", req.DryRun, "events", res.Events, "batches", res.Batches, "archives", len(res.Archives))
	return res, nil
}

func (p *Purger) purgeBatch(ctx context.Context, purger store.Purger, res *Result, req Request, b Batch, now time.Time, size int64) error {
	n := res.Batches
	var arch *Archive
	if p.Config.Archiving() {
		a, err := p.writeArchive(ctx, fmt.Sprintf("purge-%s-%04d.jsonl.gz", res.Run, n), b.Seqs, size)
		if err != nil {
			return err
		}
		arch = &a
		res.Archives = append(res.Archives, a)
	}
	if p.beforeAudit != nil {
		if err := p.beforeAudit(res.Run, b); err != nil {
			return err
		}
	}
	seq, err := p.appendAudit(ctx, res.Run, n, req, b, arch, size, now)
	if err != nil {
		return err
	}
	res.Audit = append(res.Audit, seq)
	if p.beforeRemove != nil {
		if err := p.beforeRemove(res.Run, b); err != nil {
			return err
		}
	}
	pr, err := purger.Purge(ctx, res.Run, b.Seqs)
	if err != nil {
		return fmt.Errorf("batch %d: %w", n, err)
	}
	res.Absent += pr.Absent
	return nil
}

// removePartialArchives deletes the archives a purge was writing when the
// process stopped (their .tmp files): they were never complete, never
// named in an audit event, and the events in them were not removed.
func (p *Purger) removePartialArchives() {
	dir := filepath.Join(p.DataDir, ArchiveDir)
	tmps, _ := filepath.Glob(filepath.Join(dir, "purge-*.jsonl.gz.tmp"))
	for _, f := range tmps {
		if err := os.Remove(f); err != nil {
			p.log().Warn("retention: remove a partial archive", "file", f, "err", err)
			continue
		}
		p.log().Info("retention: removed a partial archive left by an interrupted purge", "file", filepath.Base(f))
	}
}

// removeOrphanArchives deletes the complete archives that no vigil_purge
// event names and whose events are all still stored: a purge wrote them
// just before the process stopped, before it appended their audit event,
// and so before it removed anything (the removal comes after the audit
// event). Nothing is lost: a later batch archives the events again. An
// archive with an event that is gone or differs from the stored one (by
// its leaf hash), or that cannot be read, is kept whatever it is.
func (p *Purger) removeOrphanArchives(ctx context.Context) error {
	dir := filepath.Join(p.DataDir, ArchiveDir)
	files, _ := filepath.Glob(filepath.Join(dir, "purge-*.jsonl.gz"))
	if len(files) == 0 {
		return nil
	}
	named, err := p.namedArchives(ctx)
	if err != nil {
		return err
	}
	for _, f := range files {
		name := filepath.Base(f)
		if named[name] {
			continue
		}
		lines, err := archivedEvents(f)
		if err != nil {
			p.log().Warn("retention: an archive no purge event names cannot be read; kept", "file", name, "err", err)
			continue
		}
		stored := len(lines) > 0
		for _, l := range lines {
			recs, err := p.Store.Read(ctx, l.Seq-1, 1)
			if err != nil {
				return fmt.Errorf("check archive %s: %w", name, err)
			}
			if len(recs) == 0 || recs[0].Seq != l.Seq || tlog.RecordHash(recs[0].Canonical) != l.Leaf {
				stored = false
				break
			}
		}
		if !stored {
			p.log().Warn("retention: an archive no purge event names holds events no longer stored; kept", "file", name)
			continue
		}
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("remove orphan archive %s: %w", name, err)
		}
		p.log().Info("retention: removed an archive an interrupted purge wrote before recording it; its events are still stored", "file", name, "events", len(lines))
	}
	return nil
}

// namedArchives returns the archive file names the vigil_purge events name.
func (p *Purger) namedArchives(ctx context.Context) (map[string]bool, error) {
	named := map[string]bool{}
	q := store.Query{Action: ActionPurge, Limit: store.MaxLimit}
	for {
		recs, err := p.Store.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("read purge events: %w", err)
		}
		for _, r := range recs {
			var doc struct {
				Vigil struct {
					Purge struct {
						Archive struct {
							File string `json:"file"`
						} `json:"archive"`
					} `json:"purge"`
				} `json:"vigil"`
			}
			if json.Unmarshal(r.Canonical, &doc) == nil && doc.Vigil.Purge.Archive.File != "" {
				named[doc.Vigil.Purge.Archive.File] = true
			}
		}
		if len(recs) < q.Limit {
			return named, nil
		}
		q.AfterSeq = recs[len(recs)-1].Seq
	}
}

// archivedEvents reads the sequence numbers and leaf hashes of the events
// an archive holds (not its omitted lines).
func archivedEvents(path string) ([]ledger.ExportLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []ledger.ExportLine
	_, err = ledger.ReadExport(f, func(l ledger.ExportLine) error {
		if !l.Omitted {
			out = append(out, ledger.ExportLine{Seq: l.Seq, Leaf: l.Leaf})
		}
		return nil
	})
	return out, err
}

// writeArchive writes the events seqs (ascending) as a gzip ledger export
// proven against the checkpoint of size, with the other events of the range
// as omitted lines, to DATA/archive/name (mode 0600), synced before it
// returns.
func (p *Purger) writeArchive(ctx context.Context, name string, seqs []uint64, size int64) (Archive, error) {
	a := Archive{File: name, Events: len(seqs), FromSeq: seqs[0], ToSeq: seqs[len(seqs)-1]}
	dir := filepath.Join(p.DataDir, ArchiveDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return a, fmt.Errorf("archive: %w", err)
	}
	final := filepath.Join(dir, name)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return a, fmt.Errorf("archive: %w", err)
	}
	defer func() {
		if f != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(f, h)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		return a, err
	}
	only := func(seq uint64) bool {
		_, ok := slices.BinarySearch(seqs, seq)
		return ok
	}
	if err := p.Ledger.WriteExport(ctx, zw, ledger.ExportRange{FromSeq: a.FromSeq, ToSeq: a.ToSeq, Size: size, Only: only}); err != nil {
		return a, fmt.Errorf("archive %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return a, fmt.Errorf("archive %s: %w", name, err)
	}
	if err := bw.Flush(); err != nil {
		return a, fmt.Errorf("archive %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return a, fmt.Errorf("archive %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return a, fmt.Errorf("archive %s: %w", name, err)
	}
	f = nil
	if err := atomicfile.Rename(tmp, final); err != nil {
		return a, fmt.Errorf("archive %s: %w", name, err)
	}
	a.SHA256 = hex.EncodeToString(h.(hash.Hash).Sum(nil))
	a.Bytes = cw.n
	return a, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// appendAudit appends the vigil_purge event of a batch and returns its
// sequence number.
func (p *Purger) appendAudit(ctx context.Context, run string, n int, req Request, b Batch, arch *Archive, size int64, now time.Time) (uint64, error) {
	var ranges [][2]uint64
	truncated := false
	for i := 0; i < len(b.Seqs); {
		k := i + 1
		for k < len(b.Seqs) && b.Seqs[k] == b.Seqs[k-1]+1 {
			k++
		}
		if len(ranges) == maxAuditRanges {
			truncated = true
			break
		}
		ranges = append(ranges, [2]uint64{b.Seqs[i], b.Seqs[k-1]})
		i = k
	}
	digest := sha256.New()
	var buf [8]byte
	for _, s := range b.Seqs {
		for j := range buf {
			buf[j] = byte(s >> (56 - 8*j))
		}
		digest.Write(buf[:])
	}
	purge := map[string]any{
		"run":             run,
		"batch":           n,
		"events":          len(b.Seqs),
		"by_type":         b.ByType,
		"ranges":          ranges,
		"seqs_sha256":     hex.EncodeToString(digest.Sum(nil)),
		"checkpoint_size": size,
		"oldest":          b.Oldest.UTC().Format(time.RFC3339Nano),
		"newest":          b.Newest.UTC().Format(time.RFC3339Nano),
	}
	if truncated {
		purge["ranges_truncated"] = true
	}
	if len(req.Types) > 0 {
		purge["types"] = req.Types
	}
	if !req.Before.IsZero() {
		purge["before"] = req.Before.UTC().Format(time.RFC3339Nano)
	}
	if arch != nil {
		purge["archive"] = map[string]any{"file": arch.File, "sha256": arch.SHA256, "bytes": arch.Bytes}
	}
	doc := map[string]any{
		"@timestamp": now.Format(time.RFC3339Nano),
		"event": map[string]any{
			"kind": "event", "category": []string{"configuration"}, "type": []string{"deletion"},
			"action": ActionPurge, "outcome": "success",
		},
		"service": map[string]any{"name": "vigil"},
		"message": fmt.Sprintf("retention: purge %s batch %d removes %d events (%d..%d)", run, n, len(b.Seqs), b.Seqs[0], b.Seqs[len(b.Seqs)-1]),
		"vigil":   map[string]any{"purge": purge},
	}
	e, err := event.FromDoc(doc, now)
	if err != nil {
		return 0, fmt.Errorf("audit event: %w", err)
	}
	r, err := p.Store.Append(ctx, []event.Event{e})
	if err != nil {
		return 0, fmt.Errorf("append audit event of batch %d: %w", n, err)
	}
	return r.Seqs[0], nil
}

// runName names a run by its time and a random suffix.
func runName(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
