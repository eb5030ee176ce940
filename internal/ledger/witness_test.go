package ledger

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// logServer serves a ledger signed with signerKey over n events; the events
// whose sequence numbers are in forged carry another user name.
func logServer(t *testing.T, signerKey string, n int, forged ...int) (*Ledger, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	if err := writeFileExcl(filepath.Join(dir, KeyFile), []byte(signerKey+"\n")); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, dir)
	t.Cleanup(func() { st.Close() })
	var evs []event.Event
	for i := 0; i < n; i++ {
		js := testEvent(i)
		for _, f := range forged {
			if f == i+1 {
				js = forge(js)
			}
		}
		ev, err := event.Parse([]byte(js), event.Limits{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if _, err := st.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	l := openLedger(t, dir, st, Options{})
	if _, err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, serve(t, l, "token")
}

// hook records the alerts POSTed to it.
type hook struct {
	mu     sync.Mutex
	alerts []Alert
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var a Alert
	b, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &a) != nil {
		http.Error(w, "bad webhook call", 400)
		return
	}
	h.mu.Lock()
	h.alerts = append(h.alerts, a)
	h.mu.Unlock()
}

func (h *hook) kinds() []AlertKind {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []AlertKind
	for _, a := range h.alerts {
		out = append(out, a.Kind)
	}
	return out
}

func TestWitness(t *testing.T) {
	ctx := context.Background()
	k, _ := parseSignerKey(testSignerKey)
	honest, honestSrv := logServer(t, testSignerKey, 30)
	h := &hook{}
	hookSrv := httptest.NewServer(h)
	defer hookSrv.Close()
	dir := filepath.Join(t.TempDir(), "witness")
	open := func(src string) *Witness {
		w, err := OpenWitness(dir, k.verifier, NewClient(src, ""), WitnessOptions{Source: src, Log: quiet, Notify: WebhookNotifier(hookSrv.URL, nil)})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := open(honestSrv.URL)
	check := func(w *Witness) *Alert {
		t.Helper()
		a, err := w.Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	if a := check(w); a != nil {
		t.Fatalf("first checkpoint: %+v", a)
	}
	appendEvents(t, honest.st, 30, 50)
	if _, err := honest.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if a := check(w); a != nil {
		t.Fatalf("the log grew: %+v", a)
	}
	if a := check(w); a != nil {
		t.Fatalf("nothing new: %+v", a)
	}
	if cp, _ := w.Latest(); cp.Size != 50 {
		t.Fatalf("witnessed %d", cp.Size)
	}
	for _, size := range []string{"00000000000000000030.note", "00000000000000000050.note"} {
		fi, err := os.Stat(filepath.Join(dir, "checkpoints", size))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("kept checkpoint %s: %v", size, err)
		}
	}

	// Logs rebuilt with the real (stolen) key, or signed with another.
	_, fork := logServer(t, testSignerKey, 50, 17)
	_, rewrite := logServer(t, testSignerKey, 70, 17)
	_, rollback := logServer(t, testSignerKey, 40)
	_, badSig := logServer(t, otherSignerKey, 60)
	for _, tc := range []struct {
		src  string
		want AlertKind
	}{
		{fork.URL, AlertFork},
		{rewrite.URL, AlertRewrite},
		{rollback.URL, AlertRollback},
		{badSig.URL, AlertSignature},
	} {
		w := open(tc.src)
		a := check(w)
		if a == nil || a.Kind != tc.want || a.Repeat {
			t.Fatalf("%s: alert %+v, want %s", tc.want, a, tc.want)
		}
		if b, err := os.ReadFile(a.Evidence); err != nil || string(b) != a.Served {
			t.Errorf("%s: evidence %s: %v", tc.want, a.Evidence, err)
		}
		if a.Witnessed == nil || a.Witnessed.Size != 50 {
			t.Errorf("%s: witnessed %+v", tc.want, a.Witnessed)
		}
		// Seen again: reported, but the webhook is not called twice.
		if a := check(w); a == nil || !a.Repeat {
			t.Errorf("%s again: %+v", tc.want, a)
		}
		if cp, _ := w.Latest(); cp.Size != 50 {
			t.Errorf("%s: the witness moved to %d", tc.want, cp.Size)
		}
	}
	if got := h.kinds(); len(got) != 4 || got[0] != AlertFork || got[1] != AlertRewrite || got[2] != AlertRollback || got[3] != AlertSignature {
		t.Fatalf("webhook calls: %v", got)
	}

	// The honest log still checks out after all that.
	if a := check(open(honestSrv.URL)); a != nil {
		t.Fatalf("honest log: %+v", a)
	}
	// A witness directory made with another key is refused.
	o, _ := parseSignerKey(otherSignerKey)
	if _, err := OpenWitness(dir, o.verifier, NewClient(honestSrv.URL, ""), WitnessOptions{Log: quiet}); err == nil || !strings.Contains(err.Error(), "--pubkey") {
		t.Fatalf("witness opened with another key: %v", err)
	}
	// A server that cannot be reached is an error, not an alert.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	if a, err := open(down.URL).Check(ctx); err == nil || a != nil {
		t.Fatalf("unreachable server: %+v %v", a, err)
	}
}
