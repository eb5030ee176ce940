// Package auth issues and checks Vigil's API tokens. Tokens are random,
// shown once when created, and stored only as SHA-256 hashes: a token has 256
// bits of entropy, so a fast hash is enough and a stolen token file reveals
// no usable token.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
)

// TokenPrefix starts every token Vigil issues, so that secret scanners and
// people can recognise one.
const TokenPrefix = "vgl_"

// Entry is one stored token.
type Entry struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// Tokens is the set of valid tokens, kept in a JSON file (mode 0600).
type Tokens struct {
	path    string
	mu      sync.RWMutex
	entries []Entry
}

// NewToken returns a fresh random token.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Load reads the token file at path; a missing file is an empty set.
func Load(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	if err := json.Unmarshal(b, &t.entries); err != nil {
		return nil, fmt.Errorf("parse tokens file %s: %w", path, err)
	}
	return t, nil
}

// Len returns the number of stored tokens.
func (t *Tokens) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}

// Add stores the hash of tok under name and role and saves the file.
// Adding a token whose name exists replaces that entry.
func (t *Tokens) Add(name, role, tok string) error {
	if len(tok) < 16 {
		return errors.New("token must be at least 16 characters")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e := Entry{Name: name, Role: role, Hash: hashToken(tok), Created: time.Now().UTC()}
	replaced := false
	for i := range t.entries {
		if t.entries[i].Name == name {
			t.entries[i] = e
			replaced = true
		}
	}
	if !replaced {
		t.entries = append(t.entries, e)
	}
	return t.save()
}

func (t *Tokens) save() error {
	b, err := json.MarshalIndent(t.entries, "", "  ")
	if err != nil {
		return err
	}
	tmp := t.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write tokens: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write tokens: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync tokens: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, t.path); err != nil {
		return fmt.Errorf("write tokens: %w", err)
	}
	if d, err := os.Open(filepath.Dir(t.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Check returns the entry a presented token matches.
func (t *Tokens) Check(tok string) (Entry, bool) {
	h := hashToken(tok)
	t.mu.RLock()
	defer t.mu.RUnlock()
	var found Entry
	ok := false
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare([]byte(h), []byte(e.Hash)) == 1 {
			found, ok = e, true
		}
	}
	return found, ok
}

// BearerToken extracts the token of an "Authorization: Bearer T" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "bearer "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	tok := strings.TrimSpace(h[len(p):])
	return tok, tok != ""
}

// Require wraps next so that it runs only for a request carrying a valid
// bearer token; others get 401 with a JSON error. onFail, when set, is
// called for each refused request (for metrics).
func (t *Tokens) Require(next http.Handler, onFail func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := BearerToken(r)
		msg := "missing bearer token: send Authorization: Bearer <token>"
		if ok {
			if e, valid := t.Check(tok); valid {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), entryKey{}, e)))
				return
			}
			msg = "invalid token"
		}
		if onFail != nil {
			onFail()
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		httperr.Msg(w, http.StatusUnauthorized, msg)
	})
}

type entryKey struct{}

// FromContext returns the token entry of a request that passed Require.
func FromContext(ctx context.Context) (Entry, bool) {
	e, ok := ctx.Value(entryKey{}).(Entry)
	return e, ok
}
