// Package servertest runs a real Vigil server in the test's process: the
// SQLite store in a directory of the test's choosing, listening on 127.0.0.1.
// Tests of the CLI, the SDK's shipper and the example shop use it.
package servertest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/server"
)

// Vigil is a running server.
type Vigil struct {
	URL     string // base URL, http://127.0.0.1:PORT
	Addr    string // 127.0.0.1:PORT, to start again on the same port
	DataDir string
	Token   string // the admin token

	cancel context.CancelFunc
	done   chan error
}

// Start runs Vigil with its data in dataDir, listening on listen
// ("127.0.0.1:0" for a free port) with token as its admin token, and returns
// once it answers /readyz. The server stops when the test ends, or at Stop.
func Start(t testing.TB, dataDir, listen, token string) *Vigil {
	t.Helper()
	cfg := config.Default()
	cfg.Listen = listen
	cfg.DataDir = dataDir
	return StartConfig(t, cfg, token)
}

// StartConfig runs Vigil with the configuration cfg (its Listen and DataDir
// included), as Start does.
func StartConfig(t testing.TB, cfg config.Config, token string) *Vigil {
	t.Helper()
	dataDir := cfg.DataDir
	srv, err := server.New(cfg, server.Options{AdminToken: token, Out: io.Discard, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("start Vigil: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	v := &Vigil{URL: srv.URL(), Addr: srv.Addr(), DataDir: dataDir, Token: token, cancel: cancel, done: make(chan error, 1)}
	go func() { v.done <- srv.Run(ctx) }()
	t.Cleanup(v.Stop)
	for i := 0; ; i++ {
		resp, err := http.Get(v.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v
			}
		}
		if i > 500 {
			t.Fatalf("Vigil not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop shuts the server down gracefully (drain, close the store) and waits
// for it. Stopping twice is harmless.
func (v *Vigil) Stop() {
	if v.cancel == nil {
		return
	}
	v.cancel()
	<-v.done
	v.cancel = nil
}

// Do makes one request to the server: method, path (and query), body sent
// as JSON (no body when empty), with token as the bearer token (none when
// empty). It returns the status and the answer's body.
func (v *Vigil) Do(t testing.TB, method, path, token, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, v.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
