package respond

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the decision metrics.
type Metrics struct {
	Active          *prometheus.GaugeVec   // vigil_decisions_active{type,scope}
	Added           *prometheus.CounterVec // vigil_decisions_added_total{type,scope}
	Extended        *prometheus.CounterVec // vigil_decisions_extended_total{type,scope}
	Removed         *prometheus.CounterVec // vigil_decisions_removed_total{type,scope}
	Expired         *prometheus.CounterVec // vigil_decisions_expired_total{type,scope}
	Refused         *prometheus.CounterVec // vigil_decisions_refused_total{reason}: allowlist, limit
	ReplayRejected  prometheus.Counter     // vigil_decisions_replay_rejected_total
	Subscribers     prometheus.Gauge       // vigil_decision_stream_subscribers
	SlowSubscribers prometheus.Counter     // vigil_decision_stream_dropped_total
}

// NewMetrics creates the metrics and registers them with reg (when not
// nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	ts := []string{"type", "scope"}
	m := &Metrics{
		Active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_decisions_active", Help: "Decisions in force, by type and scope.",
		}, ts),
		Added: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_added_total", Help: "New decisions made, by type and scope.",
		}, ts),
		Extended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_extended_total", Help: "Decisions in force made longer or upgraded to a ban, by type and scope.",
		}, ts),
		Removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_removed_total", Help: "Decisions removed before their end, by type and scope.",
		}, ts),
		Expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_expired_total", Help: "Decisions ended by their TTL, by type and scope.",
		}, ts),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_decisions_refused_total", Help: "Decisions refused, by reason: allowlist (the value is allowlisted) or limit (max_active reached).",
		}, []string{"reason"}),
		ReplayRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_decisions_replay_rejected_total", Help: "Decision events of the log refused at replay (malformed, or not signed by this Vigil).",
		}),
		Subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_decision_stream_subscribers", Help: "Clients following the decision stream.",
		}),
		SlowSubscribers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_decision_stream_dropped_total", Help: "Stream clients disconnected for falling behind.",
		}),
	}
	for _, t := range []string{TypeBan, TypeThrottle} {
		for _, s := range []string{ScopeIP, ScopeRange, ScopeUser} {
			m.Active.WithLabelValues(t, s)
		}
	}
	m.Refused.WithLabelValues("allowlist")
	m.Refused.WithLabelValues("limit")
	if reg != nil {
		reg.MustRegister(m.Active, m.Added, m.Extended, m.Removed, m.Expired, m.Refused,
			m.ReplayRejected, m.Subscribers, m.SlowSubscribers)
	}
	return m
}
