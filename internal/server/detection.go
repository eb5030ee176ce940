package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/api"
	"github.com/vigilsec/vigil/internal/atomicfile"
	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/detect"
	"github.com/vigilsec/vigil/internal/notify"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/store"
)

// detection wires detection, alerting and automatic response together:
// a cursor runs the rules over the log; signals become alerts (notified
// through the receivers) and, for rules with an action, decisions (bans and
// throttles) that applications enforce through the decision stream.
type detection struct {
	log      *slog.Logger
	store    store.Store
	engine   *detect.Engine
	cursor   *detect.Cursor
	alerts   *alert.Manager
	decide   *respond.Manager
	queue    *decisionQueue // makes decide's decisions for the signals
	handler  *respond.Handler
	rules    config.Rules
	loadOpts detect.LoadOptions
	// statePath holds the alert manager's snapshot, saved before the
	// detection cursor moves (see detect.Cursor.Commit).
	statePath string
	saveMu    sync.Mutex
}

// File names in the data directory.
const (
	alertStateFile  = "alerts.json"
	decisionKeyFile = "decisions.key"
)

func newDetection(cfg config.Config, st store.Store, hub *api.Hub, reg prometheus.Registerer,
	log *slog.Logger, baseURL func() string, appendEvents respond.Appender) (*detection, error) {
	d := &detection{
		log: log, store: st, rules: cfg.Rules,
		loadOpts:  detect.LoadOptions{NoBuiltin: cfg.Rules.NoBuiltin, DisabledBuiltin: cfg.Rules.DisabledBuiltin},
		statePath: filepath.Join(cfg.DataDir, alertStateFile),
	}
	rs, err := detect.Load(cfg.Rules.Dir, d.loadOpts)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	d.engine = detect.NewEngine(rs)

	receivers, err := notify.Build(cfg.Notify.Receivers, notify.Options{ExternalURL: baseURL()})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	if _, ok := receivers["default"]; !ok && len(cfg.Notify.Receivers) == 0 {
		receivers["default"] = nil // alerts are tracked and listed, not sent
	}
	d.alerts, err = alert.New(alert.Options{
		Config: cfg.Alerting, Receivers: receivers, Registerer: reg, Log: log,
		GeneratorURL: func(fp string) string { return baseURL() + "/api/v1/alerts/" + fp },
	})
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	if b, err := os.ReadFile(d.statePath); err == nil {
		if err := d.alerts.Restore(b); err != nil {
			return nil, fmt.Errorf("restore alerts from %s: %w", d.statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("restore alerts: %w", err)
	}

	key, err := loadOrCreateKey(filepath.Join(cfg.DataDir, decisionKeyFile))
	if err != nil {
		return nil, err
	}
	d.decide, err = respond.NewManager(cfg.Respond, respond.Options{
		Append:     appendEvents,
		Metrics:    respond.NewMetrics(reg),
		Log:        log,
		SigningKey: key,
	})
	if err != nil {
		return nil, fmt.Errorf("respond: %w", err)
	}
	stats, err := d.decide.ReplayFrom(context.Background(), st)
	if err != nil {
		return nil, fmt.Errorf("respond: replay decisions: %w", err)
	}
	log.Info("decisions restored from the log", "stats", fmt.Sprintf("%+v", stats))
	d.handler = respond.NewHandler(d.decide, respond.HandlerOptions{
		Log: log,
		Actor: func(r *http.Request) string {
			e, _ := auth.FromContext(r.Context())
			return e.Name
		},
	})

	d.queue = newDecisionQueue(d.decide, log)
	d.cursor = &detect.Cursor{
		Store: st, Engine: d.engine, Name: "detect", Wait: hub.Wait,
		Handle: d.handle, Commit: d.commit,
		Log: log,
	}
	registerDetectMetrics(reg, d.engine, d.cursor, st)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_decisions_queued",
		Help: "Decisions of detection rules waiting to be made (see docs/response.md).",
	}, func() float64 { return float64(d.queue.waiting()) }))
	return d, nil
}

// mount adds the alert, silence and decision APIs to mux behind wrap;
// audit records silences made and expired in the log.
func (d *detection) mount(mux *http.ServeMux, wrap func(http.Handler) http.Handler, srv *http.Server,
	audit func(r *http.Request, action string, s alert.Silence)) {
	api := alert.NewAPI(d.alerts)
	api.Audit = audit
	api.Register(mux, wrap)
	mux.Handle("/api/v1/decisions", wrap(d.handler))
	mux.Handle("/api/v1/decisions/", wrap(d.handler))
	srv.RegisterOnShutdown(d.handler.CloseStreams)
}

// run runs the detection cursor, the alert manager, the decision expiry and
// the rules watcher until ctx ends, then saves the alert state.
func (d *detection) run(ctx context.Context) {
	stopQueue, queueDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(queueDone)
		d.queue.run(ctx, stopQueue)
	}()
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := d.cursor.Run(ctx); err != nil {
			d.log.Error("detection stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.alerts.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("alert manager stopped", "err", err)
		}
	})
	wg.Go(func() {
		if err := d.decide.Run(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("decision expiry stopped", "err", err)
		}
	})
	if d.rules.Dir != "" {
		w := detect.NewWatcher(d.rules.Dir, d.loadOpts, d.setRules)
		w.Poll() // the files as loaded at start: no change
		wg.Go(func() { w.Run(ctx, detect.DefaultWatchInterval) })
	}
	wg.Wait()
	// The cursor's last save flushed the queue; signals of a rules reload
	// may have come since.
	close(stopQueue)
	<-queueDone
	if err := d.saveState(); err != nil {
		d.log.Error("save alert state", "err", err)
	}
}

// reload loads the rules again (SIGHUP). On error the rules in force stay.
func (d *detection) reload() error {
	rs, err := detect.Load(d.rules.Dir, d.loadOpts)
	d.setRules(rs, err)
	return err
}

func (d *detection) setRules(rs *detect.RuleSet, err error) {
	if err != nil {
		d.log.Error("rules not reloaded: the previous rules stay in force", "err", err)
		return
	}
	sigs := d.engine.SetRules(rs)
	d.log.Info("rules reloaded", "rules", len(rs.Rules()))
	if err := d.handle(context.Background(), sigs); err != nil {
		d.log.Error("signals of the rules reload", "err", err)
	}
}

// handle turns signals into alerts and, for firing signals of rules with an
// action, into decisions, which it queues (see decisionQueue).
func (d *detection) handle(ctx context.Context, sigs []detect.Signal) error {
	for _, s := range sigs {
		as := alert.Signal{
			Rule: s.Rule, Severity: s.Severity, For: s.For, Labels: s.Labels,
			Annotations: s.Annotations, Firing: s.Firing, At: s.At, Evidence: s.Evidence,
		}
		if err := d.alerts.Process(as); err != nil {
			d.log.Error("signal refused by the alert manager", "rule", s.Rule, "err", err)
			continue
		}
		if !s.Firing || s.Action == nil || s.Action.Value == "" {
			continue
		}
		dec := respond.Decision{
			Type: s.Action.Type, Scope: s.Action.Scope, Value: s.Action.Value,
			Reason: s.Annotations["summary"], Origin: s.Rule,
			AlertFingerprint: alert.Fingerprint(as.Labels),
			Until:            time.Now().Add(s.Action.TTL),
		}
		if err := d.queue.add(ctx, dec, s.Rule); err != nil {
			return err
		}
	}
	return nil
}

// commit runs before the detection cursor saves its position: the
// decisions of the signals handled so far are made, then the alert state
// is saved.
func (d *detection) commit(ctx context.Context, _ uint64) error {
	if err := d.queue.flush(ctx); err != nil {
		return err
	}
	return d.saveState()
}

// saveState writes the alert manager's snapshot atomically.
func (d *detection) saveState() error {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	b, err := d.alerts.Snapshot()
	if err != nil {
		return err
	}
	return atomicfile.Write(d.statePath, b)
}

// loadOrCreateKey returns the 32-byte key in path, creating it (mode 0600)
// on first start.
func loadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s: want 32 bytes, found %d (delete it only if no decision must survive)", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, b); err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return b, nil
}

func registerDetectMetrics(reg prometheus.Registerer, e *detect.Engine, c *detect.Cursor, st store.Store) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_detect_events_total", Help: "Events evaluated by the detection rules.",
		}, func() float64 { return float64(e.Stats().Events) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vigil_detect_signals_firing_total", Help: "Firing signals emitted by the detection rules.",
		}, func() float64 { return float64(e.Stats().Firing) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_detect_groups", Help: "Groups held in detection windows.",
		}, func() float64 { return float64(e.Stats().Groups) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vigil_detect_lag_events",
			Help: "Events committed to the log that detection has not evaluated yet.",
		}, func() float64 {
			last, err := st.LastSeq(context.Background())
			if err != nil {
				return 0
			}
			return float64(last - min(last, c.Position()))
		}),
	)
}
