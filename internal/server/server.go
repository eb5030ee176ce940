// Package server wires Vigil together: data directory, store, receivers, API,
// metrics, and the HTTP server with graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/api"
	"github.com/vigilsec/vigil/internal/auth"
	"github.com/vigilsec/vigil/internal/config"
	"github.com/vigilsec/vigil/internal/crypt"
	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/httperr"
	"github.com/vigilsec/vigil/internal/ingest"
	"github.com/vigilsec/vigil/internal/ledger"
	"github.com/vigilsec/vigil/internal/retention"
	"github.com/vigilsec/vigil/internal/store"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// Options are the start-up settings that do not belong in the config file.
type Options struct {
	// AdminToken, when set (VIGIL_ADMIN_TOKEN), becomes the admin token.
	AdminToken string
	// Out receives the one-time display of a generated admin token.
	Out io.Writer
	Log *slog.Logger
	// Pprof mounts net/http/pprof under /debug/pprof/ (token required).
	Pprof bool
}

// Server is a running Vigil.
type Server struct {
	cfg      config.Config
	log      *slog.Logger
	store    store.Store
	tokens   *auth.Tokens
	http     *http.Server
	access   *api.AccessLog
	listener net.Listener
	useTLS   bool
	ready    atomic.Bool
	detect   *detection
	ledger   *ledger.Ledger
	purger   *retention.Purger
	enc      *crypt.Encrypter // nil: encryption at rest is off
	hub      *api.Hub         // wakes the readers of the log
}

// decrypt returns the plaintext of a stored event; envelopes of keys the
// keyring lacks (shredded) stay as they are.
func (s *Server) decrypt(r store.Record) ([]byte, error) {
	return s.enc.DecryptEvent(r.Canonical, "", crypt.KeepUnknownKeys)
}

// listKeys answers the data keys: id, creation time, fingerprint, which is
// current. Never the keys.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	httperr.JSON(w, http.StatusOK, map[string]any{"current": s.enc.Keyring().Current(), "keys": s.keys()})
}

type keyInfo struct {
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	Current     bool      `json:"current"`
	Fingerprint string    `json:"fingerprint"`
}

func (s *Server) keys() []keyInfo {
	var out []keyInfo
	for _, k := range s.enc.Keyring().Keys() {
		out = append(out, keyInfo{k.ID, k.Created, k.Current, k.Fingerprint})
	}
	return out
}

// rotateKey makes a new data key for new writes; old events stay readable.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) {
	id, err := s.enc.Keyring().Rotate()
	if err != nil {
		httperr.Msg(w, http.StatusInternalServerError, "rotate: "+err.Error())
		return
	}
	s.log.Info("data key rotated", "key", id)
	// The new key's fingerprint goes into the log, pinning the key an
	// auditor may later be shown.
	for _, k := range s.keys() {
		if k.ID != id {
			continue
		}
		s.auditKey(r, "vigil_key_rotated", "creation", map[string]any{"id": k.ID, "fingerprint": k.Fingerprint},
			"data key "+k.ID+" made; new events are encrypted with it")
	}
	httperr.JSON(w, http.StatusOK, map[string]any{"current": id, "keys": s.keys()})
}

// rotateLedgerKey replaces the key that signs the log's checkpoints
// (ledger.RotateKey). The rotation is itself recorded in the log, with both
// public keys; the answer gives the statement that links them.
func (s *Server) rotateLedgerKey(w http.ResponseWriter, r *http.Request) {
	rot, err := s.ledger.RotateKey(r.Context())
	if err != nil && rot.Note == "" {
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	if err != nil {
		s.log.Error("ledger key rotation", "err", err)
	}
	s.auditKey(r, "vigil_ledger_key_rotated", "change", map[string]any{"old": rot.Old, "new": rot.New, "tree_size": rot.Size},
		fmt.Sprintf("the key signing the log's checkpoints was rotated at %d events", rot.Size))
	httperr.JSON(w, http.StatusOK, map[string]any{"rotation": rot, "public_key": rot.New})
}

// maxKeyRequest bounds the body of the key routes.
const maxKeyRequest = 4 << 10

// shredKey deletes a data key from the keyring (crypto-shredding): the
// fields it sealed can never be read again, while the events and the
// integrity log stay whole. The body repeats the key's ID, {"confirm": ID}:
// there is no undo.
func (s *Server) shredKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var req struct {
		Confirm string `json:"confirm"`
	}
	if !httperr.DecodeBody(w, r, maxKeyRequest, "shred", &req) {
		return
	}
	if req.Confirm != id {
		httperr.Msg(w, http.StatusBadRequest, fmt.Sprintf(`shredding a key cannot be undone: send {"confirm": %q}`, id))
		return
	}
	keys := s.keys()
	i := slices.IndexFunc(keys, func(k keyInfo) bool { return k.ID == id })
	switch {
	case i < 0:
		httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no data key %q", id))
		return
	case keys[i].Current:
		httperr.Msg(w, http.StatusConflict, fmt.Sprintf("data key %q is the current key: rotate first", id))
		return
	}
	k := keys[i]
	if err := s.enc.Keyring().Shred(id); err != nil {
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	s.log.Warn("data key shredded", "key", id)
	s.auditKey(r, "vigil_key_shredded", "deletion", map[string]any{"id": k.ID, "fingerprint": k.Fingerprint},
		"data key "+k.ID+" shredded: the fields it encrypted can no longer be read")
	httperr.JSON(w, http.StatusOK, map[string]any{"current": s.enc.Keyring().Current(), "keys": s.keys()})
}

// changeMasterKey wraps every data key again under the master key in the
// file the request names, which the server reads as it reads
// encryption.master_key_file (32 bytes in base64, mode 0600 or stricter,
// outside the data directory). The events do not change; afterwards only
// the new master key opens keys.json, so the configuration must name it
// before the next start.
func (s *Server) changeMasterKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		File string `json:"master_key_file"`
	}
	if !httperr.DecodeBody(w, r, maxKeyRequest, "master key change", &req) {
		return
	}
	if req.File == "" || !filepath.IsAbs(req.File) {
		httperr.Msg(w, http.StatusBadRequest, `want {"master_key_file": "/absolute/path"} naming a file on the server`)
		return
	}
	dataDir, err := filepath.Abs(s.cfg.DataDir)
	if err != nil {
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	if rel, err := filepath.Rel(dataDir, filepath.Clean(req.File)); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		httperr.Msg(w, http.StatusBadRequest, "the master key must be kept outside the data directory (and its backups)")
		return
	}
	key, err := crypt.LoadMasterKey(req.File, "")
	if err != nil {
		httperr.Msg(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.enc.Keyring().ChangeMasterKey(key); err != nil {
		httperr.Msg(w, http.StatusInternalServerError, err.Error())
		return
	}
	clear(key)
	s.log.Warn("master key changed: set encryption.master_key_file (or master_key_env) to the new key before the next start", "file", req.File)
	s.auditKey(r, "vigil_master_key_changed", "change", nil, "data keys wrapped again under a new master key")
	httperr.JSON(w, http.StatusOK, map[string]any{
		"changed": true,
		"next":    "set encryption.master_key_file to " + req.File + " (or master_key_env to a variable holding it) before the next start: the old master key no longer opens keys.json",
	})
}

// auditKey records a key operation in the log with the token that made it.
// The operation is done either way; a failure to record it is logged.
func (s *Server) auditKey(r *http.Request, action, typ string, key map[string]any, msg string) {
	var vigil map[string]any
	if key != nil {
		vigil = map[string]any{"key": key}
	}
	if err := s.auditChange(r, "configuration", typ, action, vigil, func(who string) string { return msg + " (by " + who + ")" }); err != nil {
		s.log.Error("record key operation in the log", "action", action, "err", err)
	}
}

// auditChange records a change made through the API in the log: user.name
// is the token that made it, vigil (when not nil) describes what changed,
// message is built from the token's name.
func (s *Server) auditChange(r *http.Request, category, typ, action string, vigil map[string]any, message func(who string) string) error {
	who, _ := auth.FromContext(r.Context())
	doc := map[string]any{
		"event":   map[string]any{"kind": "event", "category": category, "type": typ, "action": action, "outcome": "success"},
		"user":    map[string]any{"name": who.Name},
		"message": message(who.Name),
	}
	if vigil != nil {
		doc["vigil"] = vigil
	}
	return s.appendAudit(r.Context(), doc)
}

// New prepares the data directory, opens the store and binds the listener.
func New(cfg config.Config, opts Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if err := PrepareDataDir(cfg.DataDir, cfg.AllowOpenDataDir); err != nil {
		return nil, err
	}
	tokens, err := auth.Load(filepath.Join(cfg.DataDir, "tokens.json"))
	if err != nil {
		return nil, err
	}
	if opts.AdminToken != "" {
		if err := tokens.Add("admin", "admin", opts.AdminToken); err != nil {
			return nil, fmt.Errorf("VIGIL_ADMIN_TOKEN: %w", err)
		}
	} else if tokens.Len() == 0 {
		tok := auth.NewToken()
		if err := tokens.Add("admin", "admin", tok); err != nil {
			return nil, err
		}
		out := opts.Out
		if out == nil {
			out = os.Stdout
		}
		fmt.Fprintf(out, "\nAdmin token (shown once, stored hashed; keep it safe):\n\n    export VIGIL_TOKEN=%s\n\n"+
			"Give applications a token with only what they need:\n\n    vigil token create NAME --role ingest\n\n", tok)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	commit := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_store_commit_seconds",
		Help:    "Time to commit one group of batches durably.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	commitEvents := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "vigil_store_commit_events",
		Help:    "Events per durable commit (group commit size).",
		Buckets: prometheus.ExponentialBuckets(1, 4, 9),
	})
	reg.MustRegister(commit, commitEvents)

	st, err := sqlite.Open(filepath.Join(cfg.DataDir, "events.db"), sqlite.Options{
		OnCommit: func(d time.Duration, n int) {
			commit.Observe(d.Seconds())
			commitEvents.Observe(float64(n))
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	last, err := st.LastSeq(context.Background())
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "vigil_store_last_seq", Help: "Highest committed sequence number.",
	}, func() float64 {
		n, _ := st.LastSeq(context.Background())
		return float64(n)
	}))

	s := &Server{cfg: cfg, log: log, store: st, tokens: tokens}
	hub := api.NewHub(last)
	s.hub = hub
	_, statErr := os.Stat(filepath.Join(cfg.DataDir, crypt.KeysFile))
	if cfg.Encryption.Enabled && errors.Is(statErr, os.ErrNotExist) {
		// A log that recorded a data key has envelopes only that keyring
		// opens: a new one would leave them unreadable.
		n, err := st.Count(context.Background(), store.Query{Action: "vigil_key_created"})
		if err != nil {
			st.Close()
			return nil, fmt.Errorf("encryption: %w", err)
		}
		if n > 0 {
			st.Close()
			return nil, fmt.Errorf("encryption: %s is missing from %s, but the log records data keys made before: restore it from a backup (a new keyring could not open the events sealed with the old keys)",
				crypt.KeysFile, cfg.DataDir)
		}
	}
	enc, err := crypt.New(cfg.Encryption, cfg.DataDir)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("encryption: %w", err)
	}
	s.enc = enc
	if enc != nil && errors.Is(statErr, os.ErrNotExist) {
		// The first data key was just made: its fingerprint goes into the
		// log, as every rotated key's does.
		for _, k := range s.keys() {
			err := s.appendAudit(context.Background(), map[string]any{
				"event":   map[string]any{"kind": "event", "category": "configuration", "type": "creation", "action": "vigil_key_created", "outcome": "success"},
				"vigil":   map[string]any{"key": map[string]any{"id": k.ID, "fingerprint": k.Fingerprint}},
				"message": "first data key " + k.ID + " made; encryption at rest is on",
			})
			if err != nil {
				st.Close()
				return nil, fmt.Errorf("encryption: record the first key in the log: %w", err)
			}
		}
	}
	in := ingest.NewHTTP(st, cfg.Ingest.Limits(), ingest.NewMetrics(reg))
	in.OnCommit = hub.Publish

	mux := http.NewServeMux()
	mux.Handle("/api/v1/events", tokens.Require(in, in.CountUnauthorized))
	events := &api.Events{Store: st, Hub: hub}
	if enc != nil {
		// Sensitive fields are sealed before they are stored; readers see
		// them in clear.
		lim := event.Limits{MaxBytes: cfg.Ingest.MaxEventBytes, MaxDepth: cfg.Ingest.MaxDepth}
		in.Prepare = func(e *event.Event) error {
			sealed, err := enc.EncryptParsed(*e, lim)
			var re *crypt.ReservedError
			if errors.As(err, &re) {
				return fmt.Errorf("%w: %v", ingest.ErrRefused, err)
			}
			if err != nil {
				return err
			}
			*e = sealed
			return nil
		}
		events.Decrypt = s.decrypt
		mux.Handle("GET /api/v1/keys", s.requireToken(http.HandlerFunc(s.listKeys)))
		mux.Handle("POST /api/v1/keys/rotate", s.requireToken(http.HandlerFunc(s.rotateKey)))
		mux.Handle("POST /api/v1/keys/{id}/shred", s.requireToken(http.HandlerFunc(s.shredKey)))
		mux.Handle("POST /api/v1/keys/master", s.requireToken(http.HandlerFunc(s.changeMasterKey)))
	}
	events.Register(mux, s.requireToken)
	s.registerTokens(mux)
	// Every API request a token makes is summed and recorded in the log.
	apiRequests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vigil_api_requests_total",
		Help: "Requests to the API by route pattern and status code, ingest included.",
	}, []string{"route", "code"})
	reg.MustRegister(apiRequests)
	s.access = &api.AccessLog{Append: s.appendEvents, Interval: time.Duration(cfg.AccessLogInterval), Log: log, Requests: apiRequests}
	s.http = &http.Server{
		Handler:           s.access.Middleware(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	mux.Handle("GET /metrics", s.requireToken(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	if opts.Pprof {
		mux.Handle("/debug/pprof/", s.requireToken(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", s.requireToken(http.HandlerFunc(pprof.Profile)))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		httperr.JSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httperr.Msg(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path))
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	s.listener = ln
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			st.Close()
			return nil, fmt.Errorf("field tls: %w", err)
		}
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.useTLS = true
	}
	// Detection is set up once the listener is bound: its links use the
	// server's URL. Its routes are added before serving starts.
	s.detect, err = newDetection(cfg, st, hub, reg, log, s.URL, s.appendEvents)
	if err == nil && s.enc != nil {
		s.detect.cursor.Decrypt = s.decrypt
	}
	if err != nil {
		ln.Close()
		st.Close()
		return nil, err
	}
	s.detect.mount(mux, s.requireToken, s.http, s.auditSilence)
	// The Merkle tree over the log and its signed checkpoints. Public key,
	// checkpoints and consistency proofs need no token (a witness reads
	// them, and they reveal no event); inclusion proofs and exports do.
	s.ledger, err = ledger.Open(cfg.DataDir, st, ledger.Options{Origin: cfg.Ledger.Origin, Log: log})
	if err != nil {
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("ledger: %w", err)
	}
	s.ledger.Register(mux, s.requireToken)
	mux.Handle("POST /api/v1/ledger/rotate", s.requireToken(http.HandlerFunc(s.rotateLedgerKey)))
	// Retention: the purge job archives, then removes, what its policies
	// no longer keep; POST /api/v1/purge runs one by hand.
	rcfg := cfg.Retention
	rcfg.SetDefaults()
	holds, err := retention.NewHolds(rcfg.Holds)
	if err != nil {
		s.ledger.Close()
		ln.Close()
		st.Close()
		return nil, fmt.Errorf("field retention.holds: %w", err)
	}
	holdAPI, err := retention.NewHoldAPI(holds, filepath.Join(cfg.DataDir, retention.HoldsFile), rcfg.Holds)
	if err != nil {
		s.ledger.Close()
		ln.Close()
		st.Close()
		return nil, err
	}
	holdAPI.Audit = func(r *http.Request, action string, h retention.Hold) error {
		return s.auditChange(r, "configuration", "change", action, map[string]any{"hold": h}, func(who string) string {
			return fmt.Sprintf("legal hold %s %s by %s", h.ID, strings.TrimPrefix(action, "vigil_hold_"), who)
		})
	}
	holdAPI.Register(mux, s.requireToken)
	s.purger = &retention.Purger{Store: st, Ledger: s.ledger, DataDir: cfg.DataDir, Config: rcfg,
		Holds: holds, Log: log, Metrics: retention.NewMetrics(reg)}
	mux.Handle("/api/v1/purge", s.requireToken(s.purger.Handler()))
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// URL is the base URL of the server.
func (s *Server) URL() string {
	if s.useTLS {
		return "https://" + s.Addr()
	}
	return "http://" + s.Addr()
}

// ReloadRules loads the detection rules again (on SIGHUP). On error the
// rules in force stay and the error says why.
func (s *Server) ReloadRules() error { return s.detect.reload() }

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Run serves until ctx ends, then drains in-flight requests (each waits for
// its batch to be durable), closes the store and returns.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if s.useTLS {
			err = s.http.ServeTLS(s.listener, "", "")
		} else {
			err = s.http.Serve(s.listener)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	dctx, stopDetection := context.WithCancel(context.Background())
	detectDone := make(chan struct{})
	go func() {
		defer close(detectDone)
		s.detect.run(dctx)
	}()
	pctx, stopPurges := context.WithCancel(context.Background())
	purgeDone := make(chan struct{})
	go func() {
		defer close(purgeDone)
		if err := (&retention.Job{Purger: s.purger}).Run(pctx); err != nil && pctx.Err() == nil {
			s.log.Error("retention job stopped", "err", err)
		}
	}()
	actx, stopAccess := context.WithCancel(context.Background())
	accessDone := make(chan struct{})
	go func() {
		defer close(accessDone)
		s.access.Run(actx)
	}()
	lctx, stopLedger := context.WithCancel(context.Background())
	ledgerDone := make(chan struct{})
	go func() {
		defer close(ledgerDone)
		if err := s.ledger.Run(lctx); err != nil {
			s.log.Error("ledger stopped", "err", err)
		}
	}()
	s.ready.Store(true)
	s.log.Info("vigil serving", "url", s.URL(), "data_dir", s.cfg.DataDir)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.ready.Store(false)
	s.log.Info("vigil shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.ShutdownTimeout))
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("drain did not finish in time", "err", err)
		s.http.Close()
	}
	// The requests served are recorded; detection stops after the last
	// events are in, and saves its state before the store closes.
	stopAccess()
	<-accessDone
	stopPurges()
	<-purgeDone
	stopDetection()
	<-detectDone
	// The ledger hashes the last events and signs a final checkpoint.
	stopLedger()
	<-ledgerDone
	if err := s.ledger.Close(); err != nil {
		s.log.Error("close ledger", "err", err)
	}
	if err := s.store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	s.log.Info("vigil stopped")
	return serveErr
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if !s.ready.Load() {
		httperr.Msg(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	if _, err := s.store.LastSeq(r.Context()); err != nil {
		httperr.Msg(w, http.StatusServiceUnavailable, "store: "+err.Error())
		return
	}
	httperr.JSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) requireToken(next http.Handler) http.Handler {
	return s.tokens.Require(next, nil)
}

// PrepareDataDir creates dir with mode 0700, or checks that an existing one
// is not open to other users.
func PrepareDataDir(dir string, allowOpen bool) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create data directory: %w", err)
		}
		return os.Chmod(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 != 0 && !allowOpen {
		return fmt.Errorf("data directory %s has mode %04o: other users could read security events; fix with: chmod 700 %s (or start with --allow-open-data-dir)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}

// auditSilence records a silence made or expired through the API, with the
// token that did it (a silence's createdBy is whatever the client wrote).
func (s *Server) auditSilence(r *http.Request, action string, sil alert.Silence) {
	matchers := make([]string, len(sil.Matchers))
	for i, m := range sil.Matchers {
		matchers[i] = m.String()
	}
	err := s.auditChange(r, "configuration", "change", action, map[string]any{"silence": map[string]any{
		"id": sil.ID, "matchers": matchers, "starts_at": sil.StartsAt, "ends_at": sil.EndsAt,
		"created_by": sil.CreatedBy, "comment": sil.Comment,
	}}, func(who string) string {
		return fmt.Sprintf("silence %s %s by %s: %s", sil.ID, strings.TrimPrefix(action, "vigil_silence_"), who, strings.Join(matchers, ", "))
	})
	if err != nil {
		s.log.Error("record silence change in the log", "action", action, "silence", sil.ID, "err", err)
	}
}

// appendAudit stores one of Vigil's own audit events, durably, and wakes
// the readers of the log.
func (s *Server) appendAudit(ctx context.Context, doc map[string]any) error {
	e, err := event.FromDoc(doc, time.Now())
	if err != nil {
		return err
	}
	return s.appendEvents(ctx, []event.Event{e})
}

// appendEvents stores events Vigil makes itself (audit, decisions),
// durably, and wakes the readers of the log.
func (s *Server) appendEvents(ctx context.Context, events []event.Event) error {
	res, err := s.store.Append(ctx, events)
	if err == nil && len(res.Seqs) > 0 {
		s.hub.Publish(res.Seqs[len(res.Seqs)-1])
	}
	return err
}
