package auth

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
