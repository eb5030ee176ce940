package alert

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRestartKeepsState runs a scenario across a restart: snapshot while
// alerts are pending, firing, resolved-but-not-yet-notified and silenced,
// restore into a new manager, continue, and count every notification.
func TestRestartKeepsState(t *testing.T) {
	const yaml = simpleRoute + `
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_by: [id]
`
	h1 := newHarness(t, yaml)
	crit := fire("k")
	crit.Labels["severity"] = SeverityCritical
	if _, err := h1.m.AddSilence(Silence{Matchers: mustMatchers(t, `id="s"`), EndsAt: t0.Add(time.Hour), CreatedBy: "alice", Comment: "known noisy"}); err != nil {
		t.Fatal(err)
	}
	// A pending silence expired before it started is kept as expired.
	early, err := h1.m.AddSilence(Silence{Matchers: mustMatchers(t, `id="a"`), StartsAt: t0.Add(time.Hour), EndsAt: t0.Add(2 * time.Hour), CreatedBy: "bob", Comment: "not needed"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h1.m.ExpireSilence(early.ID); err != nil {
		t.Fatal(err)
	}
	runSteps(t, h1, []step{
		{at: 0, sigs: []Signal{fire("a"), fire("b"), fire("s"), withFor(fire("p"), 10*time.Minute), crit}},
		{at: 30 * time.Second, want: map[string][]string{"team": {"a+ b+"}, "pager": {"k+"}}},
		{at: time.Minute, sigs: []Signal{resolve("a"), withEvidence(fire("b"), 7, 8)}},
	})
	before := h1.m.Alerts(AlertFilter{})
	snap, err := h1.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	// The new process starts two minutes later.
	h2 := newHarness(t, yaml)
	h2.clock.Set(t0.Add(3 * time.Minute))
	if err := h2.m.Restore(snap); err != nil {
		t.Fatal(err)
	}
	after := h2.m.Alerts(AlertFilter{})
	bj, _ := json.Marshal(before)
	aj, _ := json.Marshal(after)
	if !bytes.Equal(bj, aj) {
		t.Fatalf("alerts changed across restore:\nbefore %s\nafter  %s", bj, aj)
	}
	if s := h2.m.Silences(SilenceActive); len(s) != 1 || s[0].CreatedBy != "alice" {
		t.Fatalf("silences after restore: %+v", s)
	}
	if s := h2.m.Silences(SilenceExpired); len(s) != 1 || s[0].ID != early.ID {
		t.Fatalf("expired silences after restore: %+v", s)
	}
	runSteps(t, h2, []step{
		{at: 3 * time.Minute},
		// Nothing is notified twice: a's resolution once, b and k not as new.
		{at: 5*time.Minute + 30*time.Second, want: map[string][]string{"team": {"a- b+"}}},
		// The pending alert fires on time and joins its group.
		{at: 10 * time.Minute},
		{at: 10*time.Minute + 30*time.Second, want: map[string][]string{"team": {"b+ p+"}}},
		{at: 15*time.Minute + 30*time.Second},
		// The silence ended with its time: s is notified now.
		{at: time.Hour + 30*time.Second, want: map[string][]string{"team": {"b+ p+ s+"}}},
		// The pager group was notified before the restart (at 30s): it
		// repeats only once 4h have passed since then, at its first flush
		// after 4h0m30s.
		{at: 4*time.Hour + 25*time.Second},
		{at: 4*time.Hour + 5*time.Minute + 25*time.Second, want: map[string][]string{"pager": {"k+"}}},
	})
	info, err := h2.m.Alert(Fingerprint(mustNormalize(t, fire("b"))))
	if err != nil || !slices.Equal(info.Evidence, []uint64{7, 8}) || info.Signals != 2 {
		t.Errorf("b after restore: %+v %v", info, err)
	}
	// A snapshot of the restored manager restores again to the same state.
	snap2, err := h2.m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	h3 := newHarness(t, yaml)
	h3.clock.Set(h2.clock.Now())
	if err := h3.m.Restore(snap2); err != nil {
		t.Fatal(err)
	}
	snap3, _ := h3.m.Snapshot()
	if !bytes.Equal(snap2, snap3) {
		t.Errorf("snapshot not stable across restore:\n%s\n%s", snap2, snap3)
	}
}

func TestRestoreChangedConfig(t *testing.T) {
	h1 := newHarness(t, simpleRoute)
	runSteps(t, h1, []step{
		{at: 0, sigs: []Signal{fire("a")}},
		{at: 30 * time.Second, want: map[string][]string{"team": {"a+"}}},
	})
	snap, _ := h1.m.Snapshot()
	// The route now groups by id: the old group is unknown, the alert is
	// grouped anew and notified after group_wait (once).
	h2 := newHarness(t, strings.Replace(simpleRoute, "[alertname]", "[id]", 1))
	h2.clock.Set(t0.Add(time.Minute))
	if err := h2.m.Restore(snap); err != nil {
		t.Fatal(err)
	}
	runSteps(t, h2, []step{
		{at: time.Minute},
		{at: time.Minute + 30*time.Second, want: map[string][]string{"team": {"a+"}}},
		{at: 6*time.Minute + 30*time.Second},
	})
}

func TestRestoreLimits(t *testing.T) {
	h := newHarness(t, simpleRoute)
	h.at(0, fire("a"), fire("b"))
	h.at(30 * time.Second)
	good, _ := h.m.Snapshot()
	var probe map[string]any
	json.Unmarshal(good, &probe)
	fp := probe["alerts"].([]any)[0].(map[string]any)["fingerprint"].(string)

	small := newHarness(t, simpleRoute+"max_alerts: 1\n")
	if err := small.m.Restore(good); err != nil {
		t.Fatal(err)
	}
	if n := len(small.m.Alerts(AlertFilter{})); n != 1 {
		t.Errorf("restore into max_alerts 1 kept %d alerts", n)
	}
	if n := metricValue(t, small, "vigil_alerts_dropped_total", ""); n != 1 {
		t.Errorf("dropped %v", n)
	}

	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "decode"},
		{"not json", []byte("nope"), "decode"},
		{"other version", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":2`), 1), "version 2"},
		{"tampered fingerprint", bytes.Replace(good, []byte(fp), []byte("0000000000000000"), 1), "does not match"},
		{"unknown field", bytes.Replace(good, []byte(`"version":1`), []byte(`"version":1,"extra":true`), 1), "unknown field"},
		{"bad state", bytes.Replace(good, []byte(`"state":"firing"`), []byte(`"state":"burning"`), 1), "unknown state"},
		{"evidence overflow", bytes.Replace(good, []byte(`"evidence":{"total":0}`), []byte(`"evidence":{"total":0,"next":99}`), 1), "bounds"},
		{"trailing data", append(slices.Clone(good), []byte(" {}")...), "after the snapshot"},
		{"too large", make([]byte, MaxSnapshotBytes+1), "larger than"},
	}
	for _, c := range cases {
		fresh := newHarness(t, simpleRoute)
		err := fresh.m.Restore(c.data)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
		if n := len(fresh.m.Alerts(AlertFilter{})); n != 0 {
			t.Errorf("%s: a failed restore changed the state (%d alerts)", c.name, n)
		}
	}
}

func FuzzRestore(f *testing.F) {
	// A real snapshot as the main seed.
	clock := &fakeClock{t: t0}
	mk := func() *Manager {
		c, _ := ParseConfig([]byte(simpleRoute))
		m, err := New(Options{Config: c, Receivers: map[string][]Notifier{"team": {&recorder{}}}, Now: clock.Now})
		if err != nil {
			f.Fatal(err)
		}
		return m
	}
	m := mk()
	m.Process(withEvidence(fire("a"), 1, 2, 3))
	m.Process(withFor(fire("p"), time.Hour))
	ms, _ := ParseMatchers(`id="a"`)
	m.AddSilence(Silence{Matchers: ms, EndsAt: t0.Add(time.Hour), CreatedBy: "x", Comment: "y"})
	m.Tick(t0.Add(time.Minute))
	m.Process(resolve("a"))
	seed, _ := m.Snapshot()
	f.Add(seed)
	f.Add([]byte(`{"version":1,"alerts":[],"silences":[],"groups":[]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := mk()
		if err := m.Restore(b); err != nil {
			return
		}
		m.Tick(t0.Add(time.Hour))
		s1, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		m2 := mk()
		if err := m2.Restore(s1); err != nil {
			t.Fatalf("own snapshot refused: %v\n%s", err, s1)
		}
		s2, _ := m2.Snapshot()
		if !bytes.Equal(s1, s2) {
			t.Fatalf("snapshot not stable:\n%s\n%s", s1, s2)
		}
	})
}
