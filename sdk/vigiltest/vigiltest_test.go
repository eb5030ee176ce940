package vigiltest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

// fakeT records failures instead of failing.
type fakeT struct {
	testing.TB
	mu     sync.Mutex
	failed []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	panic(f) // stands for runtime.Goexit
}

// failures runs fn with a fakeT and returns what failed.
func failures(t *testing.T, fn func(ft *fakeT)) []string {
	ft := &fakeT{TB: t}
	func() {
		defer func() {
			if v := recover(); v != nil && v != ft {
				panic(v)
			}
		}()
		fn(ft)
	}()
	return ft.failed
}

func TestRecorder(t *testing.T) {
	c, rec := vigiltest.New(t, vigiltest.Config(func(cfg *vigil.Config) { cfg.Service = "shop" }))
	ctx := vigil.WithActor(context.Background(), "42", "alice")
	c.LoginFailed(ctx, "alice", "bad password")
	c.Audit(ctx, "sensitive_read", vigil.Strings("related.objects", []string{"shop.order:1"}), vigil.Any("shop.order", map[string]any{"total": 12}))

	evs := rec.Events()
	if len(evs) != 2 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	if e.Action() != "authn_login_fail" || e.Str("user.name") != "alice" || e.Str("service.name") != "shop" || !e.Critical() {
		t.Errorf("event: %s", e.Raw())
	}
	if got := e.Strings("event.category"); len(got) != 1 || got[0] != "authentication" {
		t.Errorf("Strings = %q", got)
	}
	if e.Int("event.severity") != 3 || !e.Has("event") || e.Has("nothing") || e.Bool("labels.mfa") {
		t.Errorf("helpers: %s", e.Raw())
	}
	if got := evs[1].Object("shop.order"); fmt.Sprint(got["total"]) != "12" {
		t.Errorf("Object = %v", got)
	}
	if got := rec.Find(func(e vigiltest.Event) bool { return e.Action() == "sensitive_read" }); len(got) != 1 {
		t.Errorf("Find: %d", len(got))
	}
	rec.Assert(t, vigiltest.Action("sensitive_read"), vigiltest.Field("related.objects", []string{"shop.order:1"}), vigiltest.Field("shop.order.total", 12), vigiltest.Critical())
	if !rec.Contains("bad password") || rec.Contains("hunter2") {
		t.Error("Contains")
	}
	if len(rec.Lines()) != 2 {
		t.Error("Lines")
	}
	rec.Reset()
	if len(rec.Events()) != 0 {
		t.Error("Reset kept events")
	}
}

func TestAssertFailureNamesEvents(t *testing.T) {
	c, rec := vigiltest.New(t)
	c.LoginFailed(context.Background(), "alice", "bad password")
	got := failures(t, func(ft *fakeT) {
		rec.Assert(ft, vigiltest.Action("authn_login_fail"), vigiltest.Field("user.name", "bob"))
	})
	if len(got) != 1 || !strings.Contains(got[0], `user.name="bob"`) || !strings.Contains(got[0], "user.name=alice") {
		t.Errorf("failure message: %q", got)
	}
	got = failures(t, func(ft *fakeT) { rec.AssertNone(ft, vigiltest.Action("authn_login_fail")) })
	if len(got) != 1 {
		t.Errorf("AssertNone did not fail: %q", got)
	}
}

func TestContainsEscaped(t *testing.T) {
	c, rec := vigiltest.New(t)
	// A secret with a quote is escaped in the line; Contains still finds it.
	c.Audit(context.Background(), "sys_startup", vigil.String("message", `pa"ss`))
	if !rec.Contains(`pa"ss`) {
		t.Error("escaped value not found")
	}
}

func TestCheckAndFailWith(t *testing.T) {
	got := failures(t, func(ft *fakeT) {
		c, rec := vigiltest.New(ft, vigiltest.Check(func(line []byte) error { return errors.New("refused") }))
		c.LoginSucceeded(context.Background(), "alice")
		if len(rec.Events()) != 1 {
			t.Error("line not recorded")
		}
	})
	if len(got) != 1 || !strings.Contains(got[0], "refused") {
		t.Errorf("Check failures: %q", got)
	}

	c, rec := vigiltest.New(t, vigiltest.Config(func(cfg *vigil.Config) { cfg.CriticalFail = true }))
	full := errors.New("full")
	rec.FailWith(full)
	if err := c.LoginSucceeded(context.Background(), "alice"); !errors.Is(err, full) {
		t.Errorf("err = %v", err)
	}
	rec.FailWith(nil)
	if err := c.LoginSucceeded(context.Background(), "alice"); err != nil || len(rec.Events()) != 1 {
		t.Errorf("after FailWith(nil): %v, %d events", err, len(rec.Events()))
	}
}
