package alert

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const simpleRoute = `
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
`

func TestFingerprint(t *testing.T) {
	a := map[string]string{"alertname": "brute_force", "rule": "brute_force", "severity": "warning", "source.ip": "203.0.113.7"}
	b := map[string]string{"source.ip": "203.0.113.7", "severity": "warning", "rule": "brute_force", "alertname": "brute_force"}
	c := map[string]string{"alertname": "brute_force", "rule": "brute_force", "severity": "warning", "source.ip": "203.0.113.8"}
	// Boundaries between names and values matter: {"ab": "c"} ≠ {"a": "bc"}.
	d1, d2 := map[string]string{"ab": "c"}, map[string]string{"a": "bc"}
	if Fingerprint(a) != Fingerprint(b) {
		t.Error("fingerprint depends on map order")
	}
	if Fingerprint(a) == Fingerprint(c) || Fingerprint(d1) == Fingerprint(d2) {
		t.Error("different labels, same fingerprint")
	}
	// Stable across versions: documented algorithm, pinned value.
	if got := Fingerprint(map[string]string{"alertname": "x"}); got != "1965db7604b7252b" {
		t.Errorf("fingerprint of {alertname=x} = %s; the algorithm changed, which re-notifies every alert after an upgrade", got)
	}
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t, simpleRoute)
	m := h.m
	state := func(id string) string {
		for _, a := range m.Alerts(AlertFilter{}) {
			if a.Labels["id"] == id {
				return a.State
			}
		}
		return "absent"
	}
	// Pending while For runs, firing after it, by the clock.
	h.at(0, withFor(fire("a"), time.Minute))
	if s := state("a"); s != StatePending {
		t.Fatalf("a is %s, want pending", s)
	}
	h.at(59 * time.Second)
	if s := state("a"); s != StatePending {
		t.Fatalf("a is %s after 59s, want pending", s)
	}
	h.at(time.Minute)
	if s := state("a"); s != StateFiring {
		t.Fatalf("a is %s after 1m, want firing", s)
	}
	// Or by event time: a later signal whose At is past For fires it.
	h.at(61*time.Second, withFor(fire("b"), time.Hour))
	sig := withFor(fire("b"), time.Hour)
	sig.At = t0.Add(61*time.Second + time.Hour)
	h.at(62*time.Second, sig)
	if s := state("b"); s != StateFiring {
		t.Fatalf("b is %s, want firing by event time", s)
	}
	// A pending alert that stops holding is dropped, never notified.
	h.at(63*time.Second, withFor(fire("c"), time.Hour))
	h.at(64*time.Second, resolve("c"))
	if s := state("c"); s != "absent" {
		t.Fatalf("c is %s, want dropped", s)
	}
	// Dedup: the same labels again update the alert, never a second one.
	h.at(65*time.Second, withEvidence(fire("a"), 1, 2, 3))
	h.at(66*time.Second, withEvidence(fire("a"), 3, 4))
	all := m.Alerts(AlertFilter{})
	if len(all) != 2 {
		t.Fatalf("%d alerts, want 2 (a, b): %+v", len(all), all)
	}
	ia, err := m.Alert(Fingerprint(map[string]string{"id": "a", "alertname": "brute_force", "rule": "brute_force", "severity": "warning"}))
	if err != nil {
		t.Fatal(err)
	}
	if ia.Signals != 3 || ia.EvidenceCount != 4 || !slices.Equal(ia.Evidence, []uint64{1, 2, 3, 4}) {
		t.Errorf("merged alert: signals %d evidence %d %v", ia.Signals, ia.EvidenceCount, ia.Evidence)
	}
	if !ia.StartsAt.Equal(t0.Add(time.Minute)) || !ia.ActiveAt.Equal(t0) {
		t.Errorf("a activeAt %v startsAt %v", ia.ActiveAt, ia.StartsAt)
	}
	// Resolved: kept for the retention, then dropped.
	h.at(2*time.Minute, resolve("a"))
	if s := state("a"); s != StateResolved {
		t.Fatalf("a is %s, want resolved", s)
	}
	h.at(2*time.Minute + 24*time.Hour - time.Second)
	if s := state("a"); s != StateResolved {
		t.Fatalf("a is %s before retention ends, want resolved", s)
	}
	// Dropped at the first tick past the retention once its group let it go.
	h.at(2*time.Minute + 24*time.Hour + 5*time.Minute)
	if s := state("a"); s != "absent" {
		t.Fatalf("a is %s after retention, want gone", s)
	}
	if s := state("b"); s != StateFiring {
		t.Fatalf("b is %s, want still firing", s)
	}
}

// A firing alert tells notifiers when it will have been sent again at the
// latest: the repeat interval plus two group intervals (simpleRoute: 4h and
// 5m).
func TestRenewBy(t *testing.T) {
	h := newHarness(t, simpleRoute)
	h.at(time.Second, fire("a"))
	h.at(31 * time.Second)
	r := h.rec["team"]
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) != 1 || len(r.calls[0]) != 1 {
		t.Fatalf("notifications: %+v", r.calls)
	}
	if want := t0.Add(31*time.Second + 4*time.Hour + 10*time.Minute); !r.calls[0][0].RenewBy.Equal(want) {
		t.Errorf("RenewBy = %v, want %v", r.calls[0][0].RenewBy, want)
	}
}

func TestEvidenceBounded(t *testing.T) {
	var e evidence
	// Overlapping windows, as a detection engine resends them.
	for start := uint64(1); start <= 200; start += 10 {
		var seqs []uint64
		for q := start + 19; q >= start; q-- { // out of order on purpose
			seqs = append(seqs, q)
		}
		e.add(seqs)
	}
	got := e.seqs()
	var want []uint64
	for q := uint64(1); q <= 10; q++ {
		want = append(want, q)
	}
	for q := uint64(210 - 39); q <= 210; q++ {
		want = append(want, q)
	}
	if e.Total != 210 || !slices.Equal(got, want) {
		t.Errorf("total %d, kept %v\nwant %v", e.Total, got, want)
	}
	if err := e.valid(); err != nil {
		t.Error(err)
	}
}

func TestMaxAlerts(t *testing.T) {
	h := newHarness(t, simpleRoute+"max_alerts: 3\n")
	sev := func(id, s string) Signal { x := fire(id); x.Labels["severity"] = s; return x }
	h.at(0, sev("w1", "warning"))
	h.at(time.Second, sev("c1", "critical"))
	h.at(2*time.Second, sev("w2", "warning"))
	// Full: a critical alert evicts the oldest warning.
	h.at(3*time.Second, sev("c2", "critical"))
	// An info alert is the least severe: it is the one dropped.
	h.at(4*time.Second, sev("i1", "info"))
	var ids []string
	for _, a := range h.m.Alerts(AlertFilter{}) {
		ids = append(ids, a.Labels["id"])
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"c1", "c2", "w2"}) {
		t.Errorf("kept %v, want c1 c2 w2", ids)
	}
	if n := metricValue(t, h, "vigil_alerts_dropped_total", ""); n != 2 {
		t.Errorf("dropped counter %v, want 2", n)
	}
	// The evicted alert left its group: the group notifies only the others.
	h.at(30 * time.Second)
	if got := h.rec["team"].take(); !slices.Equal(got, []string{"c1+ c2+ w2+"}) {
		t.Errorf("notified %q", got)
	}
}

// step is one moment of a notification scenario.
type step struct {
	at   time.Duration
	sigs []Signal
	want map[string][]string // receiver -> notifications at this tick
}

func runSteps(t *testing.T, h *harness, steps []step) {
	t.Helper()
	for _, s := range steps {
		h.at(s.at, s.sigs...)
		for name, r := range h.rec {
			got := r.take()
			if !slices.Equal(got, s.want[name]) {
				t.Fatalf("at %v receiver %s got %q, want %q", s.at, name, got, s.want[name])
			}
		}
	}
}

func TestGroupTimers(t *testing.T) {
	const m = time.Minute
	s := time.Second
	team := func(n ...string) map[string][]string { return map[string][]string{"team": n} }
	h := newHarness(t, simpleRoute)
	runSteps(t, h, []step{
		{at: 0, sigs: []Signal{fire("a")}},
		{at: 10 * s, sigs: []Signal{fire("b")}},
		// group_wait: the first notification 30s after the group formed.
		{at: 30 * s, want: team("a+ b+")},
		{at: 1 * m, sigs: []Signal{fire("b")}}, // dedup: no change
		{at: 5*m + 30*s},                       // group_interval: nothing new
		{at: 6 * m, sigs: []Signal{fire("c")}}, // a new alert waits for the interval
		{at: 10*m + 29*s},
		{at: 10*m + 30*s, want: team("a+ b+ c+")},
		{at: 11 * m, sigs: []Signal{resolve("a")}},
		// The resolved alert is notified once, with the still firing ones.
		{at: 15*m + 30*s, want: team("a- b+ c+")},
		{at: 20*m + 30*s},
		{at: 4*time.Hour + 10*m + 30*s}, // repeat_interval not yet passed
		// repeat_interval: unchanged firing alerts again after 4h.
		{at: 4*time.Hour + 15*m + 30*s, want: team("b+ c+")},
		{at: 4*time.Hour + 16*m, sigs: []Signal{resolve("b"), resolve("c")}},
		{at: 4*time.Hour + 20*m + 30*s, want: team("b- c-")},
		{at: 4*time.Hour + 25*m + 30*s},
		// The group is gone: a new alert starts a group with group_wait.
		{at: 4*time.Hour + 26*m, sigs: []Signal{fire("a")}},
		{at: 4*time.Hour + 26*m + 29*s},
		{at: 4*time.Hour + 26*m + 30*s, want: team("a+")},
		// Fired and resolved within one interval: unlike Alertmanager,
		// the receiver still hears of it (an attack shorter than the
		// interval is news): firing at the next flush, resolved at the one
		// after.
		{at: 4*time.Hour + 27*m, sigs: []Signal{fire("d"), resolve("d")}},
		{at: 4*time.Hour + 31*m + 30*s, want: team("a+ d+")},
		{at: 4*time.Hour + 36*m + 30*s, want: team("a+ d-")},
		{at: 4*time.Hour + 41*m + 30*s},
	})
	if n := metricValue(t, h, "vigil_alert_notifications_total", "receiver=team"); n != 8 {
		t.Errorf("notifications_total{team} = %v, want 8", n)
	}
}

func TestGroupBy(t *testing.T) {
	h := newHarness(t, `
route:
  receiver: team
  group_by: [source.ip]
  group_wait: 30s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      group_by: ['...']
      group_wait: 0s
`)
	ip := func(id, addr string) Signal { return fire(id, "source.ip", addr) }
	crit := ip("k", "198.51.100.9")
	crit.Labels["severity"] = SeverityCritical
	crit2 := ip("l", "198.51.100.9")
	crit2.Labels["severity"] = SeverityCritical
	runSteps(t, h, []step{
		{at: 0, sigs: []Signal{ip("a", "203.0.113.1"), ip("b", "203.0.113.1"), ip("c", "203.0.113.2"), crit, crit2},
			// group_wait 0s with group_by ...: one notification per alert at once.
			want: map[string][]string{"pager": {"k+", "l+"}}},
		// One notification per source.ip group.
		{at: 30 * time.Second, want: map[string][]string{"team": {"a+ b+", "c+"}}},
	})
}

func TestSendResolvedFalse(t *testing.T) {
	h := newHarness(t, simpleRoute+"receivers: [{name: team, send_resolved: false}]\n")
	runSteps(t, h, []step{
		{at: 0, sigs: []Signal{fire("a"), fire("b")}},
		{at: 30 * time.Second, want: map[string][]string{"team": {"a+ b+"}}},
		{at: time.Minute, sigs: []Signal{resolve("a")}},
		{at: 5*time.Minute + 30*time.Second},
		{at: 6 * time.Minute, sigs: []Signal{resolve("b")}},
		{at: 10*time.Minute + 30*time.Second},
		// a fires again: the receiver was never told it resolved, but the
		// manager forgot it as firing, so it is new and notified.
		{at: 11 * time.Minute, sigs: []Signal{fire("a")}},
		{at: 11*time.Minute + 30*time.Second, want: map[string][]string{"team": {"a+"}}},
	})
}

func TestContinueRoutesToSeveralReceivers(t *testing.T) {
	h := newHarness(t, exampleConfig)
	crit := fire("x", "source.ip", "203.0.113.9")
	crit.Labels["severity"] = SeverityCritical
	scan := fire("s", "source.ip", "10.0.0.1", "rule", "scanner")
	runSteps(t, h, []step{
		{at: 0, sigs: []Signal{crit, scan}},
		{at: 10 * time.Second, want: map[string][]string{"oncall-pager": {"x+"}}},
		{at: 30 * time.Second, want: map[string][]string{"security-chat": {"x+"}, "internal": {"s+"}}},
	})
	info, _ := h.m.Alert(Fingerprint(mustNormalize(t, crit)))
	if !slices.Equal(info.Receivers, []string{"oncall-pager", "security-chat"}) {
		t.Errorf("receivers %v", info.Receivers)
	}
	got := h.m.Alerts(AlertFilter{Receiver: "internal"})
	if len(got) != 1 || got[0].Labels["id"] != "s" {
		t.Errorf("filter by receiver: %+v", got)
	}
}

func mustNormalize(t *testing.T, s Signal) map[string]string {
	t.Helper()
	l, err := s.normalize()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSilences(t *testing.T) {
	h := newHarness(t, simpleRoute)
	m := h.m
	h.at(0)
	ms, _ := ParseMatchers(`id=~"a|b"`)
	sil, err := m.AddSilence(Silence{Matchers: ms, EndsAt: t0.Add(time.Hour), CreatedBy: "alice", Comment: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	if sil.ID == "" || sil.Status != SilenceActive || !sil.StartsAt.Equal(t0) {
		t.Fatalf("silence %+v", sil)
	}
	future, _ := ParseMatchers(`id="c"`)
	later, err := m.AddSilence(Silence{Matchers: future, StartsAt: t0.Add(20 * time.Minute), EndsAt: t0.Add(2 * time.Hour), CreatedBy: "bob", Comment: "planned"})
	if err != nil || later.Status != SilencePending {
		t.Fatalf("pending silence %+v %v", later, err)
	}
	runSteps(t, h, []step{
		{at: time.Second, sigs: []Signal{fire("a"), fire("c")}},
		// a is silenced: only c is notified.
		{at: 31 * time.Second, want: map[string][]string{"team": {"c+"}}},
	})
	silenced := true
	got := m.Alerts(AlertFilter{Silenced: &silenced})
	if len(got) != 1 || got[0].Labels["id"] != "a" || !slices.Equal(got[0].SilencedBy, []string{sil.ID}) {
		t.Fatalf("silenced alerts: %+v", got)
	}
	if v := metricValue(t, h, "vigil_alerts_silenced", ""); v != 1 {
		t.Errorf("vigil_alerts_silenced = %v", v)
	}
	// Expiring early: a is notified at the next interval.
	exp, err := m.ExpireSilence(sil.ID)
	if err != nil || exp.Status != SilenceExpired || !exp.EndsAt.Equal(t0.Add(31*time.Second)) {
		t.Fatalf("expire: %+v %v", exp, err)
	}
	if _, err := m.ExpireSilence("nope"); err == nil {
		t.Error("expiring an unknown silence: no error")
	}
	runSteps(t, h, []step{
		{at: 5*time.Minute + 31*time.Second, want: map[string][]string{"team": {"a+ c+"}}},
		// The pending silence starts at 20m and mutes c from then on.
		{at: 20 * time.Minute},
		{at: 21 * time.Minute, sigs: []Signal{fire("b")}},
		{at: 25 * time.Minute, want: map[string][]string{"team": {"a+ b+"}}},
		// The receiver was told c fires, so it hears that c resolved even
		// though c is silenced (a pager's incident is closed).
		{at: 26 * time.Minute, sigs: []Signal{resolve("c")}},
		{at: 30 * time.Minute, want: map[string][]string{"team": {"a+ b+ c-"}}},
	})
	if got := m.Silences(SilenceExpired); len(got) != 1 || got[0].ID != sil.ID {
		t.Errorf("expired silences %+v", got)
	}
	// Expired silences are dropped after the retention.
	h.at(31*time.Second + 24*time.Hour)
	if _, err := m.Silence(sil.ID); err == nil {
		t.Error("expired silence kept past retention")
	}
	bad := []struct {
		s    Silence
		want string
	}{
		{Silence{EndsAt: t0.Add(48 * time.Hour), CreatedBy: "a", Comment: "c"}, "field matchers"},
		{Silence{Matchers: mustMatchers(t, `id=~".*"`), EndsAt: t0.Add(48 * time.Hour), CreatedBy: "a", Comment: "c"}, "mute every alert"},
		{Silence{Matchers: ms, CreatedBy: "a", Comment: "c"}, "field endsAt"},
		{Silence{Matchers: ms, EndsAt: t0, CreatedBy: "a", Comment: "c"}, "field endsAt"},
		{Silence{Matchers: ms, EndsAt: t0.Add(48 * time.Hour), Comment: "c"}, "field createdBy"},
		{Silence{Matchers: ms, EndsAt: t0.Add(48 * time.Hour), CreatedBy: "a"}, "field comment"},
	}
	for _, b := range bad {
		if _, err := m.AddSilence(b.s); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("AddSilence(%+v) = %v, want %q", b.s, err, b.want)
		}
	}
}

func mustMatchers(t *testing.T, s string) Matchers {
	t.Helper()
	ms, err := ParseMatchers(s)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestSilenceLimit(t *testing.T) {
	h := newHarness(t, simpleRoute+"max_silences: 2\n")
	for i, want := range []bool{true, true, false} {
		_, err := h.m.AddSilence(Silence{Matchers: mustMatchers(t, `id="x"`), EndsAt: t0.Add(time.Hour), CreatedBy: "a", Comment: "c"})
		if (err == nil) != want {
			t.Errorf("silence %d: err %v", i, err)
		}
	}
}

func TestInvalidSignals(t *testing.T) {
	h := newHarness(t, simpleRoute)
	many := map[string]string{}
	for i := range MaxLabels + 1 {
		many[strings.Repeat("l", i+1)] = "v"
	}
	cases := []Signal{
		{Firing: true},
		{Rule: "r", Firing: true, Labels: many},
		{Rule: "r", Firing: true, Labels: map[string]string{"a": strings.Repeat("v", MaxLabelValueLen+1)}},
		{Rule: "r", Firing: true, Labels: map[string]string{"": "v"}},
		{Rule: "r", Firing: true, For: -time.Second},
		{Rule: "r", Firing: true, Annotations: map[string]string{"summary": strings.Repeat("s", MaxAnnotationBytes+1)}},
	}
	for i, s := range cases {
		if err := h.m.Process(s); err == nil {
			t.Errorf("case %d: invalid signal accepted", i)
		}
	}
	if n := len(h.m.Alerts(AlertFilter{})); n != 0 {
		t.Errorf("%d alerts from invalid signals", n)
	}
}

func TestInhibitRules(t *testing.T) {
	h := newHarness(t, simpleRoute+`
inhibit_rules:
  - source_matchers: ['kind="outage"']
    target_matchers: ['kind="errors"']
    equal: [service]
`)
	m := h.m
	down := fire("down", "kind", "outage", "service", "shop")
	runSteps(t, h, []step{
		{at: time.Second, sigs: []Signal{fire("a", "kind", "errors", "service", "shop"), fire("b", "kind", "errors", "service", "blog"), down}},
		// a is muted while the shop's outage fires; b is another service.
		{at: 31 * time.Second, want: map[string][]string{"team": {"b+ down+"}}},
	})
	yes := true
	got := m.Alerts(AlertFilter{Inhibited: &yes})
	downFP := Fingerprint(map[string]string{"alertname": "brute_force", "rule": "brute_force", "severity": "warning", "id": "down", "kind": "outage", "service": "shop"})
	if len(got) != 1 || got[0].Labels["id"] != "a" || !got[0].Inhibited || !slices.Equal(got[0].InhibitedBy, []string{downFP}) {
		t.Fatalf("inhibited alerts: %+v", got)
	}
	if v := metricValue(t, h, "vigil_alerts_inhibited", ""); v != 1 {
		t.Errorf("vigil_alerts_inhibited = %v", v)
	}
	// The outage ends: a is told at the next group interval, with the
	// outage's resolution.
	runSteps(t, h, []step{
		{at: time.Minute, sigs: []Signal{resolve("down", "kind", "outage", "service", "shop")}},
		{at: 5*time.Minute + 31*time.Second, want: map[string][]string{"team": {"a+ b+ down-"}}},
	})
	if got := m.Alerts(AlertFilter{Inhibited: &yes}); len(got) != 0 {
		t.Errorf("still inhibited after the source resolved: %+v", got)
	}
}

// Alerts matching both sides of a rule do not mute each other, and no
// alert mutes itself.
func TestInhibitBothSides(t *testing.T) {
	h := newHarness(t, simpleRoute+`
inhibit_rules:
  - source_matchers: ['level="critical"']
    target_matchers: ['level=~"critical|warning"']
    equal: [service]
`)
	h.at(time.Second, fire("x", "level", "critical", "service", "s"), fire("y", "level", "critical", "service", "s"),
		fire("z", "level", "warning", "service", "s"), fire("w", "level", "warning", "service", "other"))
	yes := true
	got := h.m.Alerts(AlertFilter{Inhibited: &yes})
	if len(got) != 1 || got[0].Labels["id"] != "z" || len(got[0].InhibitedBy) != 2 {
		t.Fatalf("inhibited: %+v", got)
	}
}

func TestInhibitRulesChecked(t *testing.T) {
	for _, c := range []struct{ rules, want string }{
		{"  - target_matchers: ['a=\"b\"']\n", "source_matchers: at least one matcher"},
		{"  - source_matchers: ['a=\"b\"']\n", "target_matchers: at least one matcher"},
		{"  - source_matchers: ['a=~\"(\"']\n    target_matchers: ['a=\"b\"']\n", "inhibit_rules[0].source_matchers[0]"},
		{"  - source_matchers: ['a=\"b\"']\n    target_matchers: ['a=\"c\"']\n    equal: ['']\n", "equal[0]"},
	} {
		_, err := ParseConfig([]byte(simpleRoute + "inhibit_rules:\n" + c.rules))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.rules, err, c.want)
		}
	}
}
