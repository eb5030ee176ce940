package detect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatcherPoll(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yml")
	write := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	w := NewWatcher(dir, LoadOptions{NoBuiltin: true}, func(rs *RuleSet, err error) {
		if err != nil {
			got = append(got, "error: "+err.Error())
			return
		}
		var names []string
		for _, r := range rs.Rules() {
			names = append(names, r.Name)
		}
		got = append(got, strings.Join(names, ","))
	})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		change func()
		want   string // "" when no callback is expected
	}{
		{func() { write("- {name: a, kind: match, filter: x = 1}\n", base) }, "a"},
		{func() {}, ""}, // nothing changed
		{func() { write("- {name: b, kind: match, filter: x = 1}\n", base.Add(time.Second)) }, "b"},
		{func() { write("- {name: c, kind: match, filter: x = }\n", base.Add(2*time.Second)) }, "error: " + file + ":1: rule \"c\": field filter: column 4: expected a value after x =, found end of filter"},
		{func() {}, ""}, // the same broken file is not reported again
		{func() { write("- {name: c, kind: match, filter: x = 2}\n", base.Add(3*time.Second)) }, "c"},
		{func() { // a new file next to it
			if err := os.WriteFile(filepath.Join(dir, "more.yaml"), []byte("- {name: d, kind: match, filter: y = 1}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "d,c"},
		{func() { os.Remove(filepath.Join(dir, "more.yaml")) }, "c"},
		{func() { os.RemoveAll(dir) }, "error: rules: open " + dir + ": no such file or directory"},
		{func() {}, ""},
	}
	for i, st := range steps {
		got = nil
		st.change()
		called := w.Poll()
		want := []string(nil)
		if st.want != "" {
			want = []string{st.want}
		}
		if called != (st.want != "") || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("step %d: Poll() = %v with %q, want %q", i, called, got, want)
		}
	}
}

func TestWatcherRunStops(t *testing.T) {
	dir := t.TempDir()
	calls := make(chan error, 10)
	w := NewWatcher(dir, LoadOptions{}, func(_ *RuleSet, err error) { calls <- err })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx, time.Hour)
		close(done)
	}()
	select {
	case err := <-calls: // the first poll loads at once
		if err != nil {
			t.Errorf("first load: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no load from Run")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
