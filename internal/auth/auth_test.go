package auth

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokensStoredHashed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tokens, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := NewToken()
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) < 40 {
		t.Fatalf("token %q", tok)
	}
	if err := tokens.Add("admin", "admin", tok); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[len(TokenPrefix):])) {
		t.Fatal("token file holds the token in plaintext")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", fi.Mode().Perm())
	}
	again, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := again.Check(tok); !ok || e.Name != "admin" {
		t.Errorf("reloaded token not accepted")
	}
	if _, ok := again.Check(tok + "x"); ok {
		t.Error("wrong token accepted")
	}
	if err := again.Add("short", "admin", "abc"); err == nil {
		t.Error("short token accepted")
	}
}

func TestRequire(t *testing.T) {
	tokens, _ := Load(filepath.Join(t.TempDir(), "t.json"))
	tok := NewToken()
	tokens.Add("a", "admin", tok)
	fails := 0
	h := tokens.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), func() { fails++ })
	for _, c := range []struct {
		header string
		want   int
	}{{"", 401}, {"Bearer nope-nope-nope-nope", 401}, {"Basic " + tok, 401}, {"Bearer " + tok, 204}, {"bearer " + tok, 204}} {
		r := httptest.NewRequest("GET", "/", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%q: %d, want %d", c.header, w.Code, c.want)
		}
	}
	if fails != 3 {
		t.Errorf("onFail called %d times, want 3", fails)
	}
}

func TestRoles(t *testing.T) {
	for _, c := range []struct {
		role, method, path string
		want               bool
	}{
		{"admin", "DELETE", "/api/v1/decisions/x", true},
		{"admin", "POST", "/api/v1/tokens", true},
		{"ingest", "POST", "/api/v1/events", true},
		{"ingest", "GET", "/api/v1/events", false},
		{"ingest", "POST", "/api/v1/decisions", false},
		{"ingest", "GET", "/metrics", false},
		{"read", "GET", "/api/v1/events", true},
		{"read", "HEAD", "/api/v1/alerts", true},
		{"read", "GET", "/api/v1/decisions/stream", true},
		{"read", "POST", "/api/v1/events", false},
		{"read", "DELETE", "/api/v1/decisions/x", false},
		{"read", "GET", "/api/v1/tokens", false},
		{"read", "GET", "/api/v1/tokens/admin", false},
		{"read", "GET", "/debug/pprof/", false},
		{"ingest,read", "POST", "/api/v1/events", true},
		{"ingest,read", "GET", "/api/v1/decisions/stream", true},
		{"ingest,read", "POST", "/api/v1/alerts/x/ack", false},
		{"respond", "GET", "/api/v1/events", true},
		{"respond", "POST", "/api/v1/silences", true},
		{"respond", "DELETE", "/api/v1/silences/abc", true},
		{"respond", "POST", "/api/v1/decisions", true},
		{"respond", "DELETE", "/api/v1/decisions", true},
		{"respond", "DELETE", "/api/v1/decisions/x", true},
		{"respond", "POST", "/api/v1/events", false},
		{"respond", "POST", "/api/v1/holds", false},
		{"respond", "POST", "/api/v1/purge", false},
		{"respond", "POST", "/api/v1/keys/rotate", false},
		{"respond", "POST", "/api/v1/ledger/rotate", false},
		{"respond", "POST", "/api/v1/tokens", false},
		{"respond", "GET", "/api/v1/tokens", false},
		{"respond", "POST", "/api/v1/silencesx", false},
	} {
		if got := (Entry{Name: "t", Role: c.role}).Allows(c.method, c.path); got != c.want {
			t.Errorf("role %s: %s %s allowed = %v, want %v", c.role, c.method, c.path, got, c.want)
		}
	}
	for _, bad := range []string{"", "root", "read,read", "read,", "Admin"} {
		if CheckRole(bad) == nil {
			t.Errorf("role %q accepted", bad)
		}
	}
}

func TestCreateRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.json")
	tokens, _ := Load(path)
	if err := tokens.Add("admin", "admin", NewToken()); err != nil {
		t.Fatal(err)
	}
	tok, e, err := tokens.Create("shop-shipper", "ingest", time.Time{})
	if err != nil || e.Role != "ingest" || !strings.HasPrefix(tok, TokenPrefix) {
		t.Fatalf("Create = %q, %+v, %v", tok, e, err)
	}
	if _, _, err := tokens.Create("shop-shipper", "read", time.Time{}); !errors.Is(err, ErrExists) {
		t.Errorf("second token of the same name: %v", err)
	}
	for _, c := range [][2]string{{"", "read"}, {"a b", "read"}, {strings.Repeat("x", 65), "read"}, {"ok", "root"}} {
		if _, _, err := tokens.Create(c[0], c[1], time.Time{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Create(%q, %q): %v, want ErrInvalid", c[0], c[1], err)
		}
	}
	again, _ := Load(path)
	if got, ok := again.Check(tok); !ok || got.Name != "shop-shipper" || got.Role != "ingest" {
		t.Fatalf("created token not accepted after reload: %+v %v", got, ok)
	}
	for _, e := range again.List() {
		if e.Hash != "" {
			t.Errorf("List shows the hash of %s", e.Name)
		}
	}
	if _, err := again.Remove("admin"); !errors.Is(err, ErrLastAdmin) {
		t.Errorf("removing the last admin token: %v", err)
	}
	if _, err := again.Remove("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removing an unknown token: %v", err)
	}
	if _, err := again.Remove("shop-shipper"); err != nil {
		t.Fatal(err)
	}
	third, _ := Load(path)
	if _, ok := third.Check(tok); ok {
		t.Error("revoked token still accepted after reload")
	}
}

func TestRequireRole(t *testing.T) {
	tokens, _ := Load(filepath.Join(t.TempDir(), "t.json"))
	tok, _, _ := tokens.Create("reader", "read", time.Time{})
	h := tokens.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), nil)
	for method, want := range map[string]int{"GET": 204, "POST": 403} {
		r := httptest.NewRequest(method, "/api/v1/events", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("%s with a read token: %d, want %d", method, w.Code, want)
		}
		if want == 403 && !strings.Contains(w.Body.String(), `may not POST /api/v1/events`) {
			t.Errorf("403 body %q", w.Body.String())
		}
	}
}

func TestExpiry(t *testing.T) {
	tokens, _ := Load(filepath.Join(t.TempDir(), "t.json"))
	if _, _, err := tokens.Create("old", "read", time.Now().Add(-time.Minute)); err == nil {
		t.Error("a token expiring in the past was made")
	}
	if _, _, err := tokens.Create("far", "read", time.Now().Add(11*365*24*time.Hour)); err == nil {
		t.Error("a token expiring in 11 years was made")
	}
	tok, e, err := tokens.Create("short", "read", time.Now().Add(time.Hour))
	if err != nil || e.Expires.IsZero() {
		t.Fatalf("Create: %+v %v", e, err)
	}
	h := tokens.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }), nil)
	get := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/api/v1/events", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := get(); w.Code != 204 {
		t.Fatalf("before expiry: %d", w.Code)
	}
	// Expired: as if an hour had passed.
	tokens.mu.Lock()
	tokens.entries[0].Expires = time.Now().Add(-time.Second)
	tokens.mu.Unlock()
	if w := get(); w.Code != 401 || !strings.Contains(w.Body.String(), `token \"short\" expired at`) {
		t.Errorf("after expiry: %d %s", w.Code, w.Body.String())
	}
}

// TestLoadRefusesBadEntries: a hand-edited tokens file with a mistake stops
// the server with the entry named.
func TestLoadRefusesBadEntries(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, c := range []struct{ file, want string }{
		{`{"name":"admin"}`, "not a JSON list"},
		{`[{"name":"admin","role":"root","sha256":"` + hash + `"}]`, `unknown role "root"`},
		{`[{"name":"admin","role":"","sha256":"` + hash + `"}]`, "empty role"},
		{`[{"name":"a b","role":"admin","sha256":"` + hash + `"}]`, "token 1"},
		{`[{"name":"admin","role":"admin","sha256":"xyz"}]`, "64 lowercase hex"},
		{`[{"name":"x","role":"read","sha256":"` + hash + `"},{"name":"x","role":"admin","sha256":"` + hash + `"}]`, "listed twice"},
	} {
		path := filepath.Join(t.TempDir(), "tokens.json")
		os.WriteFile(path, []byte(c.file), 0o600)
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.file, err, c.want)
		}
	}
}

// FuzzTokens: a tokens file and an Authorization header from anywhere never
// panic, and what parseTokens accepts is entries Check and Allows can use.
func FuzzTokens(f *testing.F) {
	hash := hashToken("vgl_seed")
	f.Add(`[{"name":"admin","role":"admin","sha256":"`+hash+`","created":"2026-11-23T10:00:00Z"}]`, "Bearer vgl_seed")
	f.Add(`[{"name":"shop","role":"ingest,read","sha256":"`+hash+`","expires":"2026-12-01T00:00:00Z"}]`, "bearer   vgl_seed  ")
	f.Add(`[]`, "Basic dXNlcjpwYXNz")
	f.Add(`[{"name":"x","role":"read,read","sha256":""}]`, "Bearer")
	f.Fuzz(func(t *testing.T, file, header string) {
		entries, err := parseTokens([]byte(file))
		if err == nil {
			for _, e := range entries {
				if CheckName(e.Name) != nil || CheckRole(e.Role) != nil || len(e.Hash) != 64 {
					t.Fatalf("accepted %+v", e)
				}
			}
		}
		r := httptest.NewRequest("GET", "/api/v1/events", nil)
		r.Header.Set("Authorization", header)
		tok, ok := BearerToken(r)
		if ok && (tok == "" || tok != strings.TrimSpace(tok)) {
			t.Fatalf("token %q from %q", tok, header)
		}
		ts := &Tokens{entries: entries}
		if e, found := ts.Check(tok); found && e.Hash != hashToken(tok) {
			t.Fatalf("matched %+v for %q", e, tok)
		}
	})
}
