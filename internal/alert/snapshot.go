package alert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"
)

// SnapshotVersion is the version of the format Snapshot writes. Restore
// refuses other versions.
const SnapshotVersion = 1

// MaxSnapshotBytes bounds what Restore reads.
const MaxSnapshotBytes = 64 << 20

// snapshot is the persisted state: JSON, versioned.
type snapshot struct {
	Version  int         `json:"version"`
	SavedAt  time.Time   `json:"savedAt"`
	Alerts   []snapAlert `json:"alerts"`
	Silences []Silence   `json:"silences"`
	Groups   []snapGroup `json:"groups"`
}

type snapAlert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	State       string            `json:"state"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	For         string            `json:"for,omitempty"`
	ActiveAt    time.Time         `json:"activeAt"`
	StartsAt    time.Time         `json:"startsAt,omitzero"`
	EndsAt      time.Time         `json:"endsAt,omitzero"`
	UpdatedAt   time.Time         `json:"updatedAt"`
	ResolvedAt  time.Time         `json:"resolvedAt,omitzero"`
	Signals     int               `json:"signals"`
	Evidence    evidence          `json:"evidence"`
	Notified    bool              `json:"notified,omitempty"`
	HoldEnd     time.Time         `json:"holdEnd,omitzero"`
}

type snapGroup struct {
	Key       string     `json:"key"`
	Route     string     `json:"route"`
	Receiver  string     `json:"receiver"`
	Members   []string   `json:"members"`
	CreatedAt time.Time  `json:"createdAt"`
	NextFlush time.Time  `json:"nextFlush"`
	Sent      []snapSent `json:"sent"`
}

// snapSent is the last delivered notification of one notifier.
type snapSent struct {
	At     time.Time `json:"at,omitzero"`
	Firing []string  `json:"firing"`
}

// Snapshot returns the manager's state as versioned JSON: alerts (pending,
// firing and resolved), silences, and per group what was last notified to
// each notifier and when the group is next due. Deliveries in flight are
// not part of it: their group is notified again after a restore (at least
// once).
func (m *Manager) Snapshot() ([]byte, error) {
	m.mu.Lock()
	s := snapshot{Version: SnapshotVersion, SavedAt: m.now(), Alerts: []snapAlert{}, Silences: []Silence{}, Groups: []snapGroup{}}
	for _, e := range m.alerts {
		a := snapAlert{
			Fingerprint: e.fp, Rule: e.rule, State: e.state, Labels: maps.Clone(e.labels),
			Annotations: maps.Clone(e.annotations), ActiveAt: e.activeAt, StartsAt: e.startsAt,
			EndsAt: e.endsAt, UpdatedAt: e.updatedAt, ResolvedAt: e.resolvedAt, Signals: e.signals, Notified: e.notified, HoldEnd: e.holdEnd,
			Evidence: evidence{
				First: slices.Clone(e.ev.First), Last: slices.Clone(e.ev.Last),
				Next: e.ev.Next, Total: e.ev.Total, Max: e.ev.Max,
			},
		}
		if e.forDur > 0 {
			a.For = e.forDur.String()
		}
		s.Alerts = append(s.Alerts, a)
	}
	for _, sl := range m.silences {
		c := sl.clone()
		s.Silences = append(s.Silences, c)
	}
	for _, g := range m.groups {
		sg := snapGroup{
			Key: g.key, Route: g.route.id, Receiver: g.route.receiver, CreatedAt: g.createdAt,
			NextFlush: g.nextFlush, Members: slices.Sorted(maps.Keys(g.members)),
		}
		for _, st := range g.sent {
			sg.Sent = append(sg.Sent, snapSent{At: st.At, Firing: slices.Clone(st.Firing)})
		}
		s.Groups = append(s.Groups, sg)
	}
	m.mu.Unlock()
	sort.Slice(s.Alerts, func(i, j int) bool { return s.Alerts[i].Fingerprint < s.Alerts[j].Fingerprint })
	sort.Slice(s.Silences, func(i, j int) bool { return s.Silences[i].ID < s.Silences[j].ID })
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].Key < s.Groups[j].Key })
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode alert snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the manager's state with a snapshot. Call it before Run
// and before the first Process. The snapshot is checked completely first;
// on error nothing changes. Groups whose route no longer exists in the
// configuration are rebuilt from their alerts (and wait group_wait again);
// when more than max_alerts alerts are active, the least severe, oldest
// are dropped.
func (m *Manager) Restore(b []byte) error {
	if len(b) > MaxSnapshotBytes {
		return fmt.Errorf("restore alerts: snapshot larger than %d bytes", MaxSnapshotBytes)
	}
	var s snapshot
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("restore alerts: decode snapshot: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("restore alerts: data after the snapshot")
	}
	if s.Version != SnapshotVersion {
		return fmt.Errorf("restore alerts: snapshot version %d, this Vigil reads version %d", s.Version, SnapshotVersion)
	}
	now := m.now()
	alerts, err := m.restoreAlerts(s.Alerts)
	if err != nil {
		return fmt.Errorf("restore alerts: %w", err)
	}
	silences := map[string]*Silence{}
	if len(s.Silences) > m.cfg.MaxSilences {
		return fmt.Errorf("restore alerts: %d silences, more than max_silences %d", len(s.Silences), m.cfg.MaxSilences)
	}
	for i := range s.Silences {
		sl := s.Silences[i]
		if sl.ID == "" || len(sl.ID) > 64 || silences[sl.ID] != nil {
			return fmt.Errorf("restore alerts: silences[%d]: missing or repeated id", i)
		}
		if err := sl.validate(now, true); err != nil {
			return fmt.Errorf("restore alerts: silences[%d]: %w", i, err)
		}
		sl.Status = ""
		silences[sl.ID] = &sl
	}
	if len(s.Groups) > 4*m.cfg.MaxAlerts+1000 {
		return fmt.Errorf("restore alerts: %d groups, too many", len(s.Groups))
	}
	saved := map[string]snapGroup{}
	for i, g := range s.Groups {
		if g.Key == "" || len(g.Members) > len(alerts) || len(g.Sent) > 1000 {
			return fmt.Errorf("restore alerts: groups[%d]: bad key, members or sent", i)
		}
		for _, st := range g.Sent {
			if len(st.Firing) > len(alerts) {
				return fmt.Errorf("restore alerts: groups[%d]: more notified alerts than alerts", i)
			}
		}
		saved[g.Key] = g
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.alerts, m.silences, m.groups = alerts, silences, map[string]*group{}
	m.nActive, m.nResolve = 0, 0
	m.silenceGen++
	m.silenceEvaluated = false
	for _, e := range alerts {
		if e.state == StateResolved {
			m.nResolve++
		} else {
			m.nActive++
		}
	}
	// Rebuild groups: firing alerts join every group of their routes;
	// resolved and pending ones only the groups that still held them.
	fps := slices.Sorted(maps.Keys(alerts))
	for _, fp := range fps {
		e := alerts[fp]
		for _, r := range e.routes {
			key := r.id + sortedLabelString(r.groupLabels(e.labels))
			sg, ok := saved[key]
			if e.state != StateFiring && (!ok || !slices.Contains(sg.Members, fp) || sg.Route != r.id) {
				continue
			}
			g := m.groups[key]
			if g == nil {
				g = m.restoreGroup(key, r, e.labels, sg, ok && sg.Route == r.id, now)
				m.groups[key] = g
			}
			g.members[fp] = true
			e.groups[key] = true
		}
	}
	for m.nActive > m.cfg.MaxAlerts {
		v := m.worstActive()
		m.metrics.dropped.Inc()
		m.removeAlert(v)
	}
	m.trimResolved()
	m.refreshSilences(now)
	return nil
}

func (m *Manager) restoreGroup(key string, r *route, labels map[string]string, sg snapGroup, known bool, now time.Time) *group {
	g := &group{
		key: key, route: r, labels: r.groupLabels(labels), members: map[string]bool{},
		createdAt: now, nextFlush: now.Add(r.groupWait),
		sent: make([]notifyState, len(m.receivers[r.receiver])),
	}
	if !known {
		return g
	}
	g.createdAt, g.nextFlush = sg.CreatedAt, sg.NextFlush
	if sg.Receiver != r.receiver {
		return g // other notifiers: what they were told is unknown
	}
	for i := range g.sent {
		if i < len(sg.Sent) {
			g.sent[i] = notifyState{At: sg.Sent[i].At, Firing: slices.Sorted(slices.Values(sg.Sent[i].Firing))}
		}
	}
	return g
}

// restoreAlerts checks and rebuilds the alerts of a snapshot.
func (m *Manager) restoreAlerts(in []snapAlert) (map[string]*entry, error) {
	if len(in) > 3*m.cfg.MaxAlerts {
		return nil, fmt.Errorf("%d alerts, more than 3 × max_alerts", len(in))
	}
	out := make(map[string]*entry, len(in))
	for i, a := range in {
		field := fmt.Sprintf("alerts[%d]", i)
		labels, err := Signal{Rule: a.Rule, Labels: a.Labels, Annotations: a.Annotations}.normalize()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if !maps.Equal(labels, a.Labels) {
			return nil, fmt.Errorf("%s: labels lack alertname or rule", field)
		}
		if fp := Fingerprint(labels); fp != a.Fingerprint {
			return nil, fmt.Errorf("%s: fingerprint %q does not match its labels (%s)", field, a.Fingerprint, fp)
		}
		if out[a.Fingerprint] != nil {
			return nil, fmt.Errorf("%s: fingerprint %s repeated", field, a.Fingerprint)
		}
		switch a.State {
		case StatePending, StateFiring, StateResolved:
		default:
			return nil, fmt.Errorf("%s: unknown state %q", field, a.State)
		}
		var forDur time.Duration
		if a.For != "" {
			if forDur, err = time.ParseDuration(a.For); err != nil || forDur < 0 {
				return nil, fmt.Errorf("%s: bad for %q", field, a.For)
			}
		}
		if err := a.Evidence.valid(); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if a.Signals < 0 {
			return nil, fmt.Errorf("%s: negative signals", field)
		}
		e := &entry{
			fp: a.Fingerprint, rule: a.Rule, labels: labels, annotations: maps.Clone(a.Annotations),
			state: a.State, forDur: forDur, activeAt: a.ActiveAt, startsAt: a.StartsAt, endsAt: a.EndsAt,
			updatedAt: a.UpdatedAt, resolvedAt: a.ResolvedAt, signals: a.Signals, groups: map[string]bool{}, notified: a.Notified, holdEnd: a.HoldEnd,
			ev: evidence{
				First: slices.Clone(a.Evidence.First), Last: slices.Clone(a.Evidence.Last),
				Next: a.Evidence.Next, Total: a.Evidence.Total, Max: a.Evidence.Max,
			},
		}
		e.routes = m.root.match(labels)
		out[e.fp] = e
	}
	return out, nil
}

// worstActive returns the least severe, oldest pending or firing alert.
func (m *Manager) worstActive() *entry {
	var v *entry
	for _, e := range m.alerts {
		if e.state == StateResolved {
			continue
		}
		if v == nil {
			v = e
			continue
		}
		er, vr := severityRank(e.labels["severity"]), severityRank(v.labels["severity"])
		switch {
		case er != vr:
			if er > vr {
				v = e
			}
		case !e.activeAt.Equal(v.activeAt):
			if e.activeAt.Before(v.activeAt) {
				v = e
			}
		case e.fp < v.fp:
			v = e
		}
	}
	return v
}
