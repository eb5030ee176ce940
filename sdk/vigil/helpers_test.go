package vigil_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

// parseLine is the check every line the SDK sends must pass: Vigil's own
// parser accepts it.
func parseLine(line []byte) error {
	_, err := event.Parse(line, event.DefaultLimits, time.Now())
	return err
}

// newClient returns a client recording into a Recorder that checks every
// line with Vigil's parser.
func newClient(t *testing.T, cfg func(*vigil.Config)) (*vigil.Client, *vigiltest.Recorder) {
	t.Helper()
	opts := []vigiltest.Option{vigiltest.Check(parseLine)}
	if cfg != nil {
		opts = append(opts, vigiltest.Config(cfg))
	}
	return vigiltest.New(t, opts...)
}

// serve sends r through h and returns the response.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// request builds a request from a peer address.
func request(method, target, remote string, body string, header ...string) *http.Request {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

// only returns the single event recorded, failing otherwise.
func only(t *testing.T, rec *vigiltest.Recorder) vigiltest.Event {
	t.Helper()
	evs := rec.Events()
	if len(evs) != 1 {
		var raw []string
		for _, e := range evs {
			raw = append(raw, e.Raw())
		}
		t.Fatalf("got %d events, want 1:\n%s", len(evs), strings.Join(raw, "\n"))
	}
	return evs[0]
}
