package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/retention"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// purgeDir makes a data directory with n input requests 200 days old and
// one recent login failure, sealed by a checkpoint.
func purgeDir(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, ledger.EventsFile), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	old := time.Now().Add(-200 * 24 * time.Hour).UTC()
	var evs []event.Event
	for i := range n + 1 {
		ts, action := old.Add(time.Duration(i)*time.Second), event.ActionHTTPRequest
		if i == n {
			ts, action = time.Now().UTC(), "authn_login_fail"
		}
		raw := fmt.Sprintf(`{"@timestamp":%q,"event":{"action":%q,"id":"e%d"}}`, ts.Format(time.RFC3339Nano), action, i)
		e, err := event.Parse([]byte(raw), event.DefaultLimits, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if _, err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(dir, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func countEvents(t *testing.T, dir string) int64 {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(dir, ledger.EventsFile), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.Count(context.Background(), store.Query{Action: event.ActionHTTPRequest})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPurgeDataDir(t *testing.T) {
	dir := purgeDir(t, 20)
	tests := []struct {
		name    string
		args    []string
		wantOut string
		wantErr string
		left    int64
	}{
		{"needs a target", []string{"--dry-run"}, "", "give --data-dir", 20},
		{"bad type", []string{"--data-dir", dir, "--type", "nope"}, "", "not one of", 20},
		{"inside the floor", []string{"--data-dir", dir, "--older-than", "1d"}, "", "floor", 20},
		{"dry run", []string{"--data-dir", dir, "--dry-run"}, "would purge 20 events", "", 20},
		{"other type", []string{"--data-dir", dir, "--type", "job"}, "purged 0 events", "", 20},
		{"purge", []string{"--data-dir", dir, "--type", "input_request"}, "purged 20 events", "", 0},
		{"again", []string{"--data-dir", dir}, "purged 0 events", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := runPurge(tc.args, &out, &errOut)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("runPurge(%v) = %v, want an error with %q", tc.args, err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("runPurge(%v): %v\n%s", tc.args, err, errOut.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q, want %q", out.String(), tc.wantOut)
			}
			if n := countEvents(t, dir); n != tc.left {
				t.Errorf("%d input requests left, want %d", n, tc.left)
			}
		})
	}
	// The log still verifies, with the purge recorded.
	pub, err := ledger.PublicKeyFromFile(filepath.Join(dir, ledger.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	v, err := ledger.ParsePublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.VerifyDataDir(context.Background(), dir, v, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Purged != 20 {
		t.Errorf("VerifyDataDir: ok %v, purged %d, problems %v", rep.OK(), rep.Purged, rep.Problems)
	}
}

func TestPurgeServer(t *testing.T) {
	dir := purgeDir(t, 5)
	st, err := sqlite.Open(filepath.Join(dir, ledger.EventsFile), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.Open(dir, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := retention.Config{}
	cfg.SetDefaults()
	p := &retention.Purger{Store: st, Ledger: l, DataDir: dir, Config: cfg}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/purge", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		p.Handler().ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		args    []string
		wantOut string
		wantErr string
		left    int64
	}{
		{[]string{"--server", srv.URL, "--token", "tok", "--dry-run"}, "would purge 5 events", "", 5},
		{[]string{"--server", srv.URL, "--token", "bad"}, "", "401", 5},
		{[]string{"--server", srv.URL, "--token", "tok", "--older-than", "1h"}, "", "422", 5},
		{[]string{"--server", srv.URL, "--token", "tok"}, "purged 5 events", "", 0},
	} {
		var out, errOut bytes.Buffer
		err := runPurge(tc.args, &out, &errOut)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("runPurge(%v) = %v, want an error with %q", tc.args, err, tc.wantErr)
			}
		} else if err != nil {
			t.Fatalf("runPurge(%v): %v", tc.args, err)
		}
		if !strings.Contains(out.String(), tc.wantOut) {
			t.Errorf("runPurge(%v) output %q, want %q", tc.args, out.String(), tc.wantOut)
		}
		if n, _ := st.Count(context.Background(), store.Query{Action: event.ActionHTTPRequest}); n != tc.left {
			t.Errorf("after %v: %d input requests left, want %d", tc.args, n, tc.left)
		}
	}
}
