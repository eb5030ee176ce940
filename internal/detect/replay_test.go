package detect

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/demo"
	"github.com/vigilsec/vigil/internal/event"
)

// replayRules have short windows, so that a restart replays part of the
// stream only (MaxWindow is 32m, the spike's baseline).
const replayRules = `
- {name: brute, kind: threshold, filter: event.action = authn_login_fail, group_by: [source.ip], window: 1m, threshold: 10}
- {name: stuffing, kind: threshold, filter: event.action = authn_login_fail, group_by: [source.ip], window: 5m, distinct: user.name, threshold: 2}
- {name: scan, kind: threshold, filter: http.response.status_code = 404, group_by: [source.ip], window: 2m, threshold: 5}
- {name: notfound, kind: match, filter: http.response.status_code = 404, group_by: [source.ip], resolve_after: 3m}
- {name: errors, kind: ratio, filter: http.response.status_code >= 400, total_filter: event.action = http_request, window: 5m, ratio: 0.03, min_total: 50}
- {name: spike, kind: spike, filter: event.action = http_request, bucket: 1m, baseline: 30, factor: 1.5, min_count: 5}
- name: takeover
  kind: sequence
  by: [user.name]
  within: 10m
  steps: [{filter: event.action = authn_login_fail}, {filter: event.action = authn_login_success}]
- {name: new_ip, kind: new_value, filter: event.action = authn_login_success, field: source.ip, by: [user.name], lookback: 20m, learn_first: false}
`

type input struct {
	seq  uint64
	e    *event.Event
	tick time.Time // a tick when e is nil
}

// liveInputs is the demo stream as a live engine sees it: events, with a
// tick every 10 seconds of event time.
func liveInputs(t *testing.T, opts demo.Options) []input {
	var out []input
	var next time.Time
	for i, e := range demoEvents(t, opts) {
		if next.IsZero() {
			next = e.Time.Truncate(10 * time.Second)
		}
		for !e.Time.Before(next) {
			out = append(out, input{tick: next})
			next = next.Add(10 * time.Second)
		}
		out = append(out, input{seq: uint64(i + 1), e: e})
	}
	return out
}

func feed(eng *Engine, in input) []Signal {
	if in.e == nil {
		return eng.Tick(in.tick)
	}
	return eng.Process(in.seq, in.e)
}

func TestDeterministic(t *testing.T) {
	rs, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	extra := ruleSet(t, replayRules)
	all := newRuleSet(append(rs.Rules(), extra.Rules()...))
	inputs := liveInputs(t, demo.Options{Seed: 7, Scale: 1.5})
	var runs [2][]Signal
	for i := range runs {
		eng := NewEngine(all)
		for _, in := range inputs {
			runs[i] = append(runs[i], feed(eng, in)...)
		}
	}
	if len(runs[0]) < 20 {
		t.Fatalf("only %d signals: the test needs more", len(runs[0]))
	}
	if !reflect.DeepEqual(runs[0], runs[1]) {
		t.Errorf("two runs over the same input differ")
	}
}

// TestRestart plays a restart as the wiring does it: the live engine ran
// through the stream with ticks; the restarted one replays the events of
// MaxWindow before the saved cursor without ticks, drops their signals, then
// carries on. From the cursor on, both must fire the same alerts at the same
// events; the restarted one may only add resolutions of groups the live one
// had already resolved.
func TestRestart(t *testing.T) {
	rs := ruleSet(t, replayRules)
	inputs := liveInputs(t, demo.Options{Seed: 3, Duration: 35 * time.Minute})
	maxWindow := NewEngine(rs).MaxWindow()
	if maxWindow != 32*time.Minute {
		t.Fatalf("MaxWindow = %v", maxWindow)
	}
	for _, frac := range []float64{0.3, 0.6, 0.9} {
		t.Run(fmt.Sprintf("cursor at %.0f%%", frac*100), func(t *testing.T) {
			// The cursor: the last event processed before the crash.
			cut := int(float64(len(inputs)) * frac)
			for inputs[cut].e == nil {
				cut++
			}
			cursor := inputs[cut]

			live := NewEngine(rs)
			var liveBefore, liveAfter []Signal
			for i, in := range inputs {
				out := feed(live, in)
				if i <= cut {
					liveBefore = append(liveBefore, out...)
				} else {
					liveAfter = append(liveAfter, out...)
				}
			}

			restarted := NewEngine(rs)
			from := cursor.e.Time.Add(-maxWindow)
			for _, in := range inputs[:cut+1] {
				if in.e != nil && !in.e.Time.Before(from) {
					restarted.Process(in.seq, in.e) // replay: signals dropped
				}
			}
			var after []Signal
			for _, in := range inputs[cut+1:] {
				after = append(after, feed(restarted, in)...)
			}

			key := func(s Signal) string {
				return fmt.Sprintf("%s %v %s seq=%d", sig(s), s.At.Format(time.TimeOnly), s.Rule, s.Seq)
			}
			var wantFiring, gotFiring []string
			resolvedLive := map[string]bool{}
			for _, s := range liveAfter {
				if s.Firing {
					wantFiring = append(wantFiring, key(s))
				} else {
					resolvedLive[key(s)] = true
				}
			}
			// Groups whose last signal before the cursor was a resolution.
			last := map[string]bool{}
			for _, s := range liveBefore {
				last[sig(Signal{Rule: s.Rule, Group: s.Group, Firing: true})] = s.Firing
			}
			for _, s := range after {
				if s.Firing {
					gotFiring = append(gotFiring, key(s))
					continue
				}
				if resolvedLive[key(s)] {
					delete(resolvedLive, key(s))
					continue
				}
				g := sig(Signal{Rule: s.Rule, Group: s.Group, Firing: true})
				if firing, seen := last[g]; !seen || firing {
					t.Errorf("restarted engine resolved %s, which the live engine had not resolved", key(s))
				}
			}
			if !slices.Equal(gotFiring, wantFiring) {
				t.Errorf("firing signals after the cursor differ:\nlive      %q\nrestarted %q", wantFiring, gotFiring)
			}
			for k := range resolvedLive {
				t.Errorf("restarted engine missed the resolution %s", k)
			}
			t.Logf("%d firing, %d resolved after the cursor", len(wantFiring), len(liveAfter)-len(wantFiring))
			if len(wantFiring) == 0 {
				t.Errorf("no firing signal after the cursor: the test proves nothing")
			}
		})
	}
}
