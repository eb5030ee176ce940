package detect

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// ev builds an event at t0+offset from dotted fields.
func ev(t testing.TB, offset time.Duration, fields map[string]any) *event.Event {
	t.Helper()
	m := map[string]any{"@timestamp": t0.Add(offset).Format(time.RFC3339Nano)}
	for k, v := range fields {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	e, err := event.Parse(b, event.Limits{}, t0)
	if err != nil {
		t.Fatalf("event.Parse(%s): %v", b, err)
	}
	return &e
}

func fail(ip, user string) map[string]any {
	return map[string]any{"event.action": "authn_login_fail", "source.ip": ip, "user.name": user}
}

func success(ip, user string) map[string]any {
	return map[string]any{"event.action": "authn_login_success", "source.ip": ip, "user.name": user}
}

func request(ip, path string, status int) map[string]any {
	return map[string]any{"event.action": "http_request", "source.ip": ip, "url.path": path, "http.response.status_code": status}
}

// ruleSet parses rules from YAML text (no built-in pack).
func ruleSet(t testing.TB, text string) *RuleSet {
	t.Helper()
	rules, err := ParseRules("test.yml", []byte(text))
	if err != nil {
		t.Fatalf("ParseRules: %v", err)
	}
	return newRuleSet(rules)
}

// step is one input of an engine script: an event, or a tick when e is nil.
type scriptStep struct {
	at   time.Duration
	e    map[string]any
	want []string // signals expected from this step, as sig() formats them
}

// sig formats a signal compactly: "+rule{k=v}" firing, "-rule{k=v}" resolved.
func sig(s Signal) string {
	var keys []string
	for k := range s.Group {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var g []string
	for _, k := range keys {
		g = append(g, k+"="+s.Group[k])
	}
	sign := "-"
	if s.Firing {
		sign = "+"
	}
	return sign + s.Rule + "{" + strings.Join(g, ",") + "}"
}

func sigs(ss []Signal) []string {
	var out []string
	for _, s := range ss {
		out = append(out, sig(s))
	}
	return out
}

// run plays a script through an engine and checks every step's signals.
func run(t *testing.T, eng *Engine, steps []scriptStep) []Signal {
	t.Helper()
	var all []Signal
	for i, st := range steps {
		var got []Signal
		if st.e == nil {
			got = eng.Tick(t0.Add(st.at))
		} else {
			got = eng.Process(uint64(i+1), ev(t, st.at, st.e))
		}
		if g := sigs(got); !slices.Equal(g, st.want) {
			t.Errorf("step %d (at %v, event %v): signals %q, want %q", i+1, st.at, st.e, g, st.want)
		}
		all = append(all, got...)
	}
	return all
}

func TestMatch(t *testing.T) {
	rs := ruleSet(t, `
- name: admin_probe
  kind: match
  filter: url.path startswith /admin
  group_by: [source.ip]
  resolve_after: 5m
`)
	run(t, NewEngine(rs), []scriptStep{
		{0, request("192.0.2.1", "/admin", 403), []string{"+admin_probe{source.ip=192.0.2.1}"}},
		{time.Second, request("192.0.2.1", "/admin/x", 403), nil}, // still firing: no new signal
		{2 * time.Second, request("192.0.2.2", "/admin", 403), []string{"+admin_probe{source.ip=192.0.2.2}"}},
		{3 * time.Second, request("192.0.2.1", "/shop", 200), nil},
		{4 * time.Minute, nil, nil},
		{5*time.Minute + time.Second, nil, []string{"-admin_probe{source.ip=192.0.2.1}"}},
		{5*time.Minute + 2*time.Second, nil, []string{"-admin_probe{source.ip=192.0.2.2}"}},
		{6 * time.Minute, request("192.0.2.1", "/admin", 403), []string{"+admin_probe{source.ip=192.0.2.1}"}},
		// silent for resolve_after, then a new hit: resolved and firing again,
		// decided by event time alone (no tick in between)
		{12 * time.Minute, request("192.0.2.1", "/admin", 403), []string{"-admin_probe{source.ip=192.0.2.1}", "+admin_probe{source.ip=192.0.2.1}"}},
	})
}

func TestRepeat(t *testing.T) {
	rs := ruleSet(t, `
- name: probe
  kind: match
  filter: url.path = /x
  repeat: 1m
`)
	var steps []scriptStep
	for i := range 10 {
		var want []string
		if i == 0 || i == 6 { // every 10s: keep-alive after a minute
			want = []string{"+probe{}"}
		}
		steps = append(steps, scriptStep{time.Duration(i) * 10 * time.Second, request("192.0.2.1", "/x", 404), want})
	}
	steps = append(steps, scriptStep{2*time.Minute + 30*time.Second, nil, []string{"+probe{}"}}) // keep-alive from Tick
	run(t, NewEngine(rs), steps)
}

func TestThresholdCount(t *testing.T) {
	rs := ruleSet(t, `
- name: brute
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  threshold: 3
  action: {type: ban, scope: ip, ttl: 15m}
`)
	eng := NewEngine(rs)
	out := run(t, eng, []scriptStep{
		{0, fail("192.0.2.1", "a"), nil},
		{10 * time.Second, fail("192.0.2.1", "b"), nil},
		{15 * time.Second, fail("192.0.2.2", "a"), nil}, // another group
		{20 * time.Second, success("192.0.2.1", "a"), nil},
		{30 * time.Second, fail("192.0.2.1", "c"), []string{"+brute{source.ip=192.0.2.1}"}},
		{40 * time.Second, fail("192.0.2.1", "c"), nil},
		// the first failure (at 0s) left the window: still 3 (10s, 30s, 40s)
		{65 * time.Second, fail("192.0.2.2", "a"), nil},
		{80 * time.Second, nil, []string{"-brute{source.ip=192.0.2.1}"}}, // only 30s and 40s remain after 20s
	})
	f := out[0]
	if !slices.Equal(f.Evidence, []uint64{1, 2, 5}) {
		t.Errorf("evidence = %v, want [1 2 5]", f.Evidence)
	}
	if f.Action == nil || f.Action.Type != ActionBan || f.Action.Value != "192.0.2.1" || f.Action.TTL != 15*time.Minute {
		t.Errorf("action = %+v", f.Action)
	}
	if f.Value != 3 || f.Seq != 5 || !f.At.Equal(t0.Add(30*time.Second)) {
		t.Errorf("value %v seq %d at %v", f.Value, f.Seq, f.At)
	}
	if f.Labels["alertname"] != "brute" || f.Labels["severity"] != "warning" || f.Labels["source.ip"] != "192.0.2.1" {
		t.Errorf("labels = %v", f.Labels)
	}
	if out[1].Seq != 0 || !out[1].At.Equal(t0.Add(80*time.Second)) {
		t.Errorf("resolved signal: seq %d at %v, want 0 and the tick time", out[1].Seq, out[1].At)
	}
}

func TestThresholdDistinctAndSum(t *testing.T) {
	rs := ruleSet(t, `
- name: stuffing
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 5m
  distinct: user.name
  threshold: 3
- name: volume
  kind: threshold
  filter: http.response.body.bytes > 0
  group_by: [user.name]
  window: 10m
  sum: http.response.body.bytes
  threshold: 1000
`)
	dl := func(user string, n int) map[string]any {
		return map[string]any{"event.action": "http_request", "user.name": user, "http.response.body.bytes": n}
	}
	run(t, NewEngine(rs), []scriptStep{
		{0, fail("192.0.2.1", "a"), nil},
		{1 * time.Second, fail("192.0.2.1", "a"), nil},
		{2 * time.Second, fail("192.0.2.1", "b"), nil},
		{3 * time.Second, fail("192.0.2.1", "b"), nil},
		{4 * time.Second, fail("192.0.2.1", "c"), []string{"+stuffing{source.ip=192.0.2.1}"}},
		{5 * time.Second, dl("eve", 400), nil},
		{6 * time.Second, dl("eve", 400), nil},
		{7 * time.Second, dl("bob", 900), nil},
		{8 * time.Second, dl("eve", 300), []string{"+volume{user.name=eve}"}},
		// a (0s, 1s) leaves the window at 5m1s: b and c remain
		{5*time.Minute + 2*time.Second, nil, []string{"-stuffing{source.ip=192.0.2.1}"}},
	})
}

func TestThresholdMaxGroups(t *testing.T) {
	rs := ruleSet(t, `
- name: brute
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  threshold: 2
  max_groups: 2
`)
	eng := NewEngine(rs)
	run(t, eng, []scriptStep{
		{0, fail("192.0.2.1", "a"), nil},
		{1 * time.Second, fail("192.0.2.1", "a"), []string{"+brute{source.ip=192.0.2.1}"}},
		{2 * time.Second, fail("192.0.2.2", "a"), nil},
		// a third address evicts the least recently used group, which was firing
		{3 * time.Second, fail("192.0.2.3", "a"), []string{"-brute{source.ip=192.0.2.1}"}},
		{4 * time.Second, fail("192.0.2.2", "a"), []string{"+brute{source.ip=192.0.2.2}"}},
	})
	st := eng.Stats()
	if st.GroupsEvicted != 1 || st.Groups != 2 || st.Rules[0].GroupsEvicted != 1 || st.FiringGroups != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestRatio(t *testing.T) {
	rs := ruleSet(t, `
- name: errors
  kind: ratio
  filter: http.response.status_code >= 500
  total_filter: event.action = http_request
  window: 1m
  ratio: 0.25
  min_total: 4
`)
	run(t, NewEngine(rs), []scriptStep{
		{0, request("192.0.2.1", "/", 500), nil}, // 1/1 but below min_total
		{1 * time.Second, request("192.0.2.1", "/", 200), nil},
		{2 * time.Second, request("192.0.2.1", "/", 200), nil},
		{3 * time.Second, fail("192.0.2.1", "x"), nil},                           // not a request: not counted
		{4 * time.Second, request("192.0.2.1", "/", 200), []string{"+errors{}"}}, // 1/4
		{5 * time.Second, request("192.0.2.1", "/", 200), []string{"-errors{}"}}, // 1/5
		{6 * time.Second, request("192.0.2.1", "/", 503), []string{"+errors{}"}}, // 2/6
		{10 * time.Minute, nil, []string{"-errors{}"}},
	})
}

func TestSequence(t *testing.T) {
	rs := ruleSet(t, `
- name: takeover
  kind: sequence
  by: [user.name]
  within: 10m
  resolve_after: 1m
  steps:
    - filter: event.action = authn_login_fail
      count: 3
    - filter: event.action = authn_login_success
`)
	eng := NewEngine(rs)
	out := run(t, eng, []scriptStep{
		{0, fail("192.0.2.1", "alice"), nil},
		{time.Minute, fail("192.0.2.1", "alice"), nil},
		{2 * time.Minute, success("192.0.2.1", "alice"), nil}, // only 2 failures: the run starts over
		{3 * time.Minute, fail("192.0.2.9", "bob"), nil},
		{4 * time.Minute, fail("192.0.2.1", "alice"), nil},
		{5 * time.Minute, fail("192.0.2.1", "alice"), nil},
		{6 * time.Minute, success("192.0.2.9", "bob"), nil}, // another user
		{6*time.Minute + 30*time.Second, fail("192.0.2.1", "alice"), nil},
		{7 * time.Minute, success("192.0.2.1", "alice"), []string{"+takeover{user.name=alice}"}},
		{8*time.Minute + time.Second, nil, []string{"-takeover{user.name=alice}"}},
		// a legitimate user mistyping once per login, three times: no run of three
		{10 * time.Minute, fail("192.0.2.5", "erin"), nil},
		{10*time.Minute + 10*time.Second, success("192.0.2.5", "erin"), nil},
		{11 * time.Minute, fail("192.0.2.5", "erin"), nil},
		{11*time.Minute + 10*time.Second, success("192.0.2.5", "erin"), nil},
		{12 * time.Minute, fail("192.0.2.5", "erin"), nil},
		{12*time.Minute + 10*time.Second, success("192.0.2.5", "erin"), nil},
		// failures, then a success too late
		{20 * time.Minute, fail("192.0.2.1", "carol"), nil},
		{21 * time.Minute, fail("192.0.2.1", "carol"), nil},
		{22 * time.Minute, fail("192.0.2.1", "carol"), nil},
		{33 * time.Minute, success("192.0.2.1", "carol"), nil},
		// failures that keep coming slide the run: the last three are recent
		{40 * time.Minute, fail("192.0.2.1", "dave"), nil},
		{45 * time.Minute, fail("192.0.2.1", "dave"), nil},
		{49 * time.Minute, fail("192.0.2.1", "dave"), nil},
		{52 * time.Minute, fail("192.0.2.1", "dave"), nil},
		{53 * time.Minute, fail("192.0.2.1", "dave"), nil},
		{58 * time.Minute, success("192.0.2.1", "dave"), []string{"+takeover{user.name=dave}"}},
	})
	// Evidence: the three failures in a row and the success.
	if !slices.Equal(out[0].Evidence, []uint64{5, 6, 8, 9}) {
		t.Errorf("evidence = %v, want [5 6 8 9]", out[0].Evidence)
	}
}

func TestNewValue(t *testing.T) {
	rs := ruleSet(t, `
- name: new_ip
  kind: new_value
  filter: event.action = authn_login_success
  field: source.ip
  by: [user.name]
  lookback: 1h
  max_values: 2
  resolve_after: 1m
- name: first_config
  kind: new_value
  filter: event.action = sys_config_change
  field: user.name
  lookback: 1h
  learn_first: false
  resolve_after: 1m
`)
	cfg := func(user string) map[string]any {
		return map[string]any{"event.action": "sys_config_change", "user.name": user}
	}
	run(t, NewEngine(rs), []scriptStep{
		{0, success("192.0.2.1", "admin"), nil}, // first value of a new key: learned
		{time.Minute, success("192.0.2.1", "admin"), nil},
		{2 * time.Minute, success("192.0.2.2", "admin"), []string{"+new_ip{source.ip=192.0.2.2,user.name=admin}"}},
		{3 * time.Minute, success("192.0.2.2", "admin"), nil},
		{4 * time.Minute, success("192.0.2.3", "admin"), []string{"+new_ip{source.ip=192.0.2.3,user.name=admin}"}},
		// max_values 2: .1 (last seen 1m) was dropped for .3
		{5 * time.Minute, success("192.0.2.1", "admin"), []string{"+new_ip{source.ip=192.0.2.1,user.name=admin}"}},
		// .2 was dropped at 5m: new again, and its alert, silent since 2m, resolves and fires
		{64 * time.Minute, success("192.0.2.1", "admin"), nil},
		{65 * time.Minute, success("192.0.2.2", "admin"), []string{"-new_ip{source.ip=192.0.2.2,user.name=admin}", "+new_ip{source.ip=192.0.2.2,user.name=admin}"}},
		{66 * time.Minute, cfg("admin"), []string{"+first_config{user.name=admin}"}}, // learn_first false
		{67 * time.Minute, cfg("admin"), nil},
		{68 * time.Minute, cfg("mallory"), []string{"+first_config{user.name=mallory}"}},
	})
}

func TestSpike(t *testing.T) {
	rs := ruleSet(t, `
- name: errors
  kind: spike
  filter: http.response.status_code >= 500
  bucket: 1m
  baseline: 5
  factor: 3
  min_count: 4
`)
	eng := NewEngine(rs)
	var steps []scriptStep
	add := func(at time.Duration, status int, want ...string) {
		steps = append(steps, scriptStep{at, request("192.0.2.1", "/", status), want})
	}
	// Minute 0: warm-up starts; a burst now cannot fire (no baseline yet).
	for i := range 6 {
		add(time.Duration(i)*time.Second, 500)
	}
	// Minutes 1-6: one or two errors a minute (mean about 1.4).
	for m := 1; m <= 6; m++ {
		add(time.Duration(m)*time.Minute, 500)
		if m%2 == 0 {
			add(time.Duration(m)*time.Minute+time.Second, 500)
		}
	}
	// Minute 7: a burst; fires at the 5th error (> 3 × mean of minutes 2-6 = 3 × 1.6 = 4.8).
	for i := range 8 {
		var want []string
		if i == 4 {
			want = []string{"+errors{}"}
		}
		add(7*time.Minute+time.Duration(i)*time.Second, 500, want...)
	}
	run(t, eng, steps)
	// Minute 8 is quiet, but minute 7 (the previous bucket) is still above.
	if got := sigs(eng.Tick(t0.Add(8*time.Minute + 30*time.Second))); got != nil {
		t.Errorf("tick in minute 8: %q", got)
	}
	if got := sigs(eng.Tick(t0.Add(9*time.Minute + time.Second))); !slices.Equal(got, []string{"-errors{}"}) {
		t.Errorf("tick in minute 9: %q", got)
	}
}

func TestSigmaAggregationInEngine(t *testing.T) {
	rs := ruleSet(t, `
title: Many 404 from one client
id: 11111111-2222-4333-8444-555555555555
level: high
logsource: {category: webserver}
detection:
  sel:
    sc-status: 404
  timeframe: 1m
  condition: sel | count() by c-ip > 2
`)
	r := rs.Rules()[0]
	if r.Name != "sigma_many_404_from_one_client" || r.Severity != SeverityError || r.Kind != KindSigma || r.Labels["sigma_id"] == "" {
		t.Fatalf("rule = %+v", r)
	}
	run(t, NewEngine(rs), []scriptStep{
		{0, request("192.0.2.1", "/a", 404), nil},
		{time.Second, request("192.0.2.1", "/b", 404), nil},
		{2 * time.Second, request("192.0.2.1", "/c", 200), nil},
		{3 * time.Second, request("192.0.2.1", "/d", 404), []string{"+sigma_many_404_from_one_client{source.ip=192.0.2.1}"}},
	})
}

func TestAnnotations(t *testing.T) {
	rs := ruleSet(t, `
- name: brute
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  threshold: 2
  labels: {team: security}
  annotations:
    summary: '{{ .Value }} failures from {{ .Group "source.ip" }} (last user {{ .Field "user.name" }})'
    runbook: 'https://wiki.example/{{ .Rule }}'
`)
	eng := NewEngine(rs)
	eng.Process(1, ev(t, 0, fail("192.0.2.1", "alice")))
	out := eng.Process(2, ev(t, time.Second, fail("192.0.2.1", "bob")))
	if len(out) != 1 {
		t.Fatalf("signals = %v", sigs(out))
	}
	want := map[string]string{"summary": "2 failures from 192.0.2.1 (last user bob)", "runbook": "https://wiki.example/brute"}
	for k, v := range want {
		if out[0].Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, out[0].Annotations[k], v)
		}
	}
	if out[0].Labels["team"] != "security" {
		t.Errorf("labels = %v", out[0].Labels)
	}
	res := eng.Tick(t0.Add(time.Hour))
	if len(res) != 1 || res[0].Firing || res[0].Annotations["summary"] != out[0].Annotations["summary"] {
		t.Errorf("resolved signal should keep the firing annotations: %+v", res)
	}
}

func TestSetRulesKeepsState(t *testing.T) {
	text := `
- name: brute
  kind: threshold
  filter: event.action = authn_login_fail
  group_by: [source.ip]
  window: 1m
  threshold: 3
- name: other
  kind: match
  filter: event.action = authn_login_fail
`
	eng := NewEngine(ruleSet(t, text))
	eng.Process(1, ev(t, 0, fail("192.0.2.1", "a")))
	eng.Process(2, ev(t, time.Second, fail("192.0.2.1", "a")))
	// The same rules loaded again: the window is kept.
	if out := eng.SetRules(ruleSet(t, text)); out != nil {
		t.Errorf("SetRules with unchanged rules: %q", sigs(out))
	}
	if got := sigs(eng.Process(3, ev(t, 2*time.Second, fail("192.0.2.1", "a")))); !slices.Equal(got, []string{"+brute{source.ip=192.0.2.1}"}) {
		t.Errorf("after reload: %q, want the threshold reached", got)
	}
	// A changed rule starts over, and its firing group resolves; the
	// unchanged one keeps firing (no new signal).
	changed := strings.Replace(text, "threshold: 3", "threshold: 4", 1)
	if got := sigs(eng.SetRules(ruleSet(t, changed))); !slices.Equal(got, []string{"-brute{source.ip=192.0.2.1}"}) {
		t.Errorf("SetRules with a changed rule: %q", got)
	}
	if got := sigs(eng.Process(4, ev(t, 3*time.Second, fail("192.0.2.1", "a")))); got != nil {
		t.Errorf("after change: %q, want nothing (1 of 4)", got)
	}
	// Removing every rule resolves what fires.
	if got := sigs(eng.SetRules(nil)); !slices.Equal(got, []string{"-other{}"}) {
		t.Errorf("SetRules(nil): %q", got)
	}
}

func TestMaxWindow(t *testing.T) {
	rs := ruleSet(t, `
- {name: a, kind: threshold, filter: x = 1, window: 10m, threshold: 2}
- {name: b, kind: match, filter: x = 1, resolve_after: 2m}
- {name: c, kind: spike, filter: x = 1, bucket: 1m, baseline: 30, factor: 2, min_count: 1}
- {name: d, kind: new_value, filter: x = 1, field: y, lookback: 1h, enabled: false}
`)
	if got := NewEngine(rs).MaxWindow(); got != 32*time.Minute {
		t.Errorf("MaxWindow = %v, want 32m (spike: 1m × (30+2))", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	eng := NewEngine(rs)
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				switch g {
				case 0:
					eng.Process(uint64(i+1), ev(t, time.Duration(i)*time.Second, fail(fmt.Sprintf("192.0.2.%d", i%5), "u")))
				case 1:
					eng.Tick(t0.Add(time.Duration(i) * time.Second))
				default:
					eng.Stats()
				}
			}
		}()
	}
	wg.Wait()
	if eng.Stats().Events != 200 {
		t.Errorf("events = %d", eng.Stats().Events)
	}
}

// TestLapseWithoutTick checks that window rules resolve a lapsed condition
// on the next event even when no Tick came in between (as while replaying
// after a restart), so that the next firing signal is not lost.
func TestLapseWithoutTick(t *testing.T) {
	rs := ruleSet(t, `
- {name: any, kind: threshold, filter: event.action = authn_login_fail, window: 1m, threshold: 1}
- {name: stuffing, kind: threshold, filter: event.action = authn_login_fail, window: 1m, distinct: user.name, threshold: 1}
- {name: errors, kind: ratio, filter: http.response.status_code >= 500, total_filter: event.action = http_request, window: 1m, ratio: 0.5, min_total: 1}
`)
	run(t, NewEngine(rs), []scriptStep{
		{0, fail("192.0.2.1", "a"), []string{"+any{}", "+stuffing{}"}},
		{time.Second, fail("192.0.2.1", "b"), nil},
		{2 * time.Second, request("192.0.2.1", "/", 500), []string{"+errors{}"}},
		// Minutes later, with no Tick: the windows emptied, so these events
		// start new alerts.
		{3 * time.Minute, fail("192.0.2.1", "a"), []string{"-any{}", "+any{}", "-stuffing{}", "+stuffing{}"}},
		{4 * time.Minute, request("192.0.2.1", "/", 500), []string{"-errors{}", "+errors{}"}},
	})
}

// TestLateEvents: events older than the window behind the watermark (a
// shipper replaying its spool after Vigil was down) count with their own
// group's events for threshold rules, and fire it; behind an active group's
// window they do not count. The next tick resolves the late alert.
func TestLateEvents(t *testing.T) {
	rs := ruleSet(t, `
- {name: brute, kind: threshold, filter: event.action = authn_login_fail, group_by: [source.ip], window: 1m, threshold: 3}
- {name: stuffing, kind: threshold, filter: event.action = authn_login_fail, group_by: [source.ip], window: 1m, distinct: user.name, threshold: 3}
`)
	run(t, NewEngine(rs), []scriptStep{
		// Live traffic moves the watermark to 10m.
		{10 * time.Minute, fail("192.0.2.1", "a"), nil},
		{10*time.Minute + time.Second, fail("192.0.2.1", "b"), nil},
		// A replay from 9 minutes before, for another address: three
		// failures in 20 seconds fire both rules for it.
		{0, fail("192.0.2.9", "a"), nil},
		{10 * time.Second, fail("192.0.2.9", "b"), nil},
		{20 * time.Second, fail("192.0.2.9", "c"), []string{"+brute{source.ip=192.0.2.9}", "+stuffing{source.ip=192.0.2.9}"}},
		// A late failure for the live address is behind its window: it
		// does not make a third.
		{30 * time.Second, fail("192.0.2.1", "c"), nil},
		// The clock resolves the late alerts.
		{10*time.Minute + 2*time.Second, nil, []string{"-brute{source.ip=192.0.2.9}", "-stuffing{source.ip=192.0.2.9}"}},
	})

	// Ratio rules too: a late burst of errors for one path fires.
	rs = ruleSet(t, `
- {name: errors, kind: ratio, filter: http.response.status_code >= 500, total_filter: event.action = http_request, group_by: [url.path], window: 1m, ratio: 0.5, min_total: 2}
`)
	run(t, NewEngine(rs), []scriptStep{
		{10 * time.Minute, request("192.0.2.1", "/live", 200), nil},
		{time.Second, request("192.0.2.1", "/pay", 500), nil},
		{2 * time.Second, request("192.0.2.1", "/pay", 500), []string{"+errors{url.path=/pay}"}},
		// Behind the live path's window: not counted.
		{3 * time.Second, request("192.0.2.1", "/live", 500), nil},
		{4 * time.Second, request("192.0.2.1", "/live", 500), nil},
		{10*time.Minute + time.Second, nil, []string{"-errors{url.path=/pay}"}},
	})

	// Spike rules too: a late group is judged against its own earlier
	// buckets.
	rs = ruleSet(t, `
- {name: errors, kind: spike, filter: http.response.status_code >= 500, group_by: [url.path], bucket: 1m, baseline: 3, factor: 3, min_count: 4}
`)
	steps := []scriptStep{{time.Minute, request("192.0.2.1", "/live", 500), nil}}
	// The live path's errors move the watermark to minute 30.
	for m := 2; m <= 30; m++ {
		steps = append(steps, scriptStep{time.Duration(m) * time.Minute, request("192.0.2.1", "/live", 500), nil})
	}
	// A replay of minutes 10-13 for /pay: one error a minute, then a burst
	// in minute 13 that fires at its 4th error (> 3 × mean 1).
	for m := 10; m <= 12; m++ {
		steps = append(steps, scriptStep{time.Duration(m) * time.Minute, request("192.0.2.1", "/pay", 500), nil})
	}
	for i := range 4 {
		var want []string
		if i == 3 {
			want = []string{"+errors{url.path=/pay}"}
		}
		steps = append(steps, scriptStep{13*time.Minute + time.Duration(i)*time.Second, request("192.0.2.1", "/pay", 500), want})
	}
	// A late burst for a path never seen is not a spike: its history
	// before the replay is unknown, so it warms up first.
	for i := range 6 {
		steps = append(steps, scriptStep{20*time.Minute + time.Duration(i)*time.Second, request("192.0.2.1", "/new", 500), nil})
	}
	// A late burst for the live path is behind its buckets: not counted.
	for i := range 6 {
		steps = append(steps, scriptStep{5*time.Minute + time.Duration(i)*time.Second, request("192.0.2.1", "/live", 500), nil})
	}
	// The clock resolves the late spike.
	steps = append(steps, scriptStep{30*time.Minute + time.Second, nil, []string{"-errors{url.path=/pay}"}})
	run(t, NewEngine(rs), steps)

	// Sequence rules compare the events' own times: a late run fires too.
	rs = ruleSet(t, `
- {name: takeover, kind: sequence, by: [user.name], within: 10m, resolve_after: 1m, steps: [{filter: event.action = authn_login_fail, count: 2}, {filter: event.action = authn_login_success}]}
`)
	run(t, NewEngine(rs), []scriptStep{
		{time.Hour, success("192.0.2.1", "bob"), nil},
		{0, fail("192.0.2.9", "alice"), nil},
		{time.Second, fail("192.0.2.9", "alice"), nil},
		{2 * time.Second, success("192.0.2.9", "alice"), []string{"+takeover{user.name=alice}"}},
	})
}

// TestAccessRules: the built-in rules on Vigil's own access events add up
// the requests each event sums.
func TestAccessRules(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	eng := NewEngine(rs)
	access := func(at time.Duration, action, user, ip string, n int) event.Event {
		t.Helper()
		doc := fmt.Sprintf(`{"@timestamp":%q,"event":{"action":%q},"source":{"ip":%q},"vigil":{"access":{"requests":%d,"route":"GET /api/v1/events"}}`,
			t0.Add(at).Format(time.RFC3339), action, ip, n)
		if user != "" {
			doc += fmt.Sprintf(`,"user":{"name":%q}`, user)
		}
		e, err := event.Parse([]byte(doc+"}"), event.Limits{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var got []string
	for i, e := range []event.Event{
		access(0, "sensitive_read", "auditor", "192.0.2.5", 400),
		access(time.Minute, "sensitive_read", "auditor", "192.0.2.5", 400),
		access(2*time.Minute, "vigil_api_unauthenticated", "", "203.0.113.66", 30),
		access(3*time.Minute, "sensitive_read", "auditor", "192.0.2.6", 300),
		access(4*time.Minute, "vigil_api_unauthenticated", "", "203.0.113.66", 30),
	} {
		for _, s := range eng.Process(uint64(i+1), &e) {
			if s.Firing {
				got = append(got, sig(s))
			}
		}
	}
	// Many access events (each a sum) do not look like an application's
	// sensitive reads.
	for i := range 150 {
		for _, s := range eng.Process(uint64(100+i), ptr(access(5*time.Minute, "sensitive_read", "dashboard", "192.0.2.7", 1))) {
			if s.Firing {
				got = append(got, sig(s))
			}
		}
	}
	want := []string{"+vigil_api_bulk_reads{user.name=auditor}", "+vigil_api_token_guessing{source.ip=203.0.113.66}"}
	if !slices.Equal(got, want) {
		t.Errorf("signals %q, want %q", got, want)
	}
}

func ptr[T any](v T) *T { return &v }
