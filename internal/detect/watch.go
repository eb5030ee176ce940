package detect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultWatchInterval is how often Watcher.Run looks at the rules directory.
const DefaultWatchInterval = 2 * time.Second

// Watcher reloads a rules directory when its files change. It polls the
// names, sizes and modification times of the rule files (and of the Sigma
// files they reference) rather than using OS notifications, which behave
// differently across platforms and container file systems.
type Watcher struct {
	dir      string
	opts     LoadOptions
	onChange func(*RuleSet, error)
	last     string // fingerprint of the files at the last load
	polled   bool
}

// NewWatcher returns a watcher of dir that calls onChange with the new rule
// set, or with the error that kept it from loading (the caller then keeps
// its previous rule set). It does not load anything until Poll or Run.
func NewWatcher(dir string, opts LoadOptions, onChange func(*RuleSet, error)) *Watcher {
	return &Watcher{dir: dir, opts: opts, onChange: onChange}
}

// Poll looks at the directory once; when anything changed since the last
// call (the first call always counts as a change), it loads the rules and
// calls onChange. It reports whether it called onChange.
func (w *Watcher) Poll() bool {
	fp, err := w.fingerprint()
	if err == nil && fp == w.last && w.polled {
		return false
	}
	w.polled = true
	if err != nil {
		// An unreadable directory is reported once per change of the error.
		if w.last == "error:"+err.Error() {
			return false
		}
		w.last = "error:" + err.Error()
		w.onChange(nil, err)
		return true
	}
	w.last = fp
	rs, err := Load(w.dir, w.opts)
	if err != nil {
		w.onChange(nil, err)
		return true
	}
	w.onChange(rs, nil)
	return true
}

// Run polls every interval (DefaultWatchInterval when zero or less) until
// ctx is done. The first poll happens at once.
func (w *Watcher) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	w.Poll()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.Poll()
		}
	}
}

// fingerprint describes the rule files of the directory (name, size,
// modification time), and every other file of it, since a rule may
// reference a Sigma file with any name.
func (w *Watcher) fingerprint() (string, error) {
	ents, err := os.ReadDir(w.dir)
	if err != nil {
		return "", fmt.Errorf("rules: %w", err)
	}
	var parts []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile: the next poll sees it gone
		}
		parts = append(parts, fmt.Sprintf("%s\x00%d\x00%d", filepath.Join(w.dir, e.Name()), info.Size(), info.ModTime().UnixNano()))
	}
	slices.Sort(parts)
	return strings.Join(parts, "\n"), nil
}
