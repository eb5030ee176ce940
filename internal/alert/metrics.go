package alert

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the manager's Prometheus metrics. Counts of alerts and
// silences are computed when scraped.
type metrics struct {
	m        *Manager
	sent     *prometheus.CounterVec
	failed   *prometheus.CounterVec
	dropped  prometheus.Counter
	alerts   *prometheus.Desc
	silenced *prometheus.Desc
	muted    *prometheus.Desc
	silences *prometheus.Desc
}

func newMetrics(m *Manager) *metrics {
	return &metrics{
		m: m,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alert_notifications_total",
			Help: "Notifications delivered, by receiver.",
		}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_alert_notifications_failed_total",
			Help: "Notifications that failed for good (after their retries) or were dropped, by receiver.",
		}, []string{"receiver"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_alerts_dropped_total",
			Help: "Alerts dropped because max_alerts pending and firing alerts existed.",
		}),
		alerts: prometheus.NewDesc("vigil_alerts", "Alerts tracked, by state.", []string{"state"}, nil),
		silenced: prometheus.NewDesc("vigil_alerts_silenced",
			"Pending and firing alerts muted by at least one active silence.", nil, nil),
		muted: prometheus.NewDesc("vigil_alerts_inhibited",
			"Pending and firing alerts muted by an inhibit rule (a firing source alert).", nil, nil),
		silences: prometheus.NewDesc("vigil_silences", "Silences, by state.", []string{"state"}, nil),
	}
}

func (x *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{x.sent, x.failed, x.dropped, x} {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return errors.New("metrics already registered (one Manager per registry)")
			}
			return err
		}
	}
	return nil
}

// Describe implements prometheus.Collector for the computed gauges.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- x.alerts
	ch <- x.silenced
	ch <- x.muted
	ch <- x.silences
}

// Collect implements prometheus.Collector for the computed gauges.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	m := x.m
	now := m.now()
	m.mu.Lock()
	states := map[string]int{StatePending: 0, StateFiring: 0, StateResolved: 0}
	silenced, muted := 0, 0
	sources := m.inhibitSources()
	for _, e := range m.alerts {
		states[e.state]++
		if e.state != StateResolved && len(e.silencedBy) > 0 {
			silenced++
		}
		if e.state != StateResolved && len(m.inhibitedBy(e, sources)) > 0 {
			muted++
		}
	}
	sil := map[string]int{SilenceActive: 0, SilencePending: 0, SilenceExpired: 0}
	for _, s := range m.silences {
		sil[s.status(now)]++
	}
	m.mu.Unlock()
	for st, n := range states {
		ch <- prometheus.MustNewConstMetric(x.alerts, prometheus.GaugeValue, float64(n), st)
	}
	ch <- prometheus.MustNewConstMetric(x.silenced, prometheus.GaugeValue, float64(silenced))
	ch <- prometheus.MustNewConstMetric(x.muted, prometheus.GaugeValue, float64(muted))
	for st, n := range sil {
		ch <- prometheus.MustNewConstMetric(x.silences, prometheus.GaugeValue, float64(n), st)
	}
}
