package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/client"
)

const killToken = "vgl_kill-test-token-0123456789"

// buildVigil compiles the binary once per test run.
func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startVigil(t *testing.T, bin, dir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--listen", addr, "--data-dir", dir)
	cmd.Env = append(os.Environ(), "VIGIL_ADMIN_TOKEN="+killToken)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("vigil did not become ready: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestKillDuringSend kills Vigil with SIGKILL while several clients send, then
// restarts it: every event acknowledged before the kill must be stored, once.
func TestKillDuringSend(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildVigil(t)
	dir := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	cmd := startVigil(t, bin, dir, addr)

	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := client.New("http://"+addr, killToken)
			c.MaxRetries = 0
			c.HTTP.Timeout = 5 * time.Second
			for b := 0; ctx.Err() == nil && b < 100000; b++ {
				var body bytes.Buffer
				ids := make([]string, 0, 200)
				for i := 0; i < 200; i++ {
					id := fmt.Sprintf("w%d-b%d-e%d", w, b, i)
					ids = append(ids, id)
					fmt.Fprintf(&body, `{"event":{"id":%q,"action":"http_request"},"source":{"ip":"192.0.2.%d"},"user":{"name":"u%d"},"url":{"path":"/p/%d"},"message":"GET /p/%d 200"}`+"\n", id, i%250+1, w, b, i)
				}
				ans, err := c.Send(ctx, body.Bytes())
				if err != nil {
					continue // the kill: unacknowledged, may or may not be stored
				}
				if ans.Accepted+ans.Duplicates != len(ids) {
					t.Errorf("answer %+v for %d events", ans, len(ids))
				}
				mu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				mu.Unlock()
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	mu.Lock()
	nAcked := len(acked)
	mu.Unlock()
	if nAcked == 0 {
		t.Fatal("no batch was acknowledged before the kill")
	}

	cmd = startVigil(t, bin, dir, addr)
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	c := client.New("http://"+addr, killToken)
	seen := map[string]int{}
	var after, expectSeq uint64
	for {
		res, err := c.Search(context.Background(), url.Values{"after": {fmt.Sprint(after)}, "limit": {"10000"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Events) == 0 {
			break
		}
		for _, h := range res.Events {
			expectSeq++
			if h.Seq != expectSeq {
				t.Fatalf("sequence gap: got %d, want %d", h.Seq, expectSeq)
			}
			var e struct {
				Event struct {
					ID string `json:"id"`
				} `json:"event"`
			}
			if err := json.Unmarshal(h.Event, &e); err != nil {
				t.Fatal(err)
			}
			seen[e.Event.ID]++
		}
		after = res.NextAfter
	}
	missing, twice := 0, 0
	for id := range acked {
		if seen[id] == 0 {
			missing++
		}
	}
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	t.Logf("acknowledged %d events before SIGKILL; %d stored after restart", nAcked, len(seen))
	if missing > 0 || twice > 0 {
		t.Fatalf("%d acknowledged events lost, %d stored twice", missing, twice)
	}
}
