package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/server/servertest"
)

// TestTokenRoles creates an ingest and a read token through the API and
// checks what each may do, that both changes are in the log, and that a
// revoked token stops working.
func TestTokenRoles(t *testing.T) {
	const testToken = "vgl_token-roles-test-0123456789"
	dir := filepath.Join(t.TempDir(), "data")
	v := servertest.Start(t, dir, "127.0.0.1:0", testToken)
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		return v.Do(t, method, path, token, body)
	}
	create := func(name, role string) string {
		t.Helper()
		code, body := call("POST", "/api/v1/tokens", testToken, `{"name":"`+name+`","role":"`+role+`"}`)
		if code != 201 {
			t.Fatalf("create %s: %d %s", name, code, body)
		}
		var v struct{ Token, Role string }
		json.Unmarshal([]byte(body), &v)
		if v.Role != role || !strings.HasPrefix(v.Token, "vgl_") {
			t.Fatalf("create %s: %s", name, body)
		}
		return v.Token
	}
	ingest := create("shop-shipper", "ingest")
	read := create("grafana", "read")
	respond := create("on-call", "respond")

	event := `{"event":{"id":"r-1","action":"authn_login_fail"},"message":"login failed"}` + "\n"
	for _, c := range []struct {
		method, path, token, body string
		want                      int
	}{
		{"POST", "/api/v1/events", ingest, event, 200},
		{"GET", "/api/v1/events", ingest, "", 403},
		{"GET", "/metrics", ingest, "", 403},
		{"POST", "/api/v1/decisions", ingest, `{"scope":"ip","value":"203.0.113.5"}`, 403},
		{"GET", "/api/v1/events", read, "", 200},
		{"GET", "/api/v1/decisions", read, "", 200},
		{"GET", "/metrics", read, "", 200},
		{"POST", "/api/v1/events", read, event, 403},
		{"POST", "/api/v1/decisions", read, `{"scope":"ip","value":"203.0.113.5"}`, 403},
		{"GET", "/api/v1/tokens", read, "", 403},
		{"POST", "/api/v1/tokens", read, `{"name":"x","role":"admin"}`, 403},
		{"POST", "/api/v1/tokens", testToken, `{"name":"grafana","role":"read"}`, 409},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x","role":"root"}`, 400},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x y","role":"read"}`, 400},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x","role":"read","extra":1}`, 400},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x","role":"read","expires":"2020-01-01T00:00:00Z"}`, 400},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x","role":"read","expires":"soon"}`, 400},
		{"POST", "/api/v1/tokens", testToken, `{"name":"x","role":"` + strings.Repeat("r", 5000) + `"}`, 413},
		{"POST", "/api/v1/decisions", respond, `{"type":"ban","scope":"ip","value":"203.0.113.5","ttl":"1h"}`, 201},
		{"DELETE", "/api/v1/decisions?scope=ip&value=203.0.113.5", respond, "", 200},
		{"POST", "/api/v1/silences", respond, `{"matchers":["rule=\"scanner_404\""],"duration":"2h","createdBy":"on-call","comment":"pentest"}`, 200},
		{"GET", "/api/v1/events", respond, "", 200},
		{"POST", "/api/v1/holds", respond, `{"id":"h","query":"user.name = \"x\"","reason":"r"}`, 403},
		{"POST", "/api/v1/ledger/rotate", respond, "", 403},
		{"POST", "/api/v1/events", respond, event, 403},
		{"DELETE", "/api/v1/tokens/admin", testToken, "", 409},
		{"DELETE", "/api/v1/tokens/nobody", testToken, "", 404},
	} {
		code, body := call(c.method, c.path, c.token, c.body)
		if code != c.want {
			who := "admin"
			if c.token == ingest {
				who = "ingest"
			} else if c.token == read {
				who = "read"
			} else if c.token == respond {
				who = "respond"
			}
			t.Errorf("%s %s with the %s token: %d %s, want %d", c.method, c.path, who, code, body, c.want)
		}
	}
	code, body := call("GET", "/api/v1/tokens", testToken, "")
	if code != 200 || !strings.Contains(body, `"name":"shop-shipper","role":"ingest"`) || strings.Contains(body, "sha256") || strings.Contains(body, ingest) {
		t.Errorf("list: %d %s", code, body)
	}
	if code, body := call("DELETE", "/api/v1/tokens/shop-shipper", testToken, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code, _ := call("POST", "/api/v1/events", ingest, event); code != 401 {
		t.Errorf("revoked token: %d, want 401", code)
	}
	// Both changes are in the log, by the admin token; no token is.
	code, found := call("GET", "/api/v1/events?q=token&limit=10", testToken, "")
	for _, want := range []string{"authn_token_created", "authn_token_revoked", "token shop-shipper created with role ingest by admin"} {
		if code != 200 || !strings.Contains(found, want) {
			t.Errorf("log lacks %q: %d %s", want, code, found)
		}
	}
	v.Stop()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, tok := range []string{ingest, read} {
			if bytes.Contains(data, []byte(tok)) || bytes.Contains(data, []byte(tok[4:])) {
				t.Errorf("%s holds a token", p)
			}
		}
		return nil
	})
}
