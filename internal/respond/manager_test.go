package respond

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store"
)

func TestAddMergesSameValue(t *testing.T) {
	h := time.Hour
	type spec struct {
		typ    string
		ttl    time.Duration // 0 = until removed
		reason string
	}
	tests := []struct {
		name       string
		first      spec
		second     spec
		wantResult AddResult
		wantType   string
		wantUntil  time.Duration // from t0; 0 = none
		wantReason string
	}{
		{"longer extends", spec{"ban", h, "a"}, spec{"ban", 2 * h, "b"}, Extended, "ban", 2*h + time.Minute, "b"},
		{"shorter is kept", spec{"ban", 2 * h, "a"}, spec{"ban", h, "b"}, Kept, "ban", 2 * h, "a"},
		{"same end is kept", spec{"ban", h + time.Minute, "a"}, spec{"ban", h, "b"}, Kept, "ban", h + time.Minute, "a"},
		{"permanent beats timed", spec{"ban", h, "a"}, spec{"ban", 0, "b"}, Extended, "ban", 0, "b"},
		{"timed does not shorten permanent", spec{"ban", 0, "a"}, spec{"ban", 5 * h, "b"}, Kept, "ban", 0, "a"},
		{"ban upgrades throttle", spec{"throttle", 5 * h, "a"}, spec{"ban", h, "b"}, Extended, "ban", h + time.Minute, "b"},
		{"throttle never replaces ban", spec{"ban", h, "a"}, spec{"throttle", 9 * h, "b"}, Kept, "ban", h, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, Config{})
			add := func(s spec) (Decision, AddResult) {
				d := Decision{Type: s.typ, Scope: "ip", Value: "203.0.113.7", Origin: "rule-" + s.reason, Reason: s.reason}
				if s.ttl > 0 {
					d.Until = env.clock.Now().Add(s.ttl)
				}
				got, res, err := env.m.Add(context.Background(), d)
				if err != nil {
					t.Fatal(err)
				}
				return got, res
			}
			first, res := add(tt.first)
			if res != Added {
				t.Fatalf("first Add: %s", res)
			}
			env.clock.Advance(time.Minute)
			got, res := add(tt.second)
			var wantUntil time.Time
			if tt.wantUntil > 0 {
				wantUntil = t0.Add(tt.wantUntil)
			}
			if res != tt.wantResult || got.ID != first.ID || got.Type != tt.wantType || !got.Until.Equal(wantUntil) ||
				got.Reason != tt.wantReason || got.Origin != "rule-"+tt.wantReason || !got.CreatedAt.Equal(t0) {
				t.Errorf("second Add = %s %+v; want %s, same ID %s, %s until %v, reason %q", res, got, tt.wantResult, first.ID, tt.wantType, wantUntil, tt.wantReason)
			}
			if n := len(env.m.List(Filter{})); n != 1 {
				t.Errorf("%d decisions in force; want 1", n)
			}
			wantEvents := 1
			if res == Extended {
				wantEvents = 2
			}
			if n := len(env.log.actions()); n != wantEvents {
				t.Errorf("%d events written; want %d", n, wantEvents)
			}
			if d, ok := env.m.Check(netip.MustParseAddr("203.0.113.7"), ""); !ok || d.Type != tt.wantType || d.ID != first.ID {
				t.Errorf("Check = %+v, %v", d, ok)
			}
			if v := env.metric(t, "vigil_decisions_active", "type="+tt.wantType, "scope=ip"); v != 1 {
				t.Errorf("active %s ip: %v; want 1", tt.wantType, v)
			}
		})
	}
}

func TestAddRefusals(t *testing.T) {
	env := newEnv(t, Config{MaxActive: 2, Allowlist: Allowlist{IPs: []string{"192.0.2.0/28"}, Users: []string{"root"}}})
	ctx := context.Background()
	tests := []struct {
		d    Decision
		want func(error) bool
	}{
		{Decision{Scope: "ip", Value: "192.0.2.5", Origin: "r"}, func(err error) bool { return errors.Is(err, ErrAllowlisted) }},
		{Decision{Scope: "range", Value: "192.0.2.0/24", Origin: "r"}, func(err error) bool { return errors.Is(err, ErrAllowlisted) }},
		{Decision{Scope: "user", Value: "ROOT", Origin: "r"}, func(err error) bool { return errors.Is(err, ErrAllowlisted) }},
		{Decision{Scope: "ip", Value: "192.0.2.99", Origin: "r", Until: t0.Add(-time.Second)}, func(err error) bool {
			var fe *FieldError
			return errors.As(err, &fe) && fe.Field == "until"
		}},
		{Decision{Scope: "ip", Value: "nope", Origin: "r"}, func(err error) bool {
			var fe *FieldError
			return errors.As(err, &fe) && fe.Field == "value"
		}},
	}
	for _, tt := range tests {
		if _, _, err := env.m.Add(ctx, tt.d); !tt.want(err) {
			t.Errorf("Add(%s %s): %v", tt.d.Scope, tt.d.Value, err)
		}
	}
	if got := env.metric(t, "vigil_decisions_refused_total", "reason=allowlist"); got != 3 {
		t.Errorf("refused by allowlist: %v; want 3", got)
	}
	mustAdd(t, env.m, Decision{Scope: "ip", Value: "198.51.100.1"})
	mustAdd(t, env.m, Decision{Scope: "ip", Value: "198.51.100.2"})
	if _, _, err := env.m.Add(ctx, Decision{Scope: "ip", Value: "198.51.100.3", Origin: "r"}); !errors.Is(err, ErrFull) {
		t.Errorf("Add beyond max_active: %v", err)
	}
	// Extending one in force is still possible at the limit.
	if _, res, err := env.m.Add(ctx, Decision{Scope: "ip", Value: "198.51.100.2", Origin: "r", Until: t0.Add(time.Hour)}); err != nil || res != Kept {
		t.Errorf("Add of a value in force at the limit: %s %v", res, err)
	}
	if got := env.metric(t, "vigil_decisions_refused_total", "reason=limit"); got != 1 {
		t.Errorf("refused by limit: %v; want 1", got)
	}
	if n := len(env.log.actions()); n != 2 {
		t.Errorf("%d events written; want 2 (refusals write nothing)", n)
	}
}

func TestAppendFailureChangesNothing(t *testing.T) {
	env := newEnv(t, Config{})
	ctx := context.Background()
	d := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.9"})
	snap, sub := env.m.Subscribe()
	defer sub.Close()
	env.log.fail = errDiskFull
	if _, _, err := env.m.Add(ctx, Decision{Scope: "user", Value: "mallory", Origin: "r"}); !errors.Is(err, errDiskFull) {
		t.Errorf("Add with a failing log: %v", err)
	}
	if _, err := env.m.Remove(ctx, d.ID, "manual:alice"); !errors.Is(err, errDiskFull) {
		t.Errorf("Remove with a failing log: %v", err)
	}
	if _, ok := env.m.Check(netip.Addr{}, "mallory"); ok {
		t.Error("a decision not written to the log is enforced")
	}
	if _, ok := env.m.Check(netip.MustParseAddr("203.0.113.9"), ""); !ok {
		t.Error("a removal not written to the log was applied")
	}
	if len(snap) != 1 || len(sub.Changes()) != 0 {
		t.Errorf("subscribers told of changes not made: %d queued", len(sub.Changes()))
	}
}

func TestRemoveCheckList(t *testing.T) {
	env := newEnv(t, Config{})
	ctx := context.Background()
	ip := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.7", Reason: "brute force", Until: t0.Add(time.Hour)})
	env.clock.Advance(time.Second)
	rng := mustAdd(t, env.m, Decision{Type: "throttle", Scope: "range", Value: "203.0.113.0/24", Origin: ManualOrigin("alice")})
	env.clock.Advance(time.Second)
	usr := mustAdd(t, env.m, Decision{Scope: "user", Value: "Eve", Until: t0.Add(2 * time.Hour), AlertFingerprint: "fp1"})

	checks := []struct {
		ip, user string
		want     string // ID; "" = none
	}{
		{"203.0.113.7", "", ip.ID},
		{"::ffff:203.0.113.7", "", ip.ID},
		{"203.0.113.8", "", rng.ID},
		{"198.51.100.1", "EVE", usr.ID},
		{"203.0.113.8", "eve", usr.ID}, // a ban wins over a throttle
		{"198.51.100.1", "bob", ""},
	}
	for _, c := range checks {
		ip, _ := netip.ParseAddr(c.ip)
		d, ok := env.m.Check(ip, c.user)
		if ok != (c.want != "") || d.ID != c.want {
			t.Errorf("Check(%s, %q) = %s, %v; want %q", c.ip, c.user, d.ID, ok, c.want)
		}
	}
	lists := []struct {
		f    Filter
		want []string
	}{
		{Filter{}, []string{ip.ID, rng.ID, usr.ID}},
		{Filter{Type: "throttle"}, []string{rng.ID}},
		{Filter{Scope: "user"}, []string{usr.ID}},
		{Filter{IP: netip.MustParseAddr("203.0.113.7")}, []string{ip.ID, rng.ID}},
		{Filter{IP: netip.MustParseAddr("203.0.113.200")}, []string{rng.ID}},
		{Filter{User: "EVE"}, []string{usr.ID}},
		{Filter{Origin: "manual:"}, []string{rng.ID}},
		{Filter{Origin: "test-rule"}, []string{ip.ID, usr.ID}},
		{Filter{Scope: "ip", Value: "203.0.113.7"}, []string{ip.ID}},
	}
	for _, l := range lists {
		var got []string
		for _, d := range env.m.List(l.f) {
			got = append(got, d.ID)
		}
		if !slices.Equal(got, l.want) {
			t.Errorf("List(%+v) = %v; want %v", l.f, got, l.want)
		}
	}

	if _, err := env.m.Remove(ctx, "no-such-id", "manual:alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove of an unknown ID: %v", err)
	}
	env.clock.Advance(time.Minute)
	got, err := env.m.Remove(ctx, ip.ID, "manual:alice")
	if err != nil || got.RemovedBy != "manual:alice" || !got.RemovedAt.Equal(t0.Add(time.Minute+2*time.Second)) {
		t.Fatalf("Remove = %+v, %v", got, err)
	}
	if _, err := env.m.Remove(ctx, ip.ID, "manual:alice"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := env.m.RemoveValue(ctx, "user", " EVE ", "manual:bob"); err != nil {
		t.Errorf("RemoveValue: %v", err)
	}
	if d, ok := env.m.Check(netip.MustParseAddr("203.0.113.7"), "eve"); !ok || d.ID != rng.ID {
		t.Errorf("after removals Check = %+v, %v; want the range throttle", d, ok)
	}
	all := env.m.List(Filter{All: true})
	if len(all) != 3 {
		t.Errorf("List(All) has %d; want 3 (1 active, 2 removed)", len(all))
	}
	if d, ok := env.m.Get(ip.ID); !ok || d.RemovedBy != "manual:alice" {
		t.Errorf("Get of a removed decision = %+v, %v", d, ok)
	}
	want := []string{ActionDecisionAdded, ActionDecisionAdded, ActionDecisionAdded, ActionDecisionRemoved, ActionDecisionRemoved}
	if got := env.log.actions(); !slices.Equal(got, want) {
		t.Errorf("events %v; want %v", got, want)
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"vigil_decisions_active", []string{"type=throttle", "scope=range"}, 1},
		{"vigil_decisions_active", []string{"type=ban", "scope=ip"}, 0},
		{"vigil_decisions_added_total", []string{"type=ban", "scope=user"}, 1},
		{"vigil_decisions_removed_total", []string{"type=ban", "scope=ip"}, 1},
	} {
		if got := env.metric(t, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v; want %v", m.name, m.labels, got, m.want)
		}
	}
}

// runManager starts m.Run and returns a function that stops it and waits
// (also called at the end of the test).
func runManager(t *testing.T, m *Manager) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond (the manager works in its own goroutine) for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunExpires(t *testing.T) {
	env := newEnv(t, Config{})
	short := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.1", Until: t0.Add(time.Hour)})
	long := mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.2", Until: t0.Add(3 * time.Hour)})
	mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.3"}) // until removed
	_, sub := env.m.Subscribe()
	defer sub.Close()
	stop := runManager(t, env.m)
	defer stop()
	env.clock.awaitTimer(t, t0.Add(time.Hour))

	// Check stops enforcing at the TTL, before Run writes anything.
	env.clock.Set(t0.Add(time.Hour))
	if _, ok := env.m.Check(netip.MustParseAddr("203.0.113.1"), ""); ok {
		t.Error("a decision is enforced past its TTL")
	}
	env.clock.AdvanceWhenWaiting(t, 0)
	c := <-sub.Changes()
	if c.Action != ActionDecisionExpired || c.Decision.ID != short.ID || !c.Decision.RemovedAt.Equal(short.Until) || c.Decision.RemovedBy != RemovedByExpiry {
		t.Errorf("first change %s %+v; want %s expired", c.Action, c.Decision, short.ID)
	}
	if _, ok := env.m.Check(netip.MustParseAddr("203.0.113.2"), ""); !ok {
		t.Error("a decision expired early")
	}
	env.clock.AdvanceWhenWaiting(t, 2*time.Hour)
	if c := <-sub.Changes(); c.Decision.ID != long.ID || c.Action != ActionDecisionExpired {
		t.Errorf("second change %s %s; want %s expired", c.Action, c.Decision.ID, long.ID)
	}
	if n := env.m.Len(); n != 1 {
		t.Errorf("%d decisions left; want the permanent one", n)
	}
	// A decision added while Run sleeps with nothing scheduled wakes it.
	soon := mustAdd(t, env.m, Decision{Scope: "user", Value: "eve", Until: env.clock.Now().Add(time.Minute)})
	if c := <-sub.Changes(); c.Action != ActionDecisionAdded {
		t.Fatalf("change %s", c.Action)
	}
	env.clock.AdvanceWhenWaiting(t, time.Minute)
	if c := <-sub.Changes(); c.Decision.ID != soon.ID || c.Action != ActionDecisionExpired {
		t.Errorf("change %s %s; want %s expired", c.Action, c.Decision.ID, soon.ID)
	}
	if got := env.metric(t, "vigil_decisions_expired_total", "type=ban", "scope=ip"); got != 2 {
		t.Errorf("expired ip bans: %v; want 2", got)
	}
	want := []string{ActionDecisionAdded, ActionDecisionAdded, ActionDecisionAdded, ActionDecisionExpired, ActionDecisionExpired, ActionDecisionAdded, ActionDecisionExpired}
	if got := env.log.actions(); !slices.Equal(got, want) {
		t.Errorf("events %v; want %v", got, want)
	}
}

func TestRunRetriesFailedAppend(t *testing.T) {
	env := newEnv(t, Config{})
	mustAdd(t, env.m, Decision{Scope: "ip", Value: "203.0.113.1", Until: t0.Add(time.Hour)})
	env.clock.Advance(2 * time.Hour)
	env.log.mu.Lock()
	env.log.fail = errDiskFull
	env.log.mu.Unlock()
	runManager(t, env.m)
	env.clock.awaitTimer(t, env.clock.Now().Add(retryWait)) // the sweep failed; Run waits to retry
	if env.m.Len() != 1 {
		t.Error("an expiry not written to the log was applied")
	}
	if _, ok := env.m.Check(netip.MustParseAddr("203.0.113.1"), ""); ok {
		t.Error("an expired decision is enforced while its expiry cannot be written")
	}
	env.log.mu.Lock()
	env.log.fail = nil
	env.log.mu.Unlock()
	env.clock.AdvanceWhenWaiting(t, retryWait)
	waitFor(t, "the expiry after the retry", func() bool { return env.m.Len() == 0 })
}

// TestRestart is the persistence promise: decisions are rebuilt from the
// real store after a restart; one that expired meanwhile is not enforced.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	key := []byte("0123456789abcdef0123456789abcdef")
	clock := newFakeClock()

	st := openStore(t, dir)
	m1, err := NewManager(Config{}, Options{Append: storeAppender(st), Clock: clock, SigningKey: key, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	perm := mustAdd(t, m1, Decision{Scope: "range", Value: "198.51.100.0/24", Reason: "scanner"})
	short := mustAdd(t, m1, Decision{Scope: "ip", Value: "203.0.113.1", Until: t0.Add(10 * time.Minute)})
	long := mustAdd(t, m1, Decision{Type: "throttle", Scope: "user", Value: "eve", Until: t0.Add(5 * time.Hour), AlertFingerprint: "abc"})
	removed := mustAdd(t, m1, Decision{Scope: "ip", Value: "203.0.113.2"})
	if _, err := m1.Remove(ctx, removed.ID, "manual:alice"); err != nil {
		t.Fatal(err)
	}
	extended := mustAdd(t, m1, Decision{Scope: "ip", Value: "203.0.113.3", Until: t0.Add(time.Hour)})
	mustAdd(t, m1, Decision{Scope: "ip", Value: "203.0.113.3", Until: t0.Add(6 * time.Hour), Reason: "again"})
	// A look-alike sent through ingest, unsigned: must not unban anyone.
	forged, err := NewEvent(Change{ActionDecisionRemoved, func() Decision {
		d := perm
		d.RemovedAt, d.RemovedBy = t0, "manual:mallory"
		return d
	}(), t0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, []event.Event{forged}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart an hour later: the 10-minute ban has run out meanwhile.
	clock.Advance(time.Hour)
	st = openStore(t, dir)
	defer st.Close()
	m2, err := NewManager(Config{}, Options{Append: storeAppender(st), Clock: clock, SigningKey: key, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := m2.ReplayFrom(ctx, st)
	if err != nil || stats.Events != 7 || stats.Rejected != 1 {
		t.Fatalf("ReplayFrom = %+v, %v; want 7 events and the forged one rejected", stats, err)
	}
	for _, c := range []struct {
		ip, user string
		want     Decision
	}{
		{"198.51.100.7", "", perm},
		{"203.0.113.1", "", Decision{}},
		{"203.0.113.2", "", Decision{}},
		{"203.0.113.3", "", extended},
		{"", "Eve", long},
	} {
		ip, _ := netip.ParseAddr(c.ip)
		got, ok := m2.Check(ip, c.user)
		if ok != (c.want.ID != "") || got.ID != c.want.ID {
			t.Errorf("after restart Check(%s %s) = %s, %v; want %q", c.ip, c.user, got.ID, ok, c.want.ID)
		}
	}
	if got, _ := m2.Get(extended.ID); !got.Until.Equal(t0.Add(6*time.Hour)) || got.Reason != "again" {
		t.Errorf("extended decision after restart: %+v", got)
	}
	if got, _ := m2.Get(long.ID); got.AlertFingerprint != "abc" || got.Type != "throttle" || !got.CreatedAt.Equal(t0) {
		t.Errorf("decision after restart: %+v", got)
	}
	var ids []string
	_, sub := m2.Subscribe()
	for _, d := range m2.List(Filter{}) {
		ids = append(ids, d.ID)
	}
	if want := []string{perm.ID, long.ID, extended.ID}; !slices.Equal(ids, want) {
		t.Errorf("active after restart %v; want %v", ids, want)
	}
	// Run records the expiry that happened while Vigil was down.
	runManager(t, m2)
	if c := <-sub.Changes(); c.Action != ActionDecisionExpired || c.Decision.ID != short.ID {
		t.Errorf("first change after restart: %s %s", c.Action, c.Decision.ID)
	}
	n, err := st.Count(ctx, storeQuery(ActionDecisionExpired))
	if err != nil || n != 1 {
		t.Errorf("%d expiry events in the store, %v; want 1", n, err)
	}
}

func TestReplayAllowlistedSinceIsRemoved(t *testing.T) {
	log := newMemLog()
	clock := newFakeClock()
	m1, _ := NewManager(Config{}, Options{Append: log.Append, Clock: clock, Log: quiet})
	d := mustAdd(t, m1, Decision{Scope: "ip", Value: "192.0.2.10"})
	other := mustAdd(t, m1, Decision{Scope: "ip", Value: "192.0.2.11"})

	m2, err := NewManager(Config{Allowlist: Allowlist{IPs: []string{"192.0.2.10"}}}, Options{Append: log.Append, Clock: clock, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log.snapshot() {
		if err := m2.Replay(&e); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := m2.Check(netip.MustParseAddr("192.0.2.10"), ""); ok {
		t.Error("a replayed decision on an allowlisted address is enforced")
	}
	if _, ok := m2.Check(netip.MustParseAddr("192.0.2.11"), ""); !ok {
		t.Errorf("decision %s lost", other.ID)
	}
	runManager(t, m2)
	waitFor(t, "the removal of the allowlisted decision", func() bool {
		got, ok := m2.Get(d.ID)
		return ok && got.RemovedBy == RemovedByAllowlist
	})
	if acts := log.actions(); acts[len(acts)-1] != ActionDecisionRemoved {
		t.Errorf("events %v: want a removal last", acts)
	}
}

func TestSubscribeSlowSubscriberIsDropped(t *testing.T) {
	env := newEnv(t, Config{StreamBuffer: 16})
	_, slow := env.m.Subscribe()
	defer slow.Close()
	_, fast := env.m.Subscribe()
	defer fast.Close()
	for i := range 40 {
		d := mustAdd(t, env.m, Decision{Scope: "user", Value: fmt.Sprintf("user%d", i)})
		if c := <-fast.Changes(); c.Decision.ID != d.ID {
			t.Fatalf("change %d: %s; want %s", i, c.Decision.ID, d.ID)
		}
	}
	select {
	case <-slow.Lost():
	default:
		t.Error("a subscriber that read nothing of 40 changes with a buffer of 16 was not dropped")
	}
	select {
	case <-fast.Lost():
		t.Error("a subscriber that keeps up was dropped")
	default:
	}
	if v := env.metric(t, "vigil_decision_stream_dropped_total"); v != 1 {
		t.Errorf("dropped subscribers: %v", v)
	}
	if v := env.metric(t, "vigil_decision_stream_subscribers"); v != 1 {
		t.Errorf("subscribers: %v; want 1", v)
	}
}

func storeQuery(action string) store.Query { return store.Query{Action: action} }

// countingLog counts the Append calls of a memLog.
type countingLog struct {
	*memLog
	calls int
}

func (l *countingLog) Append(ctx context.Context, evs []event.Event) error {
	l.calls++
	return l.memLog.Append(ctx, evs)
}

func TestAddBatch(t *testing.T) {
	env := newEnv(t, Config{MaxActive: 3, Allowlist: Allowlist{IPs: []string{"192.0.2.0/28"}}})
	log := &countingLog{memLog: env.log}
	m, err := NewManager(Config{MaxActive: 3, Allowlist: Allowlist{IPs: []string{"192.0.2.0/28"}}},
		Options{Append: log.Append, Clock: env.clock, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h := time.Hour
	outs, err := m.AddBatch(ctx, []Decision{
		{Scope: "ip", Value: "203.0.113.1", Origin: "r", Until: t0.Add(h)},
		{Scope: "ip", Value: "192.0.2.3", Origin: "r"},                         // allowlisted
		{Scope: "ip", Value: "203.0.113.1", Origin: "r", Until: t0.Add(2 * h)}, // extends the first
		{Scope: "ip", Value: "203.0.113.1", Origin: "r", Until: t0.Add(h)},     // shorter: kept
		{Scope: "ip", Value: "203.0.113.2", Origin: "r"},
		{Scope: "ip", Value: "203.0.113.3", Origin: "r"},
		{Scope: "ip", Value: "203.0.113.4", Origin: "r"}, // beyond MaxActive
		{Scope: "ip", Value: "bad", Origin: "r"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []AddResult{Added, "", Extended, Kept, Added, Added, "", ""}
	for i, o := range outs {
		if o.Result != want[i] {
			t.Errorf("decision %d: %s (%v); want %s", i, o.Result, o.Err, want[i])
		}
	}
	if !errors.Is(outs[1].Err, ErrAllowlisted) || !errors.Is(outs[6].Err, ErrFull) || outs[7].Err == nil {
		t.Errorf("errors: %v, %v, %v", outs[1].Err, outs[6].Err, outs[7].Err)
	}
	if outs[2].Decision.ID != outs[0].Decision.ID || !outs[2].Decision.Until.Equal(t0.Add(2*h)) || outs[3].Decision.ID != outs[0].Decision.ID {
		t.Errorf("the same value's decisions: %+v, %+v, %+v", outs[0].Decision, outs[2].Decision, outs[3].Decision)
	}
	if log.calls != 1 || len(log.actions()) != 4 {
		t.Errorf("%d appends of %d events; want 1 of 4 (3 added, 1 extended)", log.calls, len(log.actions()))
	}
	if d, ok := m.Check(netip.MustParseAddr("203.0.113.1"), ""); !ok || !d.Until.Equal(t0.Add(2*h)) {
		t.Errorf("Check after the batch: %+v %v", d, ok)
	}

	// Replayed, the log gives the same decisions.
	m2, err := NewManager(Config{MaxActive: 3}, Options{Append: newMemLog().Append, Clock: env.clock, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log.snapshot() {
		if err := m2.Replay(&e); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := m2.List(Filter{}), m.List(Filter{}); !slices.EqualFunc(got, want, func(a, b Decision) bool { return a.ID == b.ID && a.Until.Equal(b.Until) }) {
		t.Errorf("replayed: %+v; want %+v", got, want)
	}

	// A failing log makes none of the batch's changes.
	log.fail = errDiskFull
	outs, err = m.AddBatch(ctx, []Decision{
		{Scope: "ip", Value: "203.0.113.1", Origin: "r", Until: t0.Add(3 * h)},
		{Scope: "ip", Value: "203.0.113.3", Origin: "r", Until: t0.Add(h)}, // kept: no change to make
	})
	if !errors.Is(err, errDiskFull) || !errors.Is(outs[0].Err, errDiskFull) || outs[1].Result != Kept {
		t.Errorf("with a failing log: %v; %+v", err, outs)
	}
	if d, _ := m.Check(netip.MustParseAddr("203.0.113.1"), ""); !d.Until.Equal(t0.Add(2 * h)) {
		t.Errorf("an extension not written to the log was applied: until %v", d.Until)
	}
}
