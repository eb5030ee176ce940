package ledger

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/vigilsec/vigil/internal/atomicfile"
)

// pendingKeySuffix names the file that holds a new signing key while its
// rotation commits: ledger.key.new.
const pendingKeySuffix = ".new"

// RotateKey replaces the signing key. The old key first signs the tree of
// every event stored (if it has not), then the old and the new key sign the rotation
// statement and a checkpoint of that same tree, which is the last the old
// key signs and the first of the new one. The statement, the checkpoint and
// the new public key are committed to ledger.db in one transaction, then
// the new key replaces ledger.key (through ledger.key.new, so that a crash
// at any point leaves either the old key in force or the rotation finished
// at the next start). The old private key is not kept.
//
// Verifiers holding the old public key keep working: they follow the
// statement to the new key (NewKeys). Publish the new public key too.
func (l *Ledger) RotateKey(ctx context.Context) (Rotation, error) {
	// The old key covers what is stored now.
	if err := l.catchUp(ctx, true); err != nil {
		return Rotation{}, fmt.Errorf("rotate key: bring the tree up to date: %w", err)
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	if l.isClosed() {
		return Rotation{}, ErrClosed
	}
	if l.Checkpoint().Size != l.front.size {
		if err := l.sign(ctx); err != nil {
			return Rotation{}, fmt.Errorf("rotate key: sign the tree with the old key: %w", err)
		}
	}
	old := l.key
	skey, _, err := note.GenerateKey(rand.Reader, old.signer.Name())
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: generate: %w", err)
	}
	nk, err := parseSignerKey(skey)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: %w", err)
	}
	now := l.opts.Now()
	size, root := l.front.size, l.front.root()
	rot, err := signRotation(old, nk, size, now)
	if err != nil {
		return Rotation{}, err
	}
	text := checkpointText(old.signer.Name(), size, root, now.UTC().Round(0))
	msg, err := note.Sign(&note.Note{Text: text}, old.signer, nk.signer)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: sign the checkpoint: %w", err)
	}
	keys, err := NewKeys(nk.verifier, append(l.Rotations(), rot.Note))
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: %w", err)
	}
	cp, err := keys.Open(msg)
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate key: the new checkpoint: %w", err)
	}

	keyPath := filepath.Join(l.dataDir, KeyFile)
	pending := keyPath + pendingKeySuffix
	if err := os.Remove(pending); err != nil && !errors.Is(err, os.ErrNotExist) {
		return Rotation{}, fmt.Errorf("rotate key: %w", err)
	}
	if err := writeFileExcl(pending, []byte(skey+"\n")); err != nil {
		return Rotation{}, fmt.Errorf("rotate key: write the new key: %w", err)
	}
	if err := l.commitRotation(ctx, rot, nk, cp); err != nil {
		os.Remove(pending)
		return Rotation{}, err
	}
	l.mu.Lock()
	l.key, l.keys, l.latest = nk, keys, cp
	l.rotations = append(l.rotations, rot.Note)
	l.mu.Unlock()
	l.lastSign = now
	if err := atomicfile.Rename(pending, keyPath); err != nil {
		// ledger.db names the new key: the next start finishes the rename.
		return rot, fmt.Errorf("rotate key: the new key is in force but %s could not replace %s (the next start does it): %w", pending, keyPath, err)
	}
	l.log.Info("ledger: signing key rotated", "size", size, "old", old.public, "new", nk.public)
	return rot, nil
}

// commitRotation stores the rotation statement, the new public key and the
// checkpoint both keys signed, in one transaction.
func (l *Ledger) commitRotation(ctx context.Context, rot Rotation, nk *key, cp Checkpoint) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("rotate key: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO rotations(size, note) VALUES (?, ?)`, []any{rot.Size, rot.Note}},
		{`UPDATE meta SET value = ? WHERE key = 'public_key'`, []any{nk.public}},
		{`UPDATE meta SET value = ? WHERE key = 'schema_version'`, []any{schemaVersion}},
		{`INSERT INTO checkpoints(size, note) VALUES (?, ?) ON CONFLICT(size) DO UPDATE SET note = excluded.note`, []any{cp.Size, cp.Note}},
	} {
		if _, err := tx.ExecContext(ctx, q.sql, q.args...); err != nil {
			return fmt.Errorf("rotate key: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("rotate key: commit: %w", err)
	}
	return nil
}

// finishRotation completes or undoes a rotation that a crash interrupted:
// ledger.key.new is the new key if ledger.db names it (the rotation
// committed: it replaces ledger.key), else a key that never signed anything
// (removed).
func finishRotation(ctx context.Context, dataDir string, db *sql.DB, log *slog.Logger) error {
	keyPath := filepath.Join(dataDir, KeyFile)
	pending := keyPath + pendingKeySuffix
	b, err := readSmallFile(pending, maxKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", pending, err)
	}
	pub, ok, err := readMeta(ctx, db, "public_key")
	if err != nil {
		return fmt.Errorf("read public key: %w", err)
	}
	if k, err := parseSignerKey(strings.TrimSpace(string(b))); err == nil && ok && pub == k.public {
		if err := atomicfile.Rename(pending, keyPath); err != nil {
			return fmt.Errorf("finish the key rotation: %w", err)
		}
		log.Info("ledger: finished a key rotation interrupted after its commit", "public_key", pub)
		return nil
	}
	if err := os.Remove(pending); err != nil {
		return fmt.Errorf("remove the key of an unfinished rotation: %w", err)
	}
	log.Warn("ledger: removed the new key of a rotation that did not commit; the old key stays in force", "file", pending)
	return nil
}
