package vigil_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

func TestSlogHandler(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.Release = "1.0" })
	var text bytes.Buffer
	next := slog.NewTextHandler(&text, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(c.SlogHandler(vigil.SlogOptions{Next: next, Level: slog.LevelInfo, Logger: "shop", AddSource: true}))

	ctx := vigil.WithRelated(vigil.WithActor(vigil.WithRequestID(context.Background(), "req-5"), "42", "alice"), "shop.order:1")
	log = log.With("component", "checkout").WithGroup("req")
	log.DebugContext(ctx, "debug only to the text handler")
	log.WarnContext(ctx, "payment declined", "amount", 12.5, "attempt", 3, "ok", false,
		slog.Group("card", "brand", "visa", "expired", true),
		"took", 1500*time.Millisecond, "password", secretPassword, "err", errors.New("declined by bank"),
		"dotted.name", "d", "attempt", 4)

	if !strings.Contains(text.String(), "debug only") || !strings.Contains(text.String(), "payment declined") {
		t.Errorf("the wrapped handler did not get both records:\n%s", text.String())
	}
	e := only(t, rec)
	for k, v := range map[string]any{
		"message": "payment declined", "log.level": "WARNING", "event.severity": 3, "log.logger": "shop",
		"http.request.id": "req-5", "user.id": "42", "user.name": "alice", "related.objects": []string{"shop.order:1"},
		"labels.component": "checkout", "labels.req_amount": 12.5, "labels.req_attempt": 4, "labels.req_ok": false,
		"labels.req_card_brand": "visa", "labels.req_card_expired": true, "labels.req_took": int64(1500 * time.Millisecond),
		"labels.req_password": "[Filtered]", "labels.req_err": "declined by bank", "labels.req_dotted_name": "d",
		"labels.release": "1.0",
	} {
		rec.Assert(t, vigiltest.Field(k, v))
	}
	if !strings.HasSuffix(e.Str("log.origin.file.name"), "slog_test.go") || e.Int("log.origin.file.line") == 0 {
		t.Errorf("source: %s", e.Raw())
	}
	if rec.Contains(secretPassword) {
		t.Error("secret attribute shipped")
	}
}

func TestSlogHandlerLevels(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.SlogHandler(vigil.SlogOptions{Level: slog.LevelWarn})
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelError) {
		t.Error("Enabled does not follow Level")
	}
	log := slog.New(h)
	log.Info("dropped")
	log.Error("kept")
	e := only(t, rec)
	if e.Str("message") != "kept" || e.Str("log.level") != "ERROR" || e.Int("event.severity") != 5 {
		t.Errorf("%s", e.Raw())
	}
}

func TestSlogInRequest(t *testing.T) {
	c, rec := newClient(t, nil)
	log := slog.New(c.SlogHandler(vigil.SlogOptions{}))
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "order placed")
	}))
	serve(h, request("GET", "/buy", "192.0.2.9:1", "", "X-Request-ID", "r-77"))
	rec.Assert(t, vigiltest.Field("message", "order placed"), vigiltest.Field("http.request.id", "r-77"),
		vigiltest.Field("source.ip", "192.0.2.9"), vigiltest.Field("url.path", "/buy"))
}

// TestSlogConformance runs the standard library's handler test suite on the
// events, read back through the recorder.
func TestSlogConformance(t *testing.T) {
	c, rec := newClient(t, nil)
	h := c.SlogHandler(vigil.SlogOptions{Level: slog.LevelDebug})
	results := func() []map[string]any {
		var out []map[string]any
		for _, e := range rec.Events() {
			m := map[string]any{slog.MessageKey: e.Str("message"), slog.LevelKey: e.Str("log.level")}
			if e.Has("@timestamp") {
				m[slog.TimeKey] = e.Str("@timestamp")
			}
			// Labels were flattened with "_": rebuild the groups for the
			// suite, which knows only the names it used.
			for k, v := range e.Object("labels") {
				parts := strings.Split(k, "_")
				cur := m
				for _, p := range parts[:len(parts)-1] {
					sub, ok := cur[p].(map[string]any)
					if !ok {
						sub = map[string]any{}
						cur[p] = sub
					}
					cur = sub
				}
				cur[parts[len(parts)-1]] = v
			}
			out = append(out, m)
		}
		return out
	}
	if err := slogtest.TestHandler(h, results); err != nil {
		// The suite expects a zero-time record to have no time; Vigil
		// events always have one. Everything else must pass.
		for _, line := range strings.Split(err.Error(), "\n") {
			if line != "" && !strings.Contains(line, "zero Record.Time") {
				t.Error(line)
			}
		}
	}
}
