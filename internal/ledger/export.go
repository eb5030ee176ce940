package ledger

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/vigilsec/vigil/internal/store"
)

// ExportFormat is the format line of an export's header.
const ExportFormat = "vigil-ledger-export/1"

// Limits on what VerifyExport reads.
const (
	// MaxExportHeader bounds the header line.
	MaxExportHeader = 1 << 20
	// MaxExportLine bounds an event line (an event's canonical bytes are
	// at most a few MiB; the server's default limit is 1 MiB).
	MaxExportLine = 32 << 20
	// maxRangeHashes bounds the left and right hash lists of a header.
	maxRangeHashes = 64
)

// ExportHeader is the first line of an export: the signed checkpoint the
// events are proven against, the range of sequence numbers the file holds,
// and the hashes of the complete subtrees to the left (events 1..FromSeq-1)
// and to the right (events ToSeq+1..checkpoint size) of the range, left to
// right, which with the events' own hashes give the checkpoint's root.
type ExportHeader struct {
	Format     string      `json:"format"`
	Origin     string      `json:"origin"`
	KeyName    string      `json:"key_name"`
	Checkpoint string      `json:"checkpoint"`
	TreeSize   int64       `json:"tree_size"`
	FromSeq    uint64      `json:"from_seq"`
	ToSeq      uint64      `json:"to_seq"`
	Left       []tlog.Hash `json:"left"`
	Right      []tlog.Hash `json:"right"`
	Created    time.Time   `json:"created"`
	// Rotations are the log's key rotation statements, oldest first, when
	// its key was rotated: with them a verifier holding any key of the
	// chain can check a checkpoint signed by another.
	Rotations []string `json:"rotations,omitempty"`
}

// ExportLine is one event of an export: its sequence number, the leaf hash
// the tree recorded for it, and its canonical bytes, inline as JSON (Event)
// or, if they are not one line of JSON, in base64 (Canonical).
//
// An omitted line ("omitted": true, no event) gives only the leaf: the
// export does not hold that event (an archive of a purge holds the purged
// events, and only the leaves of the other events of its range). Its leaf
// counts towards the root but the event is not checked.
type ExportLine struct {
	Seq       uint64          `json:"seq"`
	Leaf      tlog.Hash       `json:"leaf"`
	Event     json.RawMessage `json:"event,omitempty"`
	Canonical []byte          `json:"canonical_b64,omitempty"`
	Omitted   bool            `json:"omitted,omitempty"`
}

// Bytes returns the event's canonical bytes.
func (l ExportLine) Bytes() []byte {
	if l.Event != nil {
		return l.Event
	}
	return l.Canonical
}

// ParseExportHeader parses and checks the form of an export's header line.
// It does not check the checkpoint's signature.
func ParseExportHeader(line []byte) (ExportHeader, error) {
	var h ExportHeader
	if len(line) > MaxExportHeader {
		return h, fmt.Errorf("%w export header: longer than %d bytes", ErrMalformed, MaxExportHeader)
	}
	if err := decodeStrict(line, &h); err != nil {
		return h, fmt.Errorf("%w export header: %v", ErrMalformed, err)
	}
	switch {
	case h.Format != ExportFormat:
		return h, fmt.Errorf("%w export header: format %q, want %q", ErrMalformed, trimForMessage(h.Format), ExportFormat)
	case len(h.Rotations) > MaxRotations:
		return h, fmt.Errorf("%w export header: more than %d key rotations", ErrMalformed, MaxRotations)
	case len(h.Left) > maxRangeHashes || len(h.Right) > maxRangeHashes:
		return h, fmt.Errorf("%w export header: more than %d range hashes", ErrMalformed, maxRangeHashes)
	case h.TreeSize < 1 || h.TreeSize > MaxTreeSize:
		return h, fmt.Errorf("%w export header: tree size %d out of range", ErrMalformed, h.TreeSize)
	case h.FromSeq < 1 || h.FromSeq > h.ToSeq || h.ToSeq > uint64(h.TreeSize):
		return h, fmt.Errorf("%w export header: range %d..%d is not within 1..%d", ErrMalformed, h.FromSeq, h.ToSeq, h.TreeSize)
	case len(rangeNodes(0, int64(h.FromSeq)-1)) != len(h.Left):
		return h, fmt.Errorf("%w export header: %d left hashes, want %d for events before %d", ErrMalformed, len(h.Left), len(rangeNodes(0, int64(h.FromSeq)-1)), h.FromSeq)
	case len(rangeNodes(int64(h.ToSeq), h.TreeSize)) != len(h.Right):
		return h, fmt.Errorf("%w export header: %d right hashes, want %d for events after %d", ErrMalformed, len(h.Right), len(rangeNodes(int64(h.ToSeq), h.TreeSize)), h.ToSeq)
	}
	return h, nil
}

// ParseExportLine parses an event line of an export.
func ParseExportLine(line []byte) (ExportLine, error) {
	var raw struct {
		Seq       *uint64         `json:"seq"`
		Leaf      *tlog.Hash      `json:"leaf"`
		Event     json.RawMessage `json:"event"`
		Canonical *string         `json:"canonical_b64"`
		Omitted   *bool           `json:"omitted"`
	}
	if len(line) > MaxExportLine {
		return ExportLine{}, fmt.Errorf("%w line: longer than %d bytes", ErrMalformed, MaxExportLine)
	}
	if err := decodeStrict(line, &raw); err != nil {
		return ExportLine{}, fmt.Errorf("%w line: %v", ErrMalformed, err)
	}
	switch {
	case raw.Seq == nil || *raw.Seq < 1 || *raw.Seq > uint64(MaxTreeSize):
		return ExportLine{}, fmt.Errorf("%w line: no valid seq", ErrMalformed)
	case raw.Leaf == nil:
		return ExportLine{}, fmt.Errorf("%w line: no leaf hash", ErrMalformed)
	case raw.Omitted != nil:
		if !*raw.Omitted || raw.Event != nil || raw.Canonical != nil {
			return ExportLine{}, fmt.Errorf("%w line: omitted must be true and come without event and canonical_b64", ErrMalformed)
		}
		return ExportLine{Seq: *raw.Seq, Leaf: *raw.Leaf, Omitted: true}, nil
	case (raw.Event == nil) == (raw.Canonical == nil):
		return ExportLine{}, fmt.Errorf("%w line: want exactly one of event and canonical_b64", ErrMalformed)
	}
	l := ExportLine{Seq: *raw.Seq, Leaf: *raw.Leaf, Event: raw.Event}
	if raw.Canonical != nil {
		b, err := base64.StdEncoding.Strict().DecodeString(*raw.Canonical)
		if err != nil || len(b) == 0 {
			return ExportLine{}, fmt.Errorf("%w line: canonical_b64 is not base64", ErrMalformed)
		}
		l.Canonical = b
	}
	return l, nil
}

// decodeStrict decodes one JSON object, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}
	return nil
}

// appendExportLine appends the line of an event.
func appendExportLine(buf []byte, seq uint64, leaf tlog.Hash, canonical []byte) []byte {
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, `,"leaf":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, leaf[:])
	if inlineJSON(canonical) {
		buf = append(buf, `","event":`...)
		buf = append(buf, canonical...)
	} else {
		buf = append(buf, `","canonical_b64":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, canonical)
		buf = append(buf, '"')
	}
	return append(buf, "}\n"...)
}

// appendOmittedLine appends the line of an event the export leaves out.
func appendOmittedLine(buf []byte, seq uint64, leaf tlog.Hash) []byte {
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, `,"leaf":"`...)
	buf = base64.StdEncoding.AppendEncode(buf, leaf[:])
	return append(buf, `","omitted":true}`+"\n"...)
}

// inlineJSON reports whether canonical bytes can be written as a JSON value
// and read back byte for byte: valid JSON on one line, without surrounding
// whitespace.
func inlineJSON(b []byte) bool {
	if len(b) == 0 || isJSONSpace(b[0]) || isJSONSpace(b[len(b)-1]) || bytes.ContainsAny(b, "\r\n") {
		return false
	}
	return json.Valid(b)
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// ExportRange selects the events of an export: FromSeq..ToSeq, or the events
// stored between From and To (by @timestamp: the export then holds every
// event from the first to the last matching one, in sequence order). Size
// picks the checkpoint to prove against (0: the latest).
//
// Only, when set, picks the events written whole: every other event of the
// range, and every event of the range the store lacks, is written as an
// omitted line (its leaf only), so the file still verifies. Retention uses
// it to archive exactly the events it purges.
type ExportRange struct {
	FromSeq, ToSeq uint64
	From, To       time.Time
	Size           int64
	Only           func(seq uint64) bool
}

// exportPlan is an export ready to be written.
type exportPlan struct {
	header ExportHeader
	cp     Checkpoint
	only   func(seq uint64) bool
}

// planExport resolves the range and the checkpoint and computes the range
// hashes. Its errors wrap ErrOutOfRange when the range is not available.
func (l *Ledger) planExport(ctx context.Context, req ExportRange) (*exportPlan, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	cp := l.Checkpoint()
	if req.Size != 0 {
		c, ok, err := l.checkpointAt(ctx, req.Size)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("%w: no checkpoint was signed for a tree of %d events", ErrOutOfRange, req.Size)
		}
		cp = c
	}
	if cp.Size == 0 {
		return nil, fmt.Errorf("%w: no event is covered by a signed checkpoint yet", ErrOutOfRange)
	}
	from, to := req.FromSeq, req.ToSeq
	if !req.From.IsZero() || !req.To.IsZero() {
		if from != 0 || to != 0 {
			return nil, errors.New("give a range of sequence numbers or of times, not both")
		}
		q := store.Query{From: req.From, To: req.To, Limit: 1}
		first, err := l.st.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("find the first event of the time range: %w", err)
		}
		q.Desc = true
		q.BeforeSeq = uint64(cp.Size) + 1
		last, err := l.st.Search(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("find the last event of the time range: %w", err)
		}
		if len(first) == 0 || len(last) == 0 || first[0].Seq > uint64(cp.Size) {
			return nil, fmt.Errorf("%w: no event of that time range is covered by the checkpoint of %d events", ErrOutOfRange, cp.Size)
		}
		from, to = first[0].Seq, last[0].Seq
	}
	if from == 0 {
		from = 1
	}
	if to == 0 {
		to = uint64(cp.Size)
	}
	if from > to || to > uint64(cp.Size) {
		return nil, fmt.Errorf("%w: events %d..%d are not within the checkpoint's 1..%d", ErrOutOfRange, from, to, cp.Size)
	}
	r := newHashReader(ctx, l.db, cp.Size)
	left, err := readNodes(r, rangeNodes(0, int64(from)-1))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	right, err := readNodes(r, rangeNodes(int64(to), cp.Size))
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	return &exportPlan{cp: cp, only: req.Only, header: ExportHeader{
		Format:     ExportFormat,
		Origin:     cp.Origin,
		KeyName:    l.Keys().forSize(cp.Size),
		Checkpoint: cp.Note,
		TreeSize:   cp.Size,
		FromSeq:    from,
		ToSeq:      to,
		Left:       left,
		Right:      right,
		Created:    l.opts.Now().UTC().Round(0),
		Rotations:  l.Rotations(),
	}}, nil
}

func readNodes(r tlog.HashReader, nodes []node) ([]tlog.Hash, error) {
	idx := make([]int64, len(nodes))
	for i, n := range nodes {
		idx[i] = n.index
	}
	h, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	if h == nil {
		h = []tlog.Hash{}
	}
	return h, nil
}

// WriteExport writes an export of the events in req to w: a header line,
// then one line per event in sequence order. Events the store lacks are
// left out (a verifier reports them missing).
func (l *Ledger) WriteExport(ctx context.Context, w io.Writer, req ExportRange) error {
	plan, err := l.planExport(ctx, req)
	if err != nil {
		return err
	}
	return l.writeExport(ctx, w, plan)
}

func (l *Ledger) writeExport(ctx context.Context, w io.Writer, plan *exportPlan) error {
	hdr, err := json.Marshal(plan.header)
	if err != nil {
		return fmt.Errorf("export header: %w", err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.Write(hdr)
	bw.WriteByte('\n')
	r := newHashReader(ctx, l.db, plan.cp.Size)
	var buf []byte
	after, to := plan.header.FromSeq-1, plan.header.ToSeq
	// omit writes omitted lines for the events after `after` up to seq.
	omit := func(seq uint64) error {
		for after < seq {
			after++
			leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(after)-1)})
			if err != nil {
				return fmt.Errorf("export: leaf of event %d: %w", after, err)
			}
			if _, err := bw.Write(appendOmittedLine(buf[:0], after, leaf[0])); err != nil {
				return fmt.Errorf("export: write: %w", err)
			}
		}
		return nil
	}
	for after < to {
		recs, err := l.st.Read(ctx, after, min(l.opts.BatchSize, int(to-after)))
		if err != nil {
			return fmt.Errorf("export: read events after %d: %w", after, err)
		}
		if len(recs) == 0 {
			if plan.only != nil {
				if err := omit(to); err != nil {
					return err
				}
			}
			break
		}
		for _, rec := range recs {
			if rec.Seq > to {
				if plan.only != nil {
					if err := omit(to); err != nil {
						return err
					}
				}
				after = to
				break
			}
			if plan.only != nil {
				if err := omit(rec.Seq - 1); err != nil {
					return err
				}
				if !plan.only(rec.Seq) {
					if err := omit(rec.Seq); err != nil {
						return err
					}
					continue
				}
			}
			leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(rec.Seq)-1)})
			if err != nil {
				return fmt.Errorf("export: leaf of event %d: %w", rec.Seq, err)
			}
			buf = appendExportLine(buf[:0], rec.Seq, leaf[0], rec.Canonical)
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("export: write: %w", err)
			}
			after = rec.Seq
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// lineReader reads newline-terminated lines with a length limit.
type lineReader struct {
	r    *bufio.Reader
	n    int // number of the line last read (1-based)
	buf  []byte
	long bool // the last line was over the limit
}

// next returns the next line without its newline ("\r\n" is accepted), or
// io.EOF. A line over max bytes is skipped and reported with long set.
func (lr *lineReader) next(max int) ([]byte, error) {
	lr.buf, lr.long = lr.buf[:0], false
	for {
		frag, err := lr.r.ReadSlice('\n')
		if len(lr.buf)+len(frag) > max+2 {
			lr.long = true
		} else {
			lr.buf = append(lr.buf, frag...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if errors.Is(err, io.EOF) && len(lr.buf) == 0 && !lr.long {
			return nil, io.EOF
		}
		lr.n++
		line := bytes.TrimSuffix(lr.buf, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if lr.long {
			return nil, fmt.Errorf("%w line %d: longer than %d bytes", ErrMalformed, lr.n, max)
		}
		return line, nil
	}
}

// openExport reads an export's header and returns the reader of its
// lines and the function that closes the decompressor.
func openExport(r io.Reader) (*lineReader, ExportHeader, func() error, error) {
	lr, closeFn, err := newExportReader(r)
	if err != nil {
		return nil, ExportHeader{}, nil, err
	}
	fail := func(err error) (*lineReader, ExportHeader, func() error, error) {
		closeFn()
		return nil, ExportHeader{}, nil, err
	}
	first, err := lr.next(MaxExportHeader)
	if errors.Is(err, io.EOF) {
		return fail(errors.New("not a Vigil ledger export: the file is empty"))
	}
	if err != nil {
		return fail(fmt.Errorf("read export header: %w", err))
	}
	hdr, err := ParseExportHeader(first)
	if err != nil {
		return fail(fmt.Errorf("not a Vigil ledger export: %w", err))
	}
	return lr, hdr, closeFn, nil
}

// ReadExport reads an export, plain or gzip-compressed, without checking
// it (VerifyExport does): it returns the header after calling fn with each
// line, in file order. The first error, fn's or the file's, stops it.
func ReadExport(r io.Reader, fn func(ExportLine) error) (ExportHeader, error) {
	lr, hdr, closeFn, err := openExport(r)
	if err != nil {
		return hdr, err
	}
	defer closeFn()
	for {
		line, err := lr.next(MaxExportLine)
		if errors.Is(err, io.EOF) {
			return hdr, nil
		}
		if err != nil {
			return hdr, fmt.Errorf("read export line %d: %w", lr.n+1, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		el, err := ParseExportLine(line)
		if err != nil {
			return hdr, fmt.Errorf("line %d: %w", lr.n, err)
		}
		if err := fn(el); err != nil {
			return hdr, err
		}
	}
}

// newExportReader returns a reader of an export's lines, decompressing a
// gzip file.
func newExportReader(r io.Reader) (*lineReader, func() error, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read gzip export: %w", err)
		}
		return &lineReader{r: bufio.NewReaderSize(zr, 64<<10)}, zr.Close, nil
	}
	return &lineReader{r: br}, func() error { return nil }, nil
}

// VerifyExport checks an export, plain or gzip-compressed, with nothing but
// the public key: the header's checkpoint must be signed by v, or by a key
// the header's rotation statements link to v (NewKeys), every event
// from FromSeq to ToSeq must be present in order, and the events' hashes
// with the header's range hashes must give the checkpoint's root. Tampering
// is reported in the Report; the error is for an input that cannot be read
// or is not an export at all.
func VerifyExport(ctx context.Context, r io.Reader, v note.Verifier, opts VerifyOptions) (*Report, error) {
	lr, hdr, closeFn, err := openExport(r)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	rep := &Report{FromSeq: hdr.FromSeq, ToSeq: hdr.ToSeq}
	keys, err := NewKeys(v, hdr.Rotations)
	if err != nil {
		rep.add(Problem{Reason: SignatureInvalid, Detail: "the export's key rotations: " + err.Error()})
		return rep, nil
	}
	cp, err := keys.Open([]byte(hdr.Checkpoint))
	if err != nil {
		var se *SignatureError
		if errors.As(err, &se) {
			rep.add(Problem{Reason: SignatureInvalid, Detail: "the export's " + se.Error()})
		} else {
			rep.add(Problem{Reason: Malformed, Detail: "the export's checkpoint: " + err.Error()})
		}
		return rep, nil
	}
	rep.Checkpoint, rep.Checkpoints = cp, 1
	rep.noteKeys(keys)
	if cp.Size != hdr.TreeSize {
		rep.add(Problem{Reason: Malformed, Detail: fmt.Sprintf("the header says the tree has %d events, its signed checkpoint %d", hdr.TreeSize, cp.Size)})
		return rep, nil
	}
	comp, err := newFrontier(int64(hdr.FromSeq)-1, hdr.Left)
	if err != nil {
		return nil, err
	}
	ch := newChecker(rep, comp, comp.clone())
	total := hdr.ToSeq - hdr.FromSeq + 1
	expect := hdr.FromSeq
	stop := func(p Problem) (*Report, error) {
		rep.add(p)
		rep.sort()
		return rep, nil
	}
	for {
		if lr.n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, err := lr.next(MaxExportLine)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if errors.Is(err, ErrMalformed) {
				return stop(Problem{Seq: expect, Reason: Malformed, Detail: err.Error()})
			}
			return nil, fmt.Errorf("read export line %d: %w", lr.n+1, err)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		el, err := ParseExportLine(line)
		if err != nil {
			return stop(Problem{Seq: expect, Reason: Malformed, Detail: fmt.Sprintf("line %d: %v", lr.n, err)})
		}
		switch {
		case expect > hdr.ToSeq:
			return stop(Problem{Seq: el.Seq, Reason: Malformed, Detail: fmt.Sprintf("line %d: the header says the export ends at event %d", lr.n, hdr.ToSeq)})
		case el.Seq < expect:
			return stop(Problem{Seq: el.Seq, Reason: Reordered, Detail: fmt.Sprintf("line %d holds event %d after event %d", lr.n, el.Seq, expect-1)})
		case el.Seq > expect:
			return stop(Problem{Seq: expect, Reason: Missing, Detail: fmt.Sprintf("no line for it: line %d holds event %d", lr.n, el.Seq)})
		}
		if el.Omitted {
			if _, err := ch.comp.appendLeaf(el.Leaf); err != nil {
				return nil, err
			}
			if _, err := ch.rec.appendLeaf(el.Leaf); err != nil {
				return nil, err
			}
			rep.Omitted++
			expect++
			continue
		}
		if _, _, err := ch.event(el.Seq, el.Bytes(), el.Leaf); err != nil {
			return nil, err
		}
		rep.Events++
		opts.progress(rep.Events, total)
		expect++
	}
	if expect <= hdr.ToSeq {
		return stop(Problem{Seq: expect, Reason: Missing, Detail: fmt.Sprintf("the export ends after event %d but its header says %d: it was cut short or events were removed", expect-1, hdr.ToSeq)})
	}
	for i, n := range rangeNodes(int64(hdr.ToSeq), hdr.TreeSize) {
		if err := ch.comp.appendNode(n.level, hdr.Right[i]); err != nil {
			return nil, err
		}
		if err := ch.rec.appendNode(n.level, hdr.Right[i]); err != nil {
			return nil, err
		}
	}
	ch.againstRoot(cp, hdr.FromSeq, hdr.ToSeq)
	rep.sort()
	return rep, nil
}
