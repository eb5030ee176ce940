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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigilsec/vigil/internal/httperr"
)

// TokenPrefix starts every token Vigil issues, so that secret scanners and
// people can recognise one.
const TokenPrefix = "vgl_"

// Roles a token can hold; an Entry's Role is one of them or several joined
// by commas ("ingest,read"). Give applications the least they need: a
// shipper embedded in an application holds its token, and whoever takes
// over the application takes the token too.
const (
	RoleAdmin  = "admin"  // everything, including managing tokens
	RoleIngest = "ingest" // send events (POST /api/v1/events) and nothing else
	RoleRead   = "read"   // GET and HEAD: search, alerts, decisions and their stream, metrics, proofs
	// RoleRespond is what whoever handles alerts needs: read, plus make and
	// expire silences, and add and lift decisions (bans, throttles).
	RoleRespond = "respond"
)

// CheckRole reports whether role is a valid Role: known roles, comma
// separated, each once.
func CheckRole(role string) error {
	if role == "" {
		return errors.New("empty role: want admin, ingest, read, respond, or several joined by commas")
	}
	seen := map[string]bool{}
	for _, r := range strings.Split(role, ",") {
		switch r {
		case RoleAdmin, RoleIngest, RoleRead, RoleRespond:
		default:
			return fmt.Errorf("unknown role %q: want admin, ingest, read or respond", r)
		}
		if seen[r] {
			return fmt.Errorf("role %q given twice", r)
		}
		seen[r] = true
	}
	return nil
}

// has reports whether the entry holds role r.
func (e Entry) has(r string) bool {
	for _, x := range strings.Split(e.Role, ",") {
		if x == r {
			return true
		}
	}
	return false
}

// Allows reports whether the token may make a request with this method to
// this path. Managing tokens (/api/v1/tokens) and profiling (/debug/) need
// admin whatever the method.
func (e Entry) Allows(method, path string) bool {
	if e.has(RoleAdmin) {
		return true
	}
	if path == "/api/v1/tokens" || strings.HasPrefix(path, "/api/v1/tokens/") || strings.HasPrefix(path, "/debug/") {
		return false
	}
	reading := method == http.MethodGet || method == http.MethodHead
	switch {
	case e.has(RoleIngest) && method == http.MethodPost && path == "/api/v1/events":
		return true
	case (e.has(RoleRead) || e.has(RoleRespond)) && reading:
		return true
	case e.has(RoleRespond) && (method == http.MethodPost || method == http.MethodDelete):
		return path == "/api/v1/silences" || strings.HasPrefix(path, "/api/v1/silences/") ||
			path == "/api/v1/decisions" || strings.HasPrefix(path, "/api/v1/decisions/")
	}
	return false
}

// Entry is one stored token.
type Entry struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Hash    string    `json:"sha256"`
	Created time.Time `json:"created"`
	// Expires, when set, is when the token stops working.
	Expires time.Time `json:"expires,omitzero"`
}

// Expired reports whether the token has expired at now.
func (e Entry) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// MaxTokenLifetime bounds how far ahead a token's expiry may be set.
const MaxTokenLifetime = 10 * 365 * 24 * time.Hour

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
	if t.entries, err = parseTokens(b); err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

// maxTokens bounds the entries of a tokens file.
const maxTokens = 10000

// parseTokens decodes and checks the tokens file, so that a hand-edited
// file with a mistake stops the server with the entry named, rather than
// leaving a token that silently matches nothing or allows nothing.
func parseTokens(b []byte) ([]Entry, error) {
	var entries []Entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("not a JSON list of tokens: %w", err)
	}
	if len(entries) > maxTokens {
		return nil, fmt.Errorf("%d tokens, more than %d", len(entries), maxTokens)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if err := CheckName(e.Name); err != nil {
			return nil, fmt.Errorf("token %d: %w", i+1, err)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("token %q: listed twice", e.Name)
		}
		seen[e.Name] = true
		if err := CheckRole(e.Role); err != nil {
			return nil, fmt.Errorf("token %q: %w", e.Name, err)
		}
		if len(e.Hash) != 64 || strings.Trim(e.Hash, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("token %q: sha256 must be 64 lowercase hex digits", e.Name)
		}
	}
	return entries, nil
}

// Len returns the number of stored tokens.
func (t *Tokens) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.entries)
}

// MaxNameBytes bounds a token's name.
const MaxNameBytes = 64

// CheckName reports whether name is a valid token name: 1 to 64 letters,
// digits, '.', '_' or '-'.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameBytes {
		return fmt.Errorf("name must be 1 to %d characters", MaxNameBytes)
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("name %q: only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// Errors of Create and Remove. ErrInvalid is matched (errors.Is) by a bad
// name, role or expiry.
var (
	ErrInvalid   = errors.New("invalid token request")
	ErrExists    = errors.New("a token with this name exists")
	ErrNotFound  = errors.New("no token with this name")
	ErrLastAdmin = errors.New("the last admin token cannot be revoked: create another admin token first")
)

// Create makes a new token for name and role, expiring at expires (zero:
// never), stores its hash and returns the token (shown once). A name in use
// is refused with ErrExists.
func (t *Tokens) Create(name, role string, expires time.Time) (string, Entry, error) {
	for _, err := range []error{CheckName(name), CheckRole(role), CheckExpiry(expires, time.Now())} {
		if err != nil {
			return "", Entry{}, invalid{err}
		}
	}
	tok := NewToken()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.entries {
		if e.Name == name {
			return "", Entry{}, fmt.Errorf("token %q: %w", name, ErrExists)
		}
	}
	e := Entry{Name: name, Role: role, Hash: hashToken(tok), Created: time.Now().UTC()}
	if !expires.IsZero() {
		e.Expires = expires.UTC()
	}
	t.entries = append(t.entries, e)
	if err := t.save(); err != nil {
		t.entries = t.entries[:len(t.entries)-1]
		return "", Entry{}, err
	}
	return tok, e, nil
}

// invalid is an error in what the caller of Create asked for; it matches
// ErrInvalid and reads as the error it holds.
type invalid struct{ error }

func (invalid) Is(target error) bool { return target == ErrInvalid }
func (e invalid) Unwrap() error      { return e.error }

// CheckExpiry reports whether expires is a valid expiry at now: zero
// (never), or in the future and at most MaxTokenLifetime ahead.
func CheckExpiry(expires, now time.Time) error {
	switch {
	case expires.IsZero():
		return nil
	case !expires.After(now):
		return fmt.Errorf("expires %s is not in the future", expires.UTC().Format(time.RFC3339))
	case expires.Sub(now) > MaxTokenLifetime:
		return errors.New("expires is more than 10 years ahead")
	}
	return nil
}

// Remove revokes the token called name and returns its entry. The last
// admin token is kept (ErrLastAdmin): nobody could manage tokens after.
func (t *Tokens) Remove(name string) (Entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i := slices.IndexFunc(t.entries, func(e Entry) bool { return e.Name == name })
	if i < 0 {
		return Entry{}, fmt.Errorf("token %q: %w", name, ErrNotFound)
	}
	e := t.entries[i]
	if e.has(RoleAdmin) && !slices.ContainsFunc(t.entries, func(o Entry) bool { return o.Name != name && o.has(RoleAdmin) }) {
		return Entry{}, ErrLastAdmin
	}
	old := t.entries
	t.entries = slices.Delete(slices.Clone(t.entries), i, i+1)
	if err := t.save(); err != nil {
		t.entries = old
		return Entry{}, err
	}
	return e, nil
}

// List returns the stored entries, by name, without their hashes.
func (t *Tokens) List() []Entry {
	t.mu.RLock()
	out := slices.Clone(t.entries)
	t.mu.RUnlock()
	for i := range out {
		out[i].Hash = ""
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Add stores the hash of tok under name and role and saves the file.
// Adding a token whose name exists replaces that entry.
func (t *Tokens) Add(name, role, tok string) error {
	if len(tok) < 16 {
		return errors.New("token must be at least 16 characters")
	}
	if err := CheckRole(role); err != nil {
		return err
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

// Require wraps next so that it runs only for a request carrying a valid,
// unexpired bearer token whose role allows it (Entry.Allows); others get
// 401 (no, unknown or expired token) or 403 (not allowed) with a JSON
// error. onFail, when set,
// is called for each refused request (for metrics).
func (t *Tokens) Require(next http.Handler, onFail func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracked, _ := r.Context().Value(trackKey{}).(*Tracked)
		if tracked == nil {
			tracked = &Tracked{}
		}
		tok, ok := BearerToken(r)
		msg := "missing bearer token: send Authorization: Bearer <token>"
		if ok {
			e, valid := t.Check(tok)
			switch {
			case !valid:
				msg = "invalid token"
			case e.Expired(time.Now()):
				msg = fmt.Sprintf("token %q expired at %s", e.Name, e.Expires.UTC().Format(time.RFC3339))
				tracked.Entry = e
			case !e.Allows(r.Method, r.URL.Path):
				if onFail != nil {
					onFail()
				}
				msg = fmt.Sprintf("token %q (role %s) may not %s %s", e.Name, e.Role, r.Method, r.URL.Path)
				tracked.Entry, tracked.Refused = e, msg
				httperr.Msg(w, http.StatusForbidden, msg)
				return
			default:
				tracked.Entry = e
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), entryKey{}, e)))
				return
			}
		}
		tracked.Refused = msg
		if onFail != nil {
			onFail()
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		httperr.Msg(w, http.StatusUnauthorized, msg)
	})
}

type entryKey struct{}

type trackKey struct{}

// Tracked is what Require found about a request whose context came from
// Track: the token's entry when the token was known (allowed, refused or
// expired), and why the request was refused.
type Tracked struct {
	Entry   Entry
	Refused string
}

// Track returns a context in which Require records what it found, for a
// middleware outside the route's handler (the API's access log).
func Track(ctx context.Context) (context.Context, *Tracked) {
	t := &Tracked{}
	return context.WithValue(ctx, trackKey{}, t), t
}

// FromContext returns the token entry of a request that passed Require.
func FromContext(ctx context.Context) (Entry, bool) {
	e, ok := ctx.Value(entryKey{}).(Entry)
	return e, ok
}
