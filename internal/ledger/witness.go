package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/atomicfile"
	"golang.org/x/mod/sumdb/note"
)

// Source is where a witness reads checkpoints and consistency proofs; a
// *Client of a Vigil server is one.
type Source interface {
	Checkpoint(ctx context.Context) ([]byte, error)
	ConsistencyProof(ctx context.Context, oldSize, newSize int64) (ConsistencyProof, error)
}

// RotationSource is a Source that also serves the log's key rotation
// statements (a *Client does). A witness asks for them when a checkpoint
// is signed by a key it does not know yet.
type RotationSource interface {
	Rotations(ctx context.Context) ([]string, error)
}

// AlertKind says what a witness caught.
type AlertKind string

// What a witness catches.
const (
	// AlertRollback: the served tree is smaller than one already seen.
	AlertRollback AlertKind = "rollback"
	// AlertFork: a tree of a size already seen, with another root.
	AlertFork AlertKind = "fork"
	// AlertRewrite: a larger tree that does not extend the one seen.
	AlertRewrite AlertKind = "rewrite"
	// AlertSignature: the served checkpoint is not signed by the key.
	AlertSignature AlertKind = "bad signature"
)

// Alert is what a witness reports, and the JSON body of its webhook.
type Alert struct {
	Kind    AlertKind `json:"kind"`
	Source  string    `json:"source"`
	Message string    `json:"message"`
	// Witnessed is the latest checkpoint the witness had accepted.
	Witnessed *Checkpoint `json:"witnessed,omitempty"`
	// Served is the checkpoint note the server served.
	Served string `json:"served"`
	// Evidence is the file where the witness kept Served.
	Evidence string    `json:"evidence,omitempty"`
	Time     time.Time `json:"time"`
	// Repeat is true when this very checkpoint was already reported (the
	// webhook is not called again for it).
	Repeat bool `json:"repeat,omitempty"`
}

// WitnessOptions tune a Witness.
type WitnessOptions struct {
	// Source names the server in alerts (its URL).
	Source string
	// Notify, when set, is called once for each new alert (a webhook).
	Notify func(context.Context, Alert) error
	Log    *slog.Logger
	Now    func() time.Time
}

// Witness keeps every checkpoint it accepted in its own directory and
// checks that each new one is signed and extends the last.
type Witness struct {
	dir    string
	v      note.Verifier // the key the witness was given
	keys   *Keys         // v's chain, as far as the kept rotations go
	rots   []string      // the kept rotations
	src    Source
	opts   WitnessOptions
	latest *Checkpoint
}

// The witness directory's layout.
const (
	witnessCheckpoints = "checkpoints"
	witnessEvidence    = "evidence"
	witnessRotations   = "rotations.json"
)

// OpenWitness opens (creating, mode 0700) the witness directory dir and
// loads the latest checkpoint kept there, which must verify with v or with
// a key the key rotations kept there link to v.
func OpenWitness(dir string, v note.Verifier, src Source, opts WitnessOptions) (*Witness, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, d := range []string{dir, filepath.Join(dir, witnessCheckpoints), filepath.Join(dir, witnessEvidence)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("witness directory: %w", err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("witness directory: %w", err)
		}
	}
	w := &Witness{dir: dir, v: v, keys: SingleKey(v), src: src, opts: opts}
	if b, err := readSmallFile(filepath.Join(dir, witnessRotations), MaxRotations*4<<10); err == nil {
		if err := json.Unmarshal(b, &w.rots); err != nil {
			return nil, fmt.Errorf("witness: %s: %w", witnessRotations, err)
		}
		if w.keys, err = NewKeys(v, w.rots); err != nil {
			return nil, fmt.Errorf("witness: kept key rotations: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("witness: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, witnessCheckpoints))
	if err != nil {
		return nil, fmt.Errorf("witness directory: %w", err)
	}
	best, bestName := int64(-1), ""
	for _, e := range entries {
		s, ok := strings.CutSuffix(e.Name(), ".note")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		if n > best {
			best, bestName = n, e.Name()
		}
	}
	if bestName != "" {
		path := filepath.Join(dir, witnessCheckpoints, bestName)
		b, err := readSmallFile(path, MaxNoteBytes)
		if err != nil {
			return nil, fmt.Errorf("witness: %w", err)
		}
		cp, err := w.keys.Open(b)
		if err != nil {
			return nil, fmt.Errorf("witness: kept checkpoint %s: %w (was the witness started with another --pubkey?)", path, err)
		}
		if cp.Size != best {
			return nil, fmt.Errorf("witness: kept checkpoint %s is for %d events", path, cp.Size)
		}
		w.latest = &cp
	}
	return w, nil
}

// Latest returns the latest checkpoint the witness accepted.
func (w *Witness) Latest() (Checkpoint, bool) {
	if w.latest == nil {
		return Checkpoint{}, false
	}
	return *w.latest, true
}

// Check fetches the server's checkpoint and compares it with the latest
// accepted one. It returns the alert raised, if any; an error means the
// server could not be asked (nothing was checked).
func (w *Witness) Check(ctx context.Context) (*Alert, error) {
	msg, err := w.src.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch checkpoint: %w", err)
	}
	cp, err := w.keys.Open(msg)
	var se *SignatureError
	if errors.As(err, &se) {
		var refused string
		cp, refused, err = w.followRotations(ctx, msg)
		if err != nil {
			return nil, err
		}
		if refused != "" {
			return w.alert(ctx, AlertSignature, msg, -1, refused)
		}
	}
	if err != nil {
		return w.alert(ctx, AlertSignature, msg, -1, fmt.Sprintf("the served checkpoint is refused: %v", err))
	}
	last := w.latest
	switch {
	case last == nil:
		w.opts.Log.Info("witness: first checkpoint accepted", "size", cp.Size, "root", cp.Hash.String())
		return nil, w.keep(cp)
	case cp.Size < last.Size:
		return w.alert(ctx, AlertRollback, msg, cp.Size, fmt.Sprintf("the server shows a tree of %d events, smaller than the %d already witnessed: events were removed", cp.Size, last.Size))
	case cp.Size == last.Size:
		if cp.Hash != last.Hash {
			return w.alert(ctx, AlertFork, msg, cp.Size, fmt.Sprintf("the server shows a tree of %d events with root %s, but the witnessed tree of that size has root %s: the log was forked (rewritten and re-signed)", cp.Size, cp.Hash, last.Hash))
		}
		return nil, nil
	}
	var proof ConsistencyProof
	if last.Size > 0 {
		if proof, err = w.src.ConsistencyProof(ctx, last.Size, cp.Size); err != nil {
			var he *HTTPError
			if errors.As(err, &he) && he.Status == http.StatusNotFound {
				return w.alert(ctx, AlertRewrite, msg, cp.Size, fmt.Sprintf("the server cannot prove that its tree of %d events extends the witnessed tree of %d: %v", cp.Size, last.Size, err))
			}
			if errors.Is(err, ErrMalformed) {
				return w.alert(ctx, AlertRewrite, msg, cp.Size, fmt.Sprintf("the server's consistency proof is malformed: %v", err))
			}
			return nil, fmt.Errorf("fetch consistency proof %d..%d: %w", last.Size, cp.Size, err)
		}
	}
	if err := VerifyConsistency(*last, cp, proof.Proof); err != nil {
		return w.alert(ctx, AlertRewrite, msg, cp.Size, fmt.Sprintf("the tree of %d events does not extend the witnessed tree of %d events (root %s): the log was rewritten", cp.Size, last.Size, last.Hash))
	}
	return nil, w.keep(cp)
}

// followRotations is Check's answer to a checkpoint signed by a key the
// witness does not know: it fetches the server's key rotations and, if they
// extend the chain it kept from its key, keeps them and opens the
// checkpoint with the longer chain. refused says why the checkpoint is
// refused; err is for a server that could not be asked.
func (w *Witness) followRotations(ctx context.Context, msg []byte) (cp Checkpoint, refused string, err error) {
	cp, openErr := w.keys.Open(msg)
	rs, ok := w.src.(RotationSource)
	if !ok {
		return cp, fmt.Sprintf("the served checkpoint is refused: %v", openErr), nil
	}
	rots, err := rs.Rotations(ctx)
	if err != nil {
		return cp, "", fmt.Errorf("fetch key rotations: %w", err)
	}
	for _, kept := range w.rots {
		if !slices.Contains(rots, kept) {
			return cp, "the server's key rotations no longer include one the witness kept: the key chain was rewritten", nil
		}
	}
	keys, err := NewKeys(w.v, rots)
	if err != nil {
		return cp, fmt.Sprintf("the served checkpoint is refused: the server's key rotations: %v", err), nil
	}
	cp, err = keys.Open(msg)
	if err != nil {
		return cp, fmt.Sprintf("the served checkpoint is refused: %v", err), nil
	}
	if len(rots) > len(w.rots) {
		b, err := json.Marshal(rots)
		if err != nil {
			return cp, "", err
		}
		if err := atomicfile.Write(filepath.Join(w.dir, witnessRotations), b); err != nil {
			return cp, "", fmt.Errorf("witness: keep key rotations: %w", err)
		}
		w.opts.Log.Info("witness: followed a key rotation", "keys", keys.String())
	}
	w.keys, w.rots = keys, rots
	return cp, "", nil
}

// keep stores an accepted checkpoint and makes it the latest.
func (w *Witness) keep(cp Checkpoint) error {
	name := filepath.Join(w.dir, witnessCheckpoints, fmt.Sprintf("%020d.note", cp.Size))
	if err := atomicfile.Write(name, []byte(cp.Note)); err != nil {
		return fmt.Errorf("witness: keep checkpoint: %w", err)
	}
	w.latest = &cp
	return nil
}

// alert keeps the offending note as evidence, logs, and calls Notify once
// per distinct note.
func (w *Witness) alert(ctx context.Context, kind AlertKind, msg []byte, size int64, text string) (*Alert, error) {
	sum := sha256.Sum256(msg)
	sizeStr := "unknown"
	if size >= 0 {
		sizeStr = strconv.FormatInt(size, 10)
	}
	name := fmt.Sprintf("%s-%s-%s.note", strings.ReplaceAll(string(kind), " ", "-"), sizeStr, hex.EncodeToString(sum[:6]))
	path := filepath.Join(w.dir, witnessEvidence, name)
	a := &Alert{Kind: kind, Source: w.opts.Source, Message: text, Witnessed: w.latest, Served: string(msg), Evidence: path, Time: w.opts.Now().UTC()}
	if _, err := os.Stat(path); err == nil {
		a.Repeat = true
	} else if err := atomicfile.Write(path, msg); err != nil {
		w.opts.Log.Error("witness: keep evidence", "err", err)
		a.Evidence = ""
	}
	w.opts.Log.Error("witness: ALERT", "kind", string(kind), "source", w.opts.Source, "message", text, "evidence", a.Evidence)
	if w.opts.Notify != nil && !a.Repeat {
		if err := w.opts.Notify(ctx, *a); err != nil {
			w.opts.Log.Error("witness: notify", "err", err)
		}
	}
	return a, nil
}

// WebhookNotifier returns a Notify function that POSTs each alert as JSON
// to url and expects a 2xx answer.
func WebhookNotifier(url string, client *http.Client) func(context.Context, Alert) error {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return func(ctx context.Context, a Alert) error {
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("webhook: answered %s", resp.Status)
		}
		return nil
	}
}
