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
