package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/vigilsec/vigil/internal/store"
)

// CursorName is the store cursor the ledger sets to the size of its latest
// signed checkpoint, so that other consumers (retention) can tell which
// events are sealed.
const CursorName = "ledger"

// Options tune a Ledger. The zero value is a good default.
type Options struct {
	// Origin names the log in its checkpoints and its key. It is used when
	// the key is created (default "vigil/" and 12 random hex digits); for an
	// existing key it must be empty or equal to the key's name.
	Origin string
	// BatchSize is how many events are read, hashed and committed at a time
	// (default and maximum store.MaxLimit).
	BatchSize int
	// PollInterval is how often Run looks for new events (default 200ms).
	PollInterval time.Duration
	// SignInterval is the least time between two checkpoints while the tree
	// grows (default 1s).
	SignInterval time.Duration
	// ShutdownTimeout bounds the final catch-up and signature when Run's
	// context ends (default 10s).
	ShutdownTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Tick, when set, replaces Run's poll ticker: Run catches up once per
	// value received. Tests use it to drive Run step by step.
	Tick <-chan time.Time
	// Log receives the ledger's logs (default slog.Default()).
	Log *slog.Logger
}

func (o *Options) setDefaults() {
	if o.BatchSize <= 0 || o.BatchSize > store.MaxLimit {
		o.BatchSize = store.MaxLimit
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 200 * time.Millisecond
	}
	if o.SignInterval <= 0 {
		o.SignInterval = time.Second
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// ErrOutOfRange is wrapped by the errors of proofs and exports asked for
// sequence numbers or tree sizes the ledger does not have.
var ErrOutOfRange = errors.New("out of range")

// ErrClosed is returned by a Ledger used after Close.
var ErrClosed = errors.New("ledger closed")

// Ledger keeps the Merkle tree of a store's events and signs checkpoints.
type Ledger struct {
	st      store.Store
	opts    Options
	dataDir string
	log     *slog.Logger
	key     *key
	db      *sql.DB

	// writeMu serializes the writers (Run, Sync) and guards what only they
	// touch: the frontier, the last hashes page, lastSign and lastThin.
	writeMu  sync.Mutex
	front    *frontier
	lastPage []byte // contents of the last, possibly partial, hashes page
	lastSign time.Time
	lastThin time.Time // when sign last thinned the old checkpoints

	mu     sync.RWMutex // guards size, latest, closed, keys, rotations (key too, once open)
	size   int64        // leaves committed to ledger.db
	latest Checkpoint
	closed bool
	// keys is the chain of signing keys, the current one last; rotations
	// the statements that link them, oldest first.
	keys      *Keys
	rotations []string
}

// Open opens the ledger in dataDir (ledger.db and ledger.key, created with
// mode 0600 when absent) for the events of st. It refuses to open when
// ledger.db does not match its key or its latest checkpoint, or when the
// store holds fewer events than the tree: those are signs of tampering that
// "vigil verify --data-dir" explains. A new ledger signs a first checkpoint.
func Open(dataDir string, st store.Store, opts Options) (*Ledger, error) {
	opts.setDefaults()
	ctx := context.Background()
	db, err := openDB(filepath.Join(dataDir, DBFile), false)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %s: %w", DBFile, err)
	}
	fail := func(err error) (*Ledger, error) {
		db.Close()
		return nil, fmt.Errorf("open ledger %s: %w", filepath.Join(dataDir, DBFile), err)
	}
	if err := migrate(ctx, db); err != nil {
		return fail(fmt.Errorf("migrate: %w", err))
	}
	if err := finishRotation(ctx, dataDir, db, opts.Log); err != nil {
		return fail(err)
	}
	k, created, err := loadOrCreateKey(filepath.Join(dataDir, KeyFile), opts.Origin)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	if created {
		opts.Log.Info("ledger: created a signing key", "file", filepath.Join(dataDir, KeyFile), "public_key", k.public)
	}
	l := &Ledger{st: st, opts: opts, log: opts.Log, key: k, db: db, dataDir: dataDir}
	if err := l.load(ctx); err != nil {
		return fail(err)
	}
	return l, nil
}

// load reads the tree's state from ledger.db and checks it.
func (l *Ledger) load(ctx context.Context) error {
	pub, ok, err := readMeta(ctx, l.db, "public_key")
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	if !ok {
		if _, err := l.db.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES ('public_key', ?)`, l.key.public); err != nil {
			return fmt.Errorf("save public key: %w", err)
		}
	} else if pub != l.key.public {
		return fmt.Errorf("its checkpoints are signed by %s but %s holds the key %s: the key was replaced", pub, KeyFile, l.key.public)
	}
	rots, err := readRotations(ctx, l.db)
	if err != nil {
		return err
	}
	keys, err := NewKeys(l.key.verifier, rots)
	if err != nil {
		return fmt.Errorf("key rotations: %w", err)
	}
	if keys.Current().KeyHash() != l.key.verifier.KeyHash() {
		return fmt.Errorf("%s holds %s, a key retired by a rotation; the current key is %s", KeyFile, KeyID(l.key.verifier), KeyID(keys.Current()))
	}
	l.keys, l.rotations = keys, rots
	s, _, err := readMeta(ctx, l.db, "tree_size")
	if err != nil {
		return fmt.Errorf("read tree size: %w", err)
	}
	size, err := strconv.ParseInt(s, 10, 64)
	if err != nil || size < 0 {
		return fmt.Errorf("tree size %q is not a number", s)
	}
	r := newHashReader(ctx, l.db, size)
	nodes := rangeNodes(0, size)
	idx := make([]int64, len(nodes))
	for i, n := range nodes {
		idx[i] = n.index
	}
	hashes, err := r.ReadHashes(idx)
	if err != nil {
		return fmt.Errorf("read the tree of size %d: %w", size, err)
	}
	if l.front, err = newFrontier(size, hashes); err != nil {
		return err
	}
	count := tlog.StoredHashCount(size)
	if count%hashesPerPage != 0 {
		page := count / hashesPerPage
		err := l.db.QueryRowContext(ctx, `SELECT data FROM hashes WHERE page = ?`, page).Scan(&l.lastPage)
		if err != nil {
			return fmt.Errorf("read tree hashes page %d: %w", page, err)
		}
		if len(l.lastPage) < int(count%hashesPerPage)*tlog.HashSize {
			return fmt.Errorf("tree hashes page %d is truncated", page)
		}
		l.lastPage = l.lastPage[:int(count%hashesPerPage)*tlog.HashSize]
	}
	l.size = size

	var note string
	err = l.db.QueryRowContext(ctx, `SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&note)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("read latest checkpoint: %w", err)
	default:
		cp, err := OpenCheckpoint([]byte(note), l.key.verifier)
		if err != nil {
			return fmt.Errorf("latest checkpoint (it must be signed by the current key): %w", err)
		}
		if cp.Size > size {
			return fmt.Errorf("latest checkpoint is for %d events but the tree has %d", cp.Size, size)
		}
		root, err := tlog.TreeHash(cp.Size, r)
		if err != nil {
			return fmt.Errorf("root of the tree of size %d: %w", cp.Size, err)
		}
		if root != cp.Hash {
			return fmt.Errorf("the stored tree of size %d does not match its signed checkpoint: %s was altered; run vigil verify --data-dir", cp.Size, DBFile)
		}
		l.latest = cp
	}

	last, err := l.st.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("read the store's last sequence: %w", err)
	}
	if last < uint64(size) {
		return fmt.Errorf("the store holds %d events but the tree has %d: events were removed, or the data directory mixes two logs; run vigil verify --data-dir", last, size)
	}
	if cur, err := l.st.Cursor(ctx, CursorName); err == nil && cur > uint64(size) {
		l.log.Error("ledger: the store's ledger cursor is ahead of ledger.db: ledger.db was replaced or lost", "cursor", cur, "tree_size", size)
	}
	if l.latest.Note == "" {
		if err := l.sign(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close releases ledger.db. Stop Run first (cancel its context and wait for
// it to return); Close does not wait for it.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if err := l.db.Close(); err != nil {
		return fmt.Errorf("close ledger: %w", err)
	}
	return nil
}

// PublicKey returns the verifier key of the checkpoints' signatures
// ("name+hash+base64"), which is all a verifier needs. After a key
// rotation it is the current key; Rotations links it to the earlier ones.
func (l *Ledger) PublicKey() string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.key.public
}

// Origin returns the log's origin, the first line of its checkpoints.
func (l *Ledger) Origin() string { return l.Keys().origin }

// Keys returns the chain of the log's signing keys.
func (l *Ledger) Keys() *Keys {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.keys
}

// Rotations returns the key rotation statements, oldest first.
func (l *Ledger) Rotations() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.rotations)
}

// Size returns the number of events in the tree.
func (l *Ledger) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Checkpoint returns the latest signed checkpoint.
func (l *Ledger) Checkpoint() Checkpoint {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.latest
}

func (l *Ledger) isClosed() bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.closed
}

// Run keeps the tree up with the store until ctx ends: it reads the events
// after the tree's size, appends their leaves in batches, and signs a
// checkpoint when the tree has grown, at most once per SignInterval while
// events arrive. When ctx ends it catches up a last time and signs (within
// ShutdownTimeout), then returns nil. Run returns early with an error only
// when the store's sequence breaks (a gap), which it cannot hash past, or
// when the Ledger was closed under it; read and write errors are logged and
// retried at the next poll.
func (l *Ledger) Run(ctx context.Context) error {
	tick := l.opts.Tick
	if tick == nil {
		t := time.NewTicker(l.opts.PollInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		if err := l.catchUp(ctx, false); err != nil && ctx.Err() == nil {
			if errors.Is(err, errGap) {
				l.log.Error("ledger: stopped", "err", err)
				return err
			}
			if errors.Is(err, ErrClosed) {
				return err
			}
			l.log.Warn("ledger: catching up failed; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.opts.ShutdownTimeout)
			err := l.catchUp(fctx, true)
			cancel()
			if err != nil {
				l.log.Warn("ledger: final catch-up", "err", err, "tree_size", l.Size())
			}
			return nil
		case <-tick:
		}
	}
}

// Sync appends every event the store has committed and signs a checkpoint
// if the tree grew, then returns the latest checkpoint.
func (l *Ledger) Sync(ctx context.Context) (Checkpoint, error) {
	err := l.catchUp(ctx, true)
	return l.Checkpoint(), err
}

// errGap is wrapped when the store's records do not continue the tree.
var errGap = errors.New("sequence gap")

// catchUp reads and hashes everything the store has after the tree. With
// force it signs whenever the tree grew; otherwise at most once per
// SignInterval.
func (l *Ledger) catchUp(ctx context.Context, force bool) error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.isClosed() {
		return ErrClosed
	}
	for {
		size := l.front.size
		recs, err := l.st.Read(ctx, uint64(size), l.opts.BatchSize)
		if err != nil {
			return fmt.Errorf("read events after %d: %w", size, err)
		}
		if len(recs) > 0 {
			if err := l.appendRecords(ctx, recs); err != nil {
				return err
			}
		}
		caughtUp := len(recs) < l.opts.BatchSize
		grown := l.front.size > l.Checkpoint().Size
		due := l.opts.Now().Sub(l.lastSign) >= l.opts.SignInterval
		if grown && (due || (force && caughtUp)) {
			if err := l.sign(ctx); err != nil {
				return err
			}
		}
		if caughtUp {
			return nil
		}
	}
}

// appendRecords hashes records into the tree and commits their stored hashes
// and the new size in one transaction.
func (l *Ledger) appendRecords(ctx context.Context, recs []store.Record) error {
	for i, r := range recs {
		if want := uint64(l.front.size) + uint64(i) + 1; r.Seq != want {
			// Keep what precedes the gap, then stop: the tree cannot
			// skip a sequence number.
			if i > 0 {
				if err := l.appendRecords(ctx, recs[:i]); err != nil {
					return err
				}
			}
			return fmt.Errorf("%w: the store returned event %d after %d", errGap, r.Seq, want-1)
		}
	}
	f := l.front.clone()
	first := f.size
	count := tlog.StoredHashCount(first)
	buf := make([]byte, 0, len(l.lastPage)+len(recs)*2*tlog.HashSize+tlog.HashSize*8)
	buf = append(buf, l.lastPage...)
	for _, r := range recs {
		hashes, err := f.appendLeaf(tlog.RecordHash(r.Canonical))
		if err != nil {
			return err
		}
		for i := range hashes {
			buf = append(buf, hashes[i][:]...)
		}
	}
	if got, want := count-int64(len(l.lastPage)/tlog.HashSize)+int64(len(buf)/tlog.HashSize), tlog.StoredHashCount(f.size); got != want {
		return fmt.Errorf("hash leaves %d..%d: %d stored hashes, want %d", first, f.size, got, want)
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append %d leaves: %w", len(recs), err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO hashes(page, data) VALUES (?, ?)
		ON CONFLICT(page) DO UPDATE SET data = excluded.data`)
	if err != nil {
		return fmt.Errorf("append %d leaves: %w", len(recs), err)
	}
	defer stmt.Close()
	page := count / hashesPerPage
	rest := buf
	for len(rest) > 0 {
		n := min(len(rest), pageBytes)
		if _, err := stmt.ExecContext(ctx, page, rest[:n]); err != nil {
			return fmt.Errorf("append %d leaves: write hashes page %d: %w", len(recs), page, err)
		}
		page++
		rest = rest[n:]
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'tree_size'`, f.size); err != nil {
		return fmt.Errorf("append %d leaves: %w", len(recs), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append %d leaves: commit: %w", len(recs), err)
	}
	last := len(buf) % pageBytes
	l.lastPage = append(l.lastPage[:0], buf[len(buf)-last:]...)
	l.front = f
	l.mu.Lock()
	l.size = f.size
	l.mu.Unlock()
	return nil
}

// sign signs and stores a checkpoint of the tree as it is, then moves the
// store's ledger cursor to it.
func (l *Ledger) sign(ctx context.Context) error {
	now := l.opts.Now()
	cp, err := signCheckpoint(l.key, l.front.size, l.front.root(), now)
	if err != nil {
		return err
	}
	if _, err := l.db.ExecContext(ctx, `INSERT INTO checkpoints(size, note) VALUES (?, ?)
		ON CONFLICT(size) DO NOTHING`, cp.Size, cp.Note); err != nil {
		return fmt.Errorf("store checkpoint of size %d: %w", cp.Size, err)
	}
	l.lastSign = now
	l.mu.Lock()
	l.latest = cp
	l.mu.Unlock()
	if err := l.st.SetCursor(ctx, CursorName, uint64(cp.Size)); err != nil {
		l.log.Warn("ledger: save the store cursor", "err", err, "size", cp.Size)
	}
	if now.Sub(l.lastThin) >= thinEvery {
		l.lastThin = now
		if err := l.thinCheckpoints(ctx, now); err != nil {
			l.log.Warn("ledger: thin old checkpoints", "err", err)
		}
	}
	return nil
}

// Checkpoints returns up to limit signed checkpoints with a size below
// before (0: no bound), newest first.
func (l *Ledger) Checkpoints(ctx context.Context, before int64, limit int) ([]Checkpoint, error) {
	if l.isClosed() {
		return nil, ErrClosed
	}
	if before <= 0 || before > MaxTreeSize {
		before = MaxTreeSize + 1
	}
	rows, err := l.db.QueryContext(ctx, `SELECT note FROM checkpoints WHERE size < ? ORDER BY size DESC LIMIT ?`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	defer rows.Close()
	var out []Checkpoint
	for rows.Next() {
		var note string
		if err := rows.Scan(&note); err != nil {
			return nil, fmt.Errorf("list checkpoints: %w", err)
		}
		cp, err := l.Keys().Open([]byte(note))
		if err != nil {
			return nil, fmt.Errorf("list checkpoints: stored checkpoint: %w", err)
		}
		out = append(out, cp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	return out, nil
}

// checkpointAt returns the signed checkpoint of the given size, if any.
func (l *Ledger) checkpointAt(ctx context.Context, size int64) (Checkpoint, bool, error) {
	var note string
	err := l.db.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE size = ?`, size).Scan(&note)
	if errors.Is(err, sql.ErrNoRows) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("read checkpoint of size %d: %w", size, err)
	}
	cp, err := l.Keys().Open([]byte(note))
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("stored checkpoint of size %d: %w", size, err)
	}
	return cp, true, nil
}

// InclusionProof is the proof that the event seq is leaf seq-1 of the tree
// of TreeSize leaves whose root is RootHash. Checkpoint is the signed
// checkpoint of that size when there is one.
type InclusionProof struct {
	Seq        uint64      `json:"seq"`
	TreeSize   int64       `json:"tree_size"`
	LeafHash   tlog.Hash   `json:"leaf_hash"`
	RootHash   tlog.Hash   `json:"root_hash"`
	Proof      []tlog.Hash `json:"proof"`
	Checkpoint string      `json:"checkpoint,omitempty"`
}

// InclusionProof proves that event seq is in the tree of treeSize leaves
// (0: the latest checkpoint's size).
func (l *Ledger) InclusionProof(ctx context.Context, seq uint64, treeSize int64) (InclusionProof, error) {
	if l.isClosed() {
		return InclusionProof{}, ErrClosed
	}
	if treeSize == 0 {
		treeSize = l.Checkpoint().Size
	}
	size := l.Size()
	if treeSize < 0 || treeSize > size {
		return InclusionProof{}, fmt.Errorf("%w: the tree has %d events, not %d", ErrOutOfRange, size, treeSize)
	}
	if seq == 0 || seq > uint64(treeSize) {
		return InclusionProof{}, fmt.Errorf("%w: event %d is not in the tree of %d events", ErrOutOfRange, seq, treeSize)
	}
	r := newHashReader(ctx, l.db, treeSize)
	p := InclusionProof{Seq: seq, TreeSize: treeSize}
	leaf, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(seq)-1)})
	if err != nil {
		return p, fmt.Errorf("prove event %d: %w", seq, err)
	}
	p.LeafHash = leaf[0]
	if p.RootHash, err = tlog.TreeHash(treeSize, r); err != nil {
		return p, fmt.Errorf("prove event %d: root: %w", seq, err)
	}
	proof, err := tlog.ProveRecord(treeSize, int64(seq)-1, r)
	if err != nil {
		return p, fmt.Errorf("prove event %d in %d: %w", seq, treeSize, err)
	}
	p.Proof = proof
	if p.Proof == nil {
		p.Proof = []tlog.Hash{}
	}
	cp, ok, err := l.checkpointAt(ctx, treeSize)
	if err != nil {
		return p, err
	}
	if ok {
		p.Checkpoint = cp.Note
	}
	return p, nil
}

// Verify checks the proof for an event's canonical bytes against a
// checkpoint already opened with OpenCheckpoint.
func (p InclusionProof) Verify(canonical []byte, cp Checkpoint) error {
	if p.TreeSize != cp.Size || p.RootHash != cp.Hash {
		return fmt.Errorf("the proof is for a tree of %d events with root %s, not the checkpoint's %d with %s", p.TreeSize, p.RootHash, cp.Size, cp.Hash)
	}
	if p.Seq == 0 || p.Seq > uint64(cp.Size) {
		return fmt.Errorf("event %d is not in a tree of %d events", p.Seq, cp.Size)
	}
	leaf := tlog.RecordHash(canonical)
	if leaf != p.LeafHash {
		return fmt.Errorf("event %d: its hash %s differs from the tree's leaf %s: the event was changed", p.Seq, leaf, p.LeafHash)
	}
	if err := tlog.CheckRecord(p.Proof, cp.Size, cp.Hash, int64(p.Seq)-1, leaf); err != nil {
		return fmt.Errorf("event %d: the inclusion proof does not lead to the checkpoint's root: %w", p.Seq, err)
	}
	return nil
}

// ConsistencyProof proves that the tree of Old leaves (root OldHash) is a
// prefix of the tree of New leaves (root NewHash).
type ConsistencyProof struct {
	Old     int64       `json:"old"`
	New     int64       `json:"new"`
	OldHash tlog.Hash   `json:"old_hash"`
	NewHash tlog.Hash   `json:"new_hash"`
	Proof   []tlog.Hash `json:"proof"`
}

// ConsistencyProof proves that the tree of oldSize leaves is a prefix of the
// tree of newSize leaves (0: the latest checkpoint's size).
func (l *Ledger) ConsistencyProof(ctx context.Context, oldSize, newSize int64) (ConsistencyProof, error) {
	if l.isClosed() {
		return ConsistencyProof{}, ErrClosed
	}
	if newSize == 0 {
		newSize = l.Checkpoint().Size
	}
	size := l.Size()
	if newSize < 0 || newSize > size {
		return ConsistencyProof{}, fmt.Errorf("%w: the tree has %d events, not %d", ErrOutOfRange, size, newSize)
	}
	if oldSize < 0 || oldSize > newSize {
		return ConsistencyProof{}, fmt.Errorf("%w: old size %d is not between 0 and new size %d", ErrOutOfRange, oldSize, newSize)
	}
	r := newHashReader(ctx, l.db, newSize)
	p := ConsistencyProof{Old: oldSize, New: newSize, Proof: []tlog.Hash{}}
	var err error
	if p.OldHash, err = tlog.TreeHash(oldSize, r); err != nil {
		return p, fmt.Errorf("prove %d..%d: %w", oldSize, newSize, err)
	}
	if p.NewHash, err = tlog.TreeHash(newSize, r); err != nil {
		return p, fmt.Errorf("prove %d..%d: %w", oldSize, newSize, err)
	}
	if oldSize > 0 && oldSize < newSize {
		if p.Proof, err = tlog.ProveTree(newSize, oldSize, r); err != nil {
			return p, fmt.Errorf("prove %d..%d: %w", oldSize, newSize, err)
		}
	}
	return p, nil
}

// VerifyConsistency checks that proof shows the tree of checkpoint older to
// be a prefix of the tree of checkpoint newer. Both must have been opened
// with OpenCheckpoint.
func VerifyConsistency(older, newer Checkpoint, proof []tlog.Hash) error {
	switch {
	case older.Size > newer.Size:
		return fmt.Errorf("rollback: the tree shrank from %d to %d events", older.Size, newer.Size)
	case older.Size == newer.Size:
		if older.Hash != newer.Hash {
			return fmt.Errorf("fork: two trees of %d events with different roots (%s, %s)", older.Size, older.Hash, newer.Hash)
		}
		return nil
	case older.Size == 0:
		return nil // the empty tree is a prefix of every tree
	}
	if err := tlog.CheckTree(proof, newer.Size, newer.Hash, older.Size, older.Hash); err != nil {
		return fmt.Errorf("rewrite: the tree of %d events does not extend the tree of %d events: %w", newer.Size, older.Size, err)
	}
	return nil
}
