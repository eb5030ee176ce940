package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

const cliToken = "vgl_cli-test-token-0123456789"

func startServer(t *testing.T) string {
	t.Helper()
	v := servertest.Start(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", cliToken)
	t.Setenv("VIGIL_URL", v.URL)
	t.Setenv("VIGIL_TOKEN", cliToken)
	return v.URL
}

func vigil(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestCLISendSearch(t *testing.T) {
	startServer(t)
	file := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(file, []byte(`{"event":{"id":"a1","action":"authn_login_fail"},"source":{"ip":"203.0.113.50"},"user":{"name":"carol"},"message":"login failed for carol: bad password"}
{"event":{"id":"a2","action":"authn_login_success"},"source":{"ip":"203.0.113.50"},"user":{"name":"carol"},"message":"login ok for carol"}
{"event":{"id":"a3","action":"sys_config_change"},"user":{"name":"dave"},"message":"dave turned off mfa.required"}
`), 0o600)
	out, errs, code := vigil(t, "send", file)
	if code != 0 || !strings.Contains(out, "3 stored") {
		t.Fatalf("send: %d %q %q", code, out, errs)
	}
	checks := []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"search", "--ip", "203.0.113.0/24"}, []string{"carol", "authn_login_fail", "authn_login_success"}, []string{"dave"}},
		{[]string{"search", "--user", "dave"}, []string{"sys_config_change"}, []string{"carol"}},
		{[]string{"search", "password", "--limit", "5"}, []string{"bad password"}, []string{"login ok"}},
		{[]string{"search", "--count", "--user", "carol"}, []string{"2\n"}, nil},
		{[]string{"search", "--top", "user.name"}, []string{"carol", "2"}, nil},
		{[]string{"search", "--json", "--action", "sys_config_change"}, []string{`"seq":3`, `"id":"a3"`}, nil},
		{[]string{"tail", "-n", "1"}, []string{"dave"}, []string{"carol"}},
	}
	for _, c := range checks {
		out, errs, code := vigil(t, c.args...)
		if code != 0 {
			t.Errorf("%v: exit %d: %s", c.args, code, errs)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
		for _, w := range c.not {
			if strings.Contains(out, w) {
				t.Errorf("%v: output has %q:\n%s", c.args, w, out)
			}
		}
	}
}

func TestCLIErrors(t *testing.T) {
	startServer(t)
	bad := filepath.Join(t.TempDir(), "bad.ndjson")
	os.WriteFile(bad, []byte("{\"message\":\"ok\"}\n\n{\"message\": nope}\n"), 0o600)
	_, errs, code := vigil(t, "send", bad)
	if code != 1 || !strings.Contains(errs, "bad.ndjson:3:") {
		t.Errorf("send of a bad line: exit %d, %q: want the file and line 3", code, errs)
	}
	if _, errs, code := vigil(t, "search", "--nope"); code != 2 || !strings.Contains(errs, "nope") {
		t.Errorf("unknown flag: exit %d %q", code, errs)
	}
	if _, errs, code := vigil(t, "search", "--where", "colour=red"); code != 1 || !strings.Contains(errs, `unknown parameter "colour"`) {
		t.Errorf("unknown field: exit %d %q", code, errs)
	}
	if _, _, code := vigil(t, "frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	t.Setenv("VIGIL_TOKEN", "vgl_not-the-right-token-xxxxxx")
	if _, errs, code := vigil(t, "search"); code != 1 || !strings.Contains(errs, "401") {
		t.Errorf("wrong token: exit %d %q", code, errs)
	}
	for _, cmd := range []string{"serve", "send", "search", "tail", "demo"} {
		if _, errs, code := vigil(t, cmd, "--help"); code != 0 || !strings.Contains(errs, "Usage: vigil "+cmd) {
			t.Errorf("%s --help: exit %d %q", cmd, code, errs)
		}
	}
}

func TestCLIDemo(t *testing.T) {
	startServer(t)
	out, errs, code := vigil(t, "demo", "--seed", "7")
	if code != 0 || !strings.Contains(out, "stored") {
		t.Fatalf("demo: %d %q %q", code, out, errs)
	}
	out, _, _ = vigil(t, "search", "--action", "authn_login_fail", "--top", "source.ip", "-n", "1")
	if !strings.Contains(out, "203.0.113.66") {
		t.Errorf("brute-force source is not the top failing IP:\n%s", out)
	}
	out, _, _ = vigil(t, "search", "--path", "/.env", "--count")
	if strings.TrimSpace(out) == "0" {
		t.Errorf("no scanner probe of /.env")
	}
}

func TestCLIToken(t *testing.T) {
	startServer(t)
	out, errs, code := vigil(t, "token", "create", "shop-shipper", "--role", "ingest")
	tok := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(tok, "vgl_") || !strings.Contains(errs, "shown once") {
		t.Fatalf("create: %d %q %q", code, out, errs)
	}
	// The ingest token sends events and cannot search.
	file := filepath.Join(t.TempDir(), "e.ndjson")
	os.WriteFile(file, []byte(`{"event":{"id":"t1"},"message":"hello"}`+"\n"), 0o600)
	if out, errs, code := vigil(t, "send", "--token", tok, file); code != 0 {
		t.Errorf("send with the ingest token: %d %q %q", code, out, errs)
	}
	if _, errs, code := vigil(t, "search", "--token", tok, "hello"); code == 0 || !strings.Contains(errs, "may not GET") {
		t.Errorf("search with the ingest token: %d %q", code, errs)
	}
	if _, errs, code := vigil(t, "token", "create", "pentest", "--role", "read", "--expires", "7d"); code != 0 || !strings.Contains(errs, "expiring "+time.Now().Add(7*24*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("create with --expires: %d %q", code, errs)
	}
	if _, _, code := vigil(t, "token", "create", "y", "--role", "read", "--expires", "someday"); code != 2 {
		t.Errorf("--expires someday: exit %d, want 2", code)
	}
	out, errs, code = vigil(t, "token", "list")
	if code != 0 || !strings.Contains(out, "shop-shipper") || !strings.Contains(out, "ingest") || strings.Contains(out, tok) ||
		!strings.Contains(out, "EXPIRES") || !strings.Contains(out, time.Now().Add(7*24*time.Hour).UTC().Format("2006-01-02")) {
		t.Errorf("list: %d %q %q", code, out, errs)
	}
	if _, errs, code := vigil(t, "token", "create", "x", "--role", "root"); code == 0 || !strings.Contains(errs, "unknown role") {
		t.Errorf("bad role: %d %q", code, errs)
	}
	if _, _, code := vigil(t, "token", "create", "x"); code != 2 {
		t.Errorf("create without --role: exit %d, want 2", code)
	}
	if out, errs, code := vigil(t, "token", "revoke", "shop-shipper"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: %d %q %q", code, out, errs)
	}
	if _, errs, code := vigil(t, "token", "revoke", "admin"); code == 0 || !strings.Contains(errs, "last admin") {
		t.Errorf("revoke the last admin: %d %q", code, errs)
	}
	if _, _, code := vigil(t, "send", "--token", tok, file); code == 0 {
		t.Error("send with a revoked token succeeded")
	}
}

func TestCLIKeys(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string) string {
		key := make([]byte, 32)
		rand.Read(key)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := config.Default()
	if err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nencryption:\n  enabled: true\n  master_key_file: %s\n",
		filepath.Join(dir, "data"), writeKey("old.key")), &cfg); err != nil {
		t.Fatal(err)
	}
	v := servertest.StartConfig(t, cfg, cliToken)
	t.Setenv("VIGIL_URL", v.URL)
	t.Setenv("VIGIL_TOKEN", cliToken)
	out, errs, code := vigil(t, "keys")
	if code != 0 || !strings.Contains(out, "FINGERPRINT") {
		t.Fatalf("keys: %d %q %q", code, out, errs)
	}
	first := strings.Fields(strings.Split(out, "\n")[1])[0]
	if out, errs, code := vigil(t, "keys", "rotate"); code != 0 || !strings.Contains(out, "new events are encrypted with key") {
		t.Fatalf("rotate: %d %q %q", code, out, errs)
	}
	if _, errs, code := vigil(t, "keys", "shred", first); code != 2 || !strings.Contains(errs, "--yes") {
		t.Errorf("shred without --yes: %d %q", code, errs)
	}
	if out, errs, code := vigil(t, "keys", "shred", first, "--yes"); code != 0 || !strings.Contains(out, "shredded") || strings.Contains(out, first+"  ") {
		t.Errorf("shred: %d %q %q", code, out, errs)
	}
	if _, errs, code := vigil(t, "keys", "change-master"); code != 2 || !strings.Contains(errs, "--new-key-file") {
		t.Errorf("change-master without a file: %d %q", code, errs)
	}
	if out, errs, code := vigil(t, "keys", "change-master", "--new-key-file", writeKey("new.key")); code != 0 || !strings.Contains(out, "master_key_file") {
		t.Errorf("change-master: %d %q %q", code, out, errs)
	}
}

func TestCLIHolds(t *testing.T) {
	startServer(t)
	if out, errs, code := vigil(t, "holds", "add", "case-43", "--query", `source.ip in 203.0.113.0/24`, "--reason", "police request", "--until", "2030-01-01"); code != 0 || !strings.Contains(out, "case-43 placed") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if out, errs, code := vigil(t, "holds", "add", "inc-7", "--incident", "INC-7"); code != 0 {
		t.Fatalf("add incident: %d %q %q", code, out, errs)
	}
	out, errs, code := vigil(t, "holds", "list")
	for _, want := range []string{"case-43", "203.0.113.0/24", "2030-01-01T00:00:00Z", "police request", "inc-7", "incident INC-7"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("list lacks %q: %d %q %q", want, code, out, errs)
		}
	}
	for _, bad := range [][]string{
		{"holds", "add", "x"},
		{"holds", "add", "x", "--query", "a", "--incident", "b"},
		{"holds", "add", "x", "--incident", "b", "--until", "soon"},
	} {
		if _, _, code := vigil(t, bad...); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
	if _, errs, code := vigil(t, "holds", "add", "x", "--query", "user.name = "); code != 1 || !strings.Contains(errs, "400") {
		t.Errorf("bad query: %d %q", code, errs)
	}
	if out, errs, code := vigil(t, "holds", "remove", "case-43"); code != 0 || !strings.Contains(out, "lifted") {
		t.Errorf("remove: %d %q %q", code, out, errs)
	}
	if out, _, _ := vigil(t, "holds", "list"); strings.Contains(out, "case-43") {
		t.Errorf("lifted hold still listed: %q", out)
	}
	if _, _, code := vigil(t, "holds", "remove", "case-43"); code != 1 {
		t.Errorf("removing an unknown hold: exit %d, want 1", code)
	}
}

// TestCLILedgerKeyRotation: vigil pubkey rotate replaces the server's
// checkpoint key; verify with the old public key still passes, through the
// server's rotation statement; the rotation is in the log; a read token
// cannot rotate.
func TestCLILedgerKeyRotation(t *testing.T) {
	url := startServer(t)
	send := func(ids ...string) {
		t.Helper()
		var b strings.Builder
		for _, id := range ids {
			fmt.Fprintf(&b, `{"event":{"id":%q,"action":"authn_login_fail"},"user":{"name":"carol"},"message":"login failed"}`+"\n", id)
		}
		file := filepath.Join(t.TempDir(), "e.ndjson")
		os.WriteFile(file, []byte(b.String()), 0o600)
		if out, errs, code := vigil(t, "send", file); code != 0 {
			t.Fatalf("send: %d %q %q", code, out, errs)
		}
	}
	send("r1", "r2", "r3")
	out, errs, code := vigil(t, "pubkey", "--server", url)
	old := strings.TrimSpace(out)
	if code != 0 || old == "" {
		t.Fatalf("pubkey: %d %q %q", code, out, errs)
	}
	out, errs, code = vigil(t, "pubkey", "rotate")
	rotated := strings.TrimSpace(out)
	if code != 0 || rotated == old || !strings.HasPrefix(rotated, strings.SplitN(old, "+", 2)[0]+"+") || !strings.Contains(errs, "rotated at") {
		t.Fatalf("pubkey rotate: %d %q %q", code, out, errs)
	}
	if out, _, _ := vigil(t, "pubkey", "--server", url); strings.TrimSpace(out) != rotated {
		t.Fatalf("the server's key after the rotation: %q, want %q", out, rotated)
	}
	send("r4", "r5")
	newID := strings.Join(strings.SplitN(rotated, "+", 3)[:2], "+")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, errs, code = vigil(t, "verify", "--server", url, "--pubkey", old)
		if code == 0 && strings.Contains(out, "by "+newID) && strings.Contains(out, "rotated 1 time(s)") && !strings.Contains(out, "of 0 events") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify with the old key after the rotation: %d %q %q", code, out, errs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, errs, code = vigil(t, "search", "--action", "vigil_ledger_key_rotated", "--json")
	if code != 0 || !strings.Contains(out, rotated) || !strings.Contains(out, old) {
		t.Errorf("the rotation in the log: %d %q %q", code, out, errs)
	}
	out, _, code = vigil(t, "token", "create", "auditor", "--role", "read")
	if code != 0 {
		t.Fatal("token create")
	}
	if _, errs, code := vigil(t, "pubkey", "rotate", "--token", strings.TrimSpace(out)); code == 0 || !strings.Contains(errs, "403") && !strings.Contains(errs, "may not") {
		t.Errorf("rotate with a read token: %d %q", code, errs)
	}
}
