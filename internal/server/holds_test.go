package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilsec/vigil/internal/client"
	"github.com/vigilsec/vigil/internal/server/servertest"
)

// TestHoldChangesAreAudited: placing and lifting a legal hold through the
// API each leave an audit event in the log, naming who did it.
func TestHoldChangesAreAudited(t *testing.T) {
	const token = "vgl_holds-test-token"
	v := servertest.Start(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", token)
	do := func(method, path, body string) int {
		req, _ := http.NewRequest(method, v.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do("POST", "/api/v1/holds", `{"id":"case-9","query":"user.name = \"mallory\"","reason":"litigation"}`); code != http.StatusCreated {
		t.Fatalf("place hold: %d", code)
	}
	if code := do("DELETE", "/api/v1/holds/case-9", ""); code != http.StatusOK {
		t.Fatalf("lift hold: %d", code)
	}
	c := client.New(v.URL, token)
	for _, action := range []string{"vigil_hold_added", "vigil_hold_removed"} {
		res, err := c.Search(context.Background(), url.Values{"action": {action}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 1 || !strings.Contains(string(res.Events[0].Event), `"case-9"`) || !strings.Contains(string(res.Events[0].Event), `"admin"`) {
			t.Errorf("%s: %d events %v", action, len(res.Events), res.Events)
		}
	}
}

// TestSilenceChangesAreAudited: making and expiring a silence through the
// API each leave an audit event naming the token, whatever createdBy says.
func TestSilenceChangesAreAudited(t *testing.T) {
	const token = "vgl_silence-test-token"
	v := servertest.Start(t, filepath.Join(t.TempDir(), "data"), "127.0.0.1:0", token)
	code, body := v.Do(t, "POST", "/api/v1/silences", token,
		`{"matchers":["source.ip=\"203.0.113.7\""],"duration":"1h","createdBy":"someone else","comment":"pentest"}`)
	if code != http.StatusOK {
		t.Fatalf("create silence: %d %s", code, body)
	}
	id := body[strings.Index(body, `"id":"`)+6:]
	id = id[:strings.Index(id, `"`)]
	if code, body := v.Do(t, "DELETE", "/api/v1/silences/"+id, token, ""); code != http.StatusOK {
		t.Fatalf("expire silence: %d %s", code, body)
	}
	c := client.New(v.URL, token)
	for _, action := range []string{"vigil_silence_created", "vigil_silence_expired"} {
		res, err := c.Search(context.Background(), url.Values{"action": {action}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) != 1 {
			t.Fatalf("%s: %d events", action, len(res.Events))
		}
		ev := string(res.Events[0].Event)
		for _, want := range []string{id, `"name":"admin"`, `source.ip=\"203.0.113.7\"`, "pentest", "someone else"} {
			if !strings.Contains(ev, want) {
				t.Errorf("%s lacks %q: %s", action, want, ev)
			}
		}
	}
}
