package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// serve runs the ledger's routes on a real HTTP server on 127.0.0.1, with
// the protected ones behind a bearer token.
func serve(t *testing.T, l *Ledger, token string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	l.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer "+token {
				http.Error(w, `{"error":"invalid token"}`, http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPAPI(t *testing.T) {
	ctx := context.Background()
	_, v, l := exportOf(t, 60, ExportRange{}, 20)
	srv := serve(t, l, "secret")
	c := NewClient(srv.URL, "secret")
	anon := NewClient(srv.URL, "")

	// Public: key and checkpoint, no token needed.
	pub, err := anon.PublicKey(ctx)
	if err != nil || pub != l.PublicKey() {
		t.Fatalf("pubkey %q, %v", pub, err)
	}
	note, err := anon.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := OpenCheckpoint(note, v)
	if err != nil || cp.Size != 60 {
		t.Fatalf("checkpoint: %+v %v", cp, err)
	}
	// Consistency, public, verified locally.
	p, err := anon.ConsistencyProof(ctx, 20, 60)
	if err != nil {
		t.Fatal(err)
	}
	old, _, _ := l.checkpointAt(ctx, 20)
	if err := VerifyConsistency(old, cp, p.Proof); err != nil {
		t.Fatal(err)
	}
	// Inclusion needs the token.
	if _, err := anon.InclusionProof(ctx, 5, 0); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("inclusion without a token: %v", err)
	}
	ip, err := c.InclusionProof(ctx, 5, 0)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := l.st.Read(ctx, 4, 1)
	if err := ip.Verify(recs[0].Canonical, cp); err != nil {
		t.Fatal(err)
	}
	// Checkpoints listing, paged.
	var ans CheckpointsAnswer
	getJSON(t, srv.URL+PathCheckpoints+"?limit=2", &ans)
	if len(ans.Checkpoints) != 2 || ans.Checkpoints[0].Size != 60 || ans.Checkpoints[1].Size != 20 || ans.NextBefore != 20 {
		t.Fatalf("checkpoints: %+v", ans)
	}
	// Export through the API (gzip on the wire), verified offline.
	body, err := c.Export(ctx, url.Values{"from_seq": {"10"}, "to_seq": {"30"}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyExport(ctx, body, v, VerifyOptions{})
	body.Close()
	if err != nil || !rep.OK() || rep.Events != 21 {
		t.Fatalf("export: %v %+v", err, rep)
	}

	// Errors name the problem.
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{PathInclusion + "?seq=0", 400, "parameter seq"},
		{PathInclusion + "?seq=5&size=3", 400, "smaller than seq"},
		{PathInclusion + "?seq=61", 404, "not in the tree"},
		{PathInclusion + "?seq=5&size=99", 404, "the tree has 60 events"},
		{PathInclusion + "?seq=5&sise=9", 400, `unknown parameter \"sise\" (allowed: seq, size)`},
		{PathConsistency + "?old=30&new=20", 400, "smaller than old"},
		{PathConsistency + "?old=-1", 400, "parameter old"},
		{PathConsistency + "?new=5", 400, "parameter old: required"},
		{PathConsistency + "?old=5&new=61", 404, "the tree has 60"},
		{PathCheckpoints + "?limit=0", 400, "parameter limit"},
		{PathExport + "?from_seq=61", 404, "not within"},
		{PathExport + "?from_seq=5&from=1h", 400, "not both"},
		{PathExport + "?from=yesterday", 400, "parameter from"},
		{PathExport + "?size=7", 404, "no checkpoint was signed for a tree of 7"},
		{PathCheckpoint + "?x=1", 400, "takes no parameters"},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %d %s, want %d …%s…", tc.path, resp.StatusCode, b, tc.status, tc.want)
		}
	}
	var he *HTTPError
	if _, err := c.InclusionProof(ctx, 99, 0); !errors.As(err, &he) || he.Status != 404 {
		t.Errorf("client error: %v", err)
	}

	// After Close the API answers 503.
	l.Close()
	resp, err := http.Get(srv.URL + PathCheckpoints)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after close: %d", resp.StatusCode)
	}
}

func getJSON(t *testing.T, u string, out any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

func TestParseExportQueryTimes(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	req, err := ParseExportQuery(url.Values{"from": {"2h"}, "to": {"2026-11-23T11:30:00Z"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !req.From.Equal(now.Add(-2*time.Hour)) || !req.To.Equal(now.Add(-30*time.Minute)) {
		t.Fatalf("%+v", req)
	}
	if _, err := ParseExportQuery(url.Values{"from": {"1h"}, "to": {"2h"}}, now); err == nil {
		t.Fatal("to before from accepted")
	}
}
