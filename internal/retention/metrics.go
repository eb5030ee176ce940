package retention

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the purge job's Prometheus metrics.
type Metrics struct {
	Purged   prometheus.Counter     // vigil_retention_events_purged_total
	Archives prometheus.Counter     // vigil_retention_archives_written_total
	Runs     *prometheus.CounterVec // vigil_retention_runs_total{outcome}
	LastRun  prometheus.Gauge       // vigil_retention_last_run_timestamp_seconds
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Purged:   prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_retention_events_purged_total", Help: "Events removed by retention."}),
		Archives: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_retention_archives_written_total", Help: "Archive files written by retention."}),
		Runs:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_retention_runs_total", Help: "Purge runs by outcome (ok, error)."}, []string{"outcome"}),
		LastRun:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_retention_last_run_timestamp_seconds", Help: "Start time of the last purge run."}),
	}
	if reg != nil {
		reg.MustRegister(m.Purged, m.Archives, m.Runs, m.LastRun)
	}
	return m
}

func (m *Metrics) observe(start time.Time, res *Result, err error) {
	m.LastRun.Set(float64(start.UnixNano()) / 1e9)
	if res != nil {
		m.Purged.Add(float64(res.Events - res.Absent))
		m.Archives.Add(float64(len(res.Archives)))
	}
	if err != nil {
		m.Runs.WithLabelValues("error").Inc()
	} else {
		m.Runs.WithLabelValues("ok").Inc()
	}
}
