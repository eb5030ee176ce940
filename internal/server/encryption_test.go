package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/server"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

// TestEncryptedFieldsNeverInTheDataDirectory sends events whose bodies and
// headers hold secrets to a Vigil with encryption at rest, reads them back
// in clear through the API (before and after a key rotation), stops Vigil
// and scans every file of its data directory for the secrets.
func TestEncryptedFieldsNeverInTheDataDirectory(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "master.key")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := config.Default()
	if err := config.Parse(fmt.Appendf(nil, `
listen: 127.0.0.1:0
data_dir: %s
encryption:
  enabled: true
  master_key_file: %s
`, dataDir, keyFile), &cfg); err != nil {
		t.Fatal(err)
	}
	const token = "vgl_encryption-test-token"
	v := servertest.StartConfig(t, cfg, token)
	c := client.New(v.URL, token)
	secrets := []string{"body-secret-7f3a9", "header-secret-c41d", "response-secret-e52b", "rotated-secret-91aa"}
	send := func(i int, body, header, resp string) {
		t.Helper()
		line := fmt.Sprintf(`{"event":{"id":"enc-%d","action":"http_request"},"url":{"path":"/login"},"http":{"request":{"body":{"content":"user=alice&note=%s"},"headers":{"x-api-key":"%s"}},"response":{"body":{"content":"%s"}}},"message":"a request"}`,
			i, body, header, resp)
		if _, err := c.Send(context.Background(), []byte(line+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	send(1, secrets[0], secrets[1], secrets[2])
	rotate, _ := http.NewRequest("POST", v.URL+"/api/v1/keys/rotate", nil)
	rotate.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(rotate)
	if err != nil {
		t.Fatal(err)
	}
	rotated, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || bytes.Count(rotated, []byte(`"fingerprint"`)) != 2 {
		t.Fatalf("rotate: %d %s", resp.StatusCode, rotated)
	}
	send(2, secrets[3], "h", "r")

	// Both keys' fingerprints are in the log.
	for _, action := range []string{"vigil_key_created", "vigil_key_rotated"} {
		res, err := c.Search(context.Background(), url.Values{"action": {action}})
		if err != nil || len(res.Events) != 1 || !strings.Contains(string(res.Events[0].Event), `"fingerprint"`) {
			t.Errorf("%s: %v, %v", action, res.Events, err)
		}
	}

	// In clear through the API, both keys.
	req, _ := http.NewRequest("GET", v.URL+"/api/v1/events?path=/login", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range secrets {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("search answer lacks %q in clear: %s", s, body)
		}
	}
	// A value that poses as an envelope is refused.
	_, err = c.Send(context.Background(), []byte(`{"http":{"request":{"body":{"content":"x"}}},"message":"vigil:enc:v1:forged"}`+"\n"))
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Errorf("a forged envelope: %v, want a 400", err)
	}

	v.Stop()
	filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range append(secrets, base64.StdEncoding.EncodeToString(key)) {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds %q in clear", path, s)
			}
		}
		return nil
	})

	// With keys.json lost, Vigil refuses to start rather than make a new
	// keyring that could not open the sealed events.
	if err := os.Rename(filepath.Join(dataDir, "keys.json"), filepath.Join(t.TempDir(), "keys.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := server.New(cfg, server.Options{AdminToken: token, Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "keys.json is missing") {
		t.Errorf("start without keys.json: %v", err)
	}
}

// TestShredAndChangeMasterKey shreds an old data key (its fields stay
// sealed for good, the rest reads in clear), changes the master key
// through the API, and starts Vigil again: the old master key no longer
// opens the keyring, the new one does.
func TestShredAndChangeMasterKey(t *testing.T) {
	dir := t.TempDir()
	writeKey := func(name string, mode os.FileMode) string {
		t.Helper()
		key := make([]byte, 32)
		rand.Read(key)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	oldKey, newKey := writeKey("old.key", 0o600), writeKey("new.key", 0o600)
	dataDir := filepath.Join(dir, "data")
	cfgFor := func(keyFile string) config.Config {
		cfg := config.Default()
		if err := config.Parse(fmt.Appendf(nil, "listen: 127.0.0.1:0\ndata_dir: %s\nencryption:\n  enabled: true\n  master_key_file: %s\n", dataDir, keyFile), &cfg); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	const token = "vgl_shred-test-token-0123456789"
	v := servertest.StartConfig(t, cfgFor(oldKey), token)
	c := client.New(v.URL, token)
	call := func(method, path, body string) (int, string) {
		t.Helper()
		return v.Do(t, method, path, token, body)
	}
	send := func(id, secret string) {
		t.Helper()
		line := fmt.Sprintf(`{"event":{"id":%q,"action":"http_request"},"url":{"path":"/pay"},"http":{"request":{"body":{"content":"card=%s"}}},"message":"payment"}`, id, secret)
		if _, err := c.Send(context.Background(), []byte(line+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	send("s-1", "first-secret-3b7")
	var first string
	if code, body := call("GET", "/api/v1/keys", ""); code == 200 {
		first = body[strings.Index(body, `"id":"`)+6:][:12]
	}
	if code, body := call("POST", "/api/v1/keys/rotate", ""); code != 200 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	send("s-2", "second-secret-9c1")
	_, keys := call("GET", "/api/v1/keys", "")
	current := keys[strings.Index(keys, `"current":"`)+11:][:12]

	for _, c := range []struct {
		path, body string
		want       int
	}{
		{"/api/v1/keys/" + first + "/shred", `{}`, 400},
		{"/api/v1/keys/" + first + "/shred", `{"confirm":"` + current + `"}`, 400},
		{"/api/v1/keys/" + current + "/shred", `{"confirm":"` + current + `"}`, 409},
		{"/api/v1/keys/000000000000/shred", `{"confirm":"000000000000"}`, 404},
		{"/api/v1/keys/master", `{"master_key_file":"new.key"}`, 400},
		{"/api/v1/keys/master", `{"master_key_file":"` + writeKey("open.key", 0o644) + `"}`, 400},
		{"/api/v1/keys/master", `{"master_key_file":"` + filepath.Join(dataDir, "tokens.json") + `"}`, 400},
		{"/api/v1/keys/master", `{"master_key_file":"` + dir + `/nope.key"}`, 400},
	} {
		if code, body := call("POST", c.path, c.body); code != c.want {
			t.Errorf("POST %s %s: %d %s, want %d", c.path, c.body, code, body, c.want)
		}
	}
	if code, body := call("POST", "/api/v1/keys/"+first+"/shred", `{"confirm":"`+first+`"}`); code != 200 || strings.Contains(body, first) {
		t.Fatalf("shred: %d %s", code, body)
	}
	// The shredded key's field stays sealed; the other reads in clear.
	_, found := call("GET", "/api/v1/events?path=/pay", "")
	if strings.Contains(found, "first-secret-3b7") || !strings.Contains(found, "vigil:enc:v1:"+first) || !strings.Contains(found, "second-secret-9c1") {
		t.Errorf("after shredding %s: %s", first, found)
	}
	if code, body := call("POST", "/api/v1/keys/master", `{"master_key_file":"`+newKey+`"}`); code != 200 || !strings.Contains(body, "before the next start") {
		t.Fatalf("change master key: %d %s", code, body)
	}
	for _, action := range []string{"vigil_key_shredded", "vigil_master_key_changed"} {
		res, err := c.Search(context.Background(), url.Values{"action": {action}})
		if err != nil || len(res.Events) != 1 {
			t.Errorf("%s in the log: %v, %v", action, res.Events, err)
		}
	}
	v.Stop()

	if _, err := server.New(cfgFor(oldKey), server.Options{AdminToken: token, Out: io.Discard}); err == nil || !strings.Contains(err.Error(), "wrong master key") {
		t.Errorf("start with the old master key: %v", err)
	}
	v = servertest.StartConfig(t, cfgFor(newKey), token)
	c = client.New(v.URL, token)
	res, err := c.Search(context.Background(), url.Values{"path": {"/pay"}})
	if err != nil || len(res.Events) != 2 || !strings.Contains(string(res.Events[0].Event)+string(res.Events[1].Event), "second-secret-9c1") {
		t.Errorf("after a restart with the new master key: %v, %v", res.Events, err)
	}
}
