package shipper

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The spool is a queue of events on disk, kept while Vigil cannot take them.
//
// It is a directory of segment files named <id>.seg (16 hex digits, in the
// order they were written), each starting with the 8-byte magic segMagic and
// followed by records:
//
//	length  uint32, little endian: bytes of the event
//	crc     uint32, little endian: CRC-32C of the length bytes, flags and event
//	flags   1 byte: bit 0 set for a critical event
//	event   the event's JSON, no newline
//
// Records are appended and fsynced before the events count as spooled. The
// file "cursor" holds the position (segment, offset) of the first record not
// yet acknowledged by Vigil, with a CRC; it is written in place after each
// acknowledged replay batch, without fsync: a cursor that is lost or stale
// after a crash only makes the spool resend events Vigil already has, which
// it stores once (event.id). A segment wholly before the cursor is deleted;
// when everything is acknowledged, all segments are. On open, each segment is
// checked record by record and cut at the first torn or corrupt record (a
// crash in the middle of an append), so garbage is never replayed.
//
// The file "lock" is held with flock(2) while a Shipper uses the directory.

const (
	segMagic     = "VGLSPL1\n"
	magicLen     = int64(len(segMagic))
	recHdr       = 9
	flagCritical = 1
	cursorName   = "cursor"
	lockName     = "lock"
	cursorLen    = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// pos is a position in the spool: a segment and a byte offset in it.
type pos struct {
	seg uint64
	off int64
}

type segment struct {
	id   uint64
	size int64 // bytes of the file that hold valid data
	f    *os.File
}

type spool struct {
	dir    string
	max    int64 // bound on the bytes of all segment files
	segMax int64
	log    *slog.Logger

	// Read without mu by the Shipper to choose what to do next.
	pending atomic.Int64 // records not yet acknowledged
	unread  atomic.Int64 // records not yet read for replay
	size    atomic.Int64 // bytes of the segment files

	mu     sync.Mutex
	lock   *os.File
	cur    *os.File // the cursor file
	segs   []*segment
	nextID uint64
	cursor pos // first record not acknowledged
	read   pos // next record to read for replay
	wbuf   []byte
	rbuf   []byte
	closed bool
}

var errSpoolClosed = errors.New("spool closed")

// errSpoolInUse is returned by openSpool when another Shipper holds the directory.
var errSpoolInUse = errors.New("is in use by another shipper (lock held)")

func openSpool(dir string, max, segMax int64, log *slog.Logger) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("spool directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("spool directory %s has mode %04o: other users could read events; fix with: chmod 700 %s", dir, fi.Mode().Perm(), dir)
	}
	sp := &spool{dir: dir, max: max, segMax: segMax, log: log}
	sp.lock, err = os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool lock: %w", err)
	}
	if err := lockFile(sp.lock); err != nil {
		sp.lock.Close()
		return nil, fmt.Errorf("spool directory %s %w: %v", dir, errSpoolInUse, err)
	}
	if err := sp.recover(); err != nil {
		sp.closeFiles()
		return nil, err
	}
	return sp, nil
}

// recover reads the cursor, checks every segment and cuts torn tails.
func (sp *spool) recover() error {
	var err error
	sp.cur, err = os.OpenFile(filepath.Join(sp.dir, cursorName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	var cb [cursorLen]byte
	cursorOK := false
	if n, _ := sp.cur.ReadAt(cb[:], 0); n == cursorLen &&
		crc32.Checksum(cb[:16], castagnoli) == binary.LittleEndian.Uint32(cb[16:]) {
		sp.cursor = pos{binary.LittleEndian.Uint64(cb[:8]), int64(binary.LittleEndian.Uint64(cb[8:16]))}
		cursorOK = true
	}

	entries, err := os.ReadDir(sp.dir)
	if err != nil {
		return fmt.Errorf("read spool directory: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || len(name) != 16 {
			continue
		}
		id, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if !cursorOK && len(ids) > 0 {
		if fi, _ := sp.cur.Stat(); fi != nil && fi.Size() > 0 {
			sp.log.Warn("shipper spool: cursor file unreadable, replaying the spool from its start (Vigil stores each event once)")
		}
		sp.cursor = pos{ids[0], magicLen}
	}
	if len(ids) > 0 {
		sp.nextID = ids[len(ids)-1] + 1
	} else {
		sp.nextID = max(sp.cursor.seg, 1)
	}

	var pending int64
	for _, id := range ids {
		path := filepath.Join(sp.dir, segName(id))
		if id < sp.cursor.seg {
			os.Remove(path) // delivered
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0o600)
		if err != nil {
			return fmt.Errorf("open spool segment: %w", err)
		}
		seg := &segment{id: id, f: f}
		from := magicLen
		if id == sp.cursor.seg {
			from = max(sp.cursor.off, magicLen)
		}
		valid, records, err := scanSegment(f, from)
		if err != nil {
			f.Close()
			return fmt.Errorf("check spool segment %s: %w", path, err)
		}
		if valid < 0 {
			f.Close()
			os.Remove(path)
			sp.log.Warn("shipper spool: removed a segment with no valid header", "segment", segName(id))
			continue
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("spool segment: %w", err)
		}
		if fi.Size() > valid {
			sp.log.Warn("shipper spool: cut a torn or corrupt tail (crash during a write)",
				"segment", segName(id), "bytes_cut", fi.Size()-valid)
			if err := f.Truncate(valid); err != nil {
				f.Close()
				return fmt.Errorf("truncate spool segment: %w", err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return fmt.Errorf("sync spool segment: %w", err)
			}
		}
		seg.size = valid
		pending += int64(records)
		sp.segs = append(sp.segs, seg)
		sp.size.Add(valid)
	}
	// Put the cursor on a record of a live segment.
	switch {
	case len(sp.segs) == 0:
		sp.cursor = pos{sp.nextID, magicLen}
	case sp.cursor.seg < sp.segs[0].id:
		sp.cursor = pos{sp.segs[0].id, magicLen}
	case sp.cursor.seg == sp.segs[0].id:
		sp.cursor.off = min(max(sp.cursor.off, magicLen), sp.segs[0].size)
	}
	sp.read = sp.cursor
	sp.pending.Store(pending)
	sp.unread.Store(pending)
	if pending == 0 && len(sp.segs) > 0 {
		sp.resetLocked()
	}
	return sp.writeCursor()
}

// scanSegment checks a segment: its magic, then every record from offset
// from. It returns the end of the valid data (-1 when the header is bad) and
// the number of valid records from from on.
func scanSegment(f *os.File, from int64) (valid int64, records int, err error) {
	var magic [magicLen]byte
	if n, _ := f.ReadAt(magic[:], 0); n < len(magic) || string(magic[:]) != segMagic {
		return -1, 0, nil
	}
	buf := make([]byte, 256<<10)
	off := magicLen
	var hdr [recHdr]byte
	for {
		n, err := f.ReadAt(hdr[:], off)
		if n < recHdr {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, err
			}
			return off, records, nil
		}
		l := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if l > 1<<30 {
			return off, records, nil
		}
		if int64(cap(buf)) < l {
			buf = make([]byte, l)
		}
		body := buf[:l]
		if n, err := f.ReadAt(body, off+recHdr); int64(n) < l {
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, 0, err
			}
			return off, records, nil
		}
		if recordCRC(hdr[0:4], hdr[8], body) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, records, nil
		}
		if off >= from {
			records++
		}
		off += recHdr + l
	}
}

func recordCRC(length []byte, flags byte, body []byte) uint32 {
	c := crc32.Update(0, castagnoli, length)
	c = crc32.Update(c, castagnoli, []byte{flags})
	return crc32.Update(c, castagnoli, body)
}

func appendRecord(dst, line []byte, critical bool) []byte {
	var hdr [recHdr]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(line)))
	if critical {
		hdr[8] = flagCritical
	}
	binary.LittleEndian.PutUint32(hdr[4:8], recordCRC(hdr[0:4], hdr[8], line))
	dst = append(dst, hdr[:]...)
	return append(dst, line...)
}

func segName(id uint64) string { return fmt.Sprintf("%016x.seg", id) }

// writeCursor records the cursor. No fsync: see the type's comment.
func (sp *spool) writeCursor() error {
	var cb [cursorLen]byte
	binary.LittleEndian.PutUint64(cb[:8], sp.cursor.seg)
	binary.LittleEndian.PutUint64(cb[8:16], uint64(sp.cursor.off))
	binary.LittleEndian.PutUint32(cb[16:], crc32.Checksum(cb[:16], castagnoli))
	if _, err := sp.cur.WriteAt(cb[:], 0); err != nil {
		return fmt.Errorf("write spool cursor: %w", err)
	}
	return nil
}

func (sp *spool) syncDir() error {
	d, err := os.Open(sp.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// newSegment creates the next segment, durable with its directory entry.
func (sp *spool) newSegment() (*segment, error) {
	id := sp.nextID
	path := filepath.Join(sp.dir, segName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create spool segment: %w", err)
	}
	if _, err := f.WriteAt([]byte(segMagic), 0); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = sp.syncDir()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("create spool segment: %w", err)
	}
	sp.nextID++
	seg := &segment{id: id, size: magicLen, f: f}
	sp.segs = append(sp.segs, seg)
	sp.size.Add(magicLen)
	return seg, nil
}

// write appends w (whole records, n of them) to seg and fsyncs it.
func (sp *spool) write(seg *segment, w []byte, n int) error {
	if len(w) == 0 {
		return nil
	}
	if _, err := seg.f.WriteAt(w, seg.size); err != nil {
		seg.f.Truncate(seg.size)
		return fmt.Errorf("write spool: %w", err)
	}
	if err := seg.f.Sync(); err != nil {
		seg.f.Truncate(seg.size)
		return fmt.Errorf("fsync spool: %w", err)
	}
	seg.size += int64(len(w))
	sp.size.Add(int64(len(w)))
	sp.pending.Add(int64(n))
	sp.unread.Add(int64(n))
	return nil
}

// appendBatch writes the lines of b, in order, and fsyncs them (one fsync
// per segment touched). A best-effort line is dropped instead when the spool
// would grow past beLimit bytes; a critical one only stops the append when
// it would grow past the spool's bound. It returns how many leading lines of
// b are done with (written or dropped), and how many of those were written
// and dropped.
func (sp *spool) appendBatch(b *batch, beLimit int64) (consumed, written, dropped int, err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return 0, 0, 0, errSpoolClosed
	}
	var seg *segment
	if len(sp.segs) > 0 {
		seg = sp.segs[len(sp.segs)-1]
	}
	w := sp.wbuf[:0]
	defer func() { sp.wbuf = w[:0] }()
	lines, recs, drops := 0, 0, 0 // in w, not yet written
	for i := 0; i < b.n(); i++ {
		line := b.line(i)
		rec := int64(recHdr + len(line))
		used := sp.size.Load() + int64(len(w))
		if !b.crit[i] && used+rec > beLimit {
			lines++
			drops++
			continue
		}
		needSeg := seg == nil || seg.size+int64(len(w))+rec > sp.segMax
		extra := int64(0)
		if needSeg {
			extra = magicLen
		}
		if used+rec+extra > sp.max {
			break
		}
		if needSeg {
			if seg != nil {
				if err := sp.write(seg, w, recs); err != nil {
					return consumed, written, dropped, err
				}
			}
			consumed, written, dropped = consumed+lines, written+recs, dropped+drops
			lines, recs, drops = 0, 0, 0
			w = w[:0]
			if seg, err = sp.newSegment(); err != nil {
				return consumed, written, dropped, err
			}
		}
		w = appendRecord(w, line, b.crit[i])
		lines++
		recs++
	}
	if recs > 0 {
		if err := sp.write(seg, w, recs); err != nil {
			return consumed, written, dropped, err
		}
	}
	return consumed + lines, written + recs, dropped + drops, nil
}

func (sp *spool) segIndex(id uint64) int {
	i, _ := slices.BinarySearchFunc(sp.segs, id, func(s *segment, id uint64) int {
		switch {
		case s.id < id:
			return -1
		case s.id > id:
			return 1
		}
		return 0
	})
	return i
}

// readBatch fills b (which must be empty) with the next records to replay,
// at most maxEvents of them and, unless it is a single record, at most
// maxBytes of NDJSON.
func (sp *spool) readBatch(b *batch, maxEvents, maxBytes int) (err error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return errSpoolClosed
	}
	b.start = sp.read
	defer func() {
		b.end = sp.read
		b.nRead = b.n()
		sp.unread.Add(-int64(b.n()))
		if b.n() == 0 && err == nil {
			// Nothing left to read: make the counts say so, even if a
			// corrupt segment made them wrong.
			sp.unread.Store(0)
			if sp.read == sp.cursor {
				sp.resetLocked()
				sp.writeCursor()
			}
		}
	}()
	need := int64(0) // a record larger than the chunk read
	for b.n() < maxEvents {
		i := sp.segIndex(sp.read.seg)
		if i == len(sp.segs) {
			return nil
		}
		seg := sp.segs[i]
		if seg.id != sp.read.seg {
			sp.read = pos{seg.id, magicLen}
		}
		if sp.read.off >= seg.size {
			if i == len(sp.segs)-1 {
				return nil
			}
			sp.read = pos{sp.segs[i+1].id, magicLen}
			continue
		}
		remain := seg.size - sp.read.off
		want := int64(maxBytes-len(b.buf)) + int64(maxEvents-b.n())*recHdr
		want = min(remain, max(want, 64<<10, need))
		if int64(cap(sp.rbuf)) < want {
			sp.rbuf = make([]byte, want)
		}
		chunk := sp.rbuf[:want]
		if n, rerr := seg.f.ReadAt(chunk, sp.read.off); int64(n) < want {
			return fmt.Errorf("read spool: %w", rerr)
		}
		p := 0
		full := false
		for p+recHdr <= len(chunk) && b.n() < maxEvents {
			l := int(binary.LittleEndian.Uint32(chunk[p:]))
			if int64(p+recHdr+l) > remain {
				sp.corrupt(seg)
				break
			}
			if p+recHdr+l > len(chunk) {
				need = int64(recHdr + l)
				break
			}
			body := chunk[p+recHdr : p+recHdr+l]
			if recordCRC(chunk[p:p+4], chunk[p+8], body) != binary.LittleEndian.Uint32(chunk[p+4:]) {
				sp.corrupt(seg)
				break
			}
			if b.n() > 0 && len(b.buf)+l+1 > maxBytes {
				full = true
				break
			}
			b.add(body, chunk[p+8]&flagCritical != 0, 0)
			p += recHdr + l
		}
		if sp.read.seg == seg.id && sp.read.off < seg.size {
			sp.read.off += int64(p)
		}
		if full {
			return nil
		}
	}
	return nil
}

// corrupt skips the rest of a segment whose data changed on disk after it
// was checked (a failing disk): the events there are lost.
func (sp *spool) corrupt(seg *segment) {
	sp.log.Error("shipper spool: corrupt record, skipping the rest of the segment (disk error?)", "segment", segName(seg.id))
	sp.read = pos{seg.id, seg.size}
}

// commit records that the records of b were acknowledged.
func (sp *spool) commit(b *batch) error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return errSpoolClosed
	}
	sp.cursor = b.end
	sp.pending.Add(-int64(b.nRead))
	// Move the cursor off the end of a finished segment, then delete the
	// segments before it.
	for {
		i := sp.segIndex(sp.cursor.seg)
		if i >= len(sp.segs)-1 {
			break
		}
		if sp.segs[i].id == sp.cursor.seg && sp.cursor.off < sp.segs[i].size {
			break
		}
		sp.cursor = pos{sp.segs[i+1].id, magicLen}
	}
	k := 0
	for k < len(sp.segs) && sp.segs[k].id < sp.cursor.seg {
		sp.removeSeg(sp.segs[k])
		k++
	}
	sp.segs = sp.segs[k:]
	if sp.read.seg < sp.cursor.seg {
		sp.read = sp.cursor
	}
	if n := len(sp.segs); n > 0 && sp.cursor.seg == sp.segs[n-1].id && sp.cursor.off >= sp.segs[n-1].size {
		sp.resetLocked()
	}
	return sp.writeCursor()
}

func (sp *spool) removeSeg(seg *segment) {
	seg.f.Close()
	if err := os.Remove(filepath.Join(sp.dir, segName(seg.id))); err != nil {
		sp.log.Error("shipper spool: remove delivered segment", "err", err)
	}
	sp.size.Add(-seg.size)
}

// resetLocked deletes every segment: everything was acknowledged.
func (sp *spool) resetLocked() {
	for _, seg := range sp.segs {
		sp.removeSeg(seg)
	}
	sp.segs = sp.segs[:0]
	sp.cursor = pos{sp.nextID, magicLen}
	sp.read = sp.cursor
	sp.pending.Store(0)
	sp.unread.Store(0)
}

// rewind makes the records not acknowledged unread again, after a failed
// replay.
func (sp *spool) rewind() {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.read = sp.cursor
	sp.unread.Store(sp.pending.Load())
}

func (sp *spool) close() error {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.closed {
		return nil
	}
	sp.closed = true
	return sp.closeFiles()
}

func (sp *spool) closeFiles() error {
	var errs []error
	for _, seg := range sp.segs {
		errs = append(errs, seg.f.Close())
	}
	if sp.cur != nil {
		errs = append(errs, sp.cur.Close())
	}
	if sp.lock != nil {
		errs = append(errs, sp.lock.Close()) // releases the flock
	}
	return errors.Join(errs...)
}
