// Package config loads and checks Vigil's YAML configuration. Loading does no
// I/O beyond reading the file; Validate names the offending field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/crypt"
	"github.com/vigilsec/vigil/internal/ingest"
	"github.com/vigilsec/vigil/internal/notify"
	"github.com/vigilsec/vigil/internal/respond"
	"github.com/vigilsec/vigil/internal/retention"
)

// Config is the whole configuration. Every field has a working default, so
// Vigil runs with no file at all.
type Config struct {
	Listen   string `yaml:"listen"`
	DataDir  string `yaml:"data_dir"`
	LogLevel string `yaml:"log_level"`
	TLS      TLS    `yaml:"tls"`
	Ingest   Ingest `yaml:"ingest"`
	// ShutdownTimeout bounds the drain of in-flight requests on SIGINT/SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AccessLogInterval is how long API requests are summed before the
	// sums become access events in the log (docs/api.md, "Access log").
	AccessLogInterval Duration `yaml:"access_log_interval"`
	// Alerting routes alerts to receivers, with grouping timers (see
	// docs/alerts.md).
	Alerting alert.Config `yaml:"alerting"`
	// Notify defines the receivers: email, Slack, PagerDuty, webhooks,
	// Alertmanager (see docs/notifications.md).
	Notify notify.Config `yaml:"notify"`
	// Rules selects the detection rules (see docs/rules.md).
	Rules Rules `yaml:"rules"`
	// Respond configures automatic response: decisions and the allowlist
	// (see docs/response.md).
	Respond respond.Config `yaml:"respond"`
	// Ledger names the log in its signed checkpoints (see
	// docs/integrity.md).
	Ledger Ledger `yaml:"ledger"`
	// Retention says how long events are kept, and the purge that archives
	// and removes older ones (see docs/retention.md).
	Retention retention.Config `yaml:"retention"`
	// Encryption encrypts sensitive fields at rest (see
	// docs/encryption.md).
	Encryption crypt.Config `yaml:"encryption"`
	// AllowOpenDataDir lets Vigil start on a data directory that group or
	// others can read (it refuses by default, saying how to fix it).
	AllowOpenDataDir bool `yaml:"allow_open_data_dir"`
}

// Ledger configures the tamper-evident log.
type Ledger struct {
	// Origin is the log's name in its checkpoints, fixed when its key is
	// made on first start (default "vigil/" and 12 random hex digits).
	Origin string `yaml:"origin"`
}

// Rules selects the detection rules: the built-in pack, less the rules named
// in disabled_builtin, plus the rule files of dir (reloaded when they change
// and on SIGHUP).
type Rules struct {
	// Dir holds user rule files (*.yml, *.yaml, Sigma rules). Empty: the
	// built-in pack alone. A relative path is relative to the working
	// directory.
	Dir             string   `yaml:"dir"`
	DisabledBuiltin []string `yaml:"disabled_builtin"`
	// NoBuiltin turns the whole built-in pack off.
	NoBuiltin bool `yaml:"no_builtin"`
}

// TLS enables HTTPS when both files are set.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Ingest holds the receiver limits.
type Ingest struct {
	MaxBodyBytes    int64 `yaml:"max_body_bytes"`
	MaxEventBytes   int   `yaml:"max_event_bytes"`
	MaxDepth        int   `yaml:"max_depth"`
	MaxBatchEvents  int   `yaml:"max_batch_events"`
	MaxConcurrent   int   `yaml:"max_concurrent_requests"`
	MaxQueuedEvents int   `yaml:"max_queued_events"`
}

// Limits converts the ingest section to receiver limits.
func (i Ingest) Limits() ingest.Limits {
	return ingest.Limits{
		MaxBodyBytes: i.MaxBodyBytes, MaxEventBytes: i.MaxEventBytes, MaxDepth: i.MaxDepth,
		MaxBatchEvents: i.MaxBatchEvents, MaxConcurrent: i.MaxConcurrent, MaxQueuedEvents: i.MaxQueuedEvents,
	}
}

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use 10s, 1m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Default returns the configuration used when no file is given.
func Default() Config {
	l := ingest.DefaultLimits
	return Config{
		Listen:   "127.0.0.1:8080",
		DataDir:  "vigil-data",
		LogLevel: "info",
		Ingest: Ingest{
			MaxBodyBytes: l.MaxBodyBytes, MaxEventBytes: l.MaxEventBytes, MaxDepth: l.MaxDepth,
			MaxBatchEvents: l.MaxBatchEvents, MaxConcurrent: l.MaxConcurrent, MaxQueuedEvents: l.MaxQueuedEvents,
		},
		ShutdownTimeout:   Duration(15 * time.Second),
		AccessLogInterval: Duration(time.Minute),
		Alerting:          alert.Default(),
		Respond:           respond.DefaultConfig(),
		Retention:         defaultRetention(),
	}
}

func defaultRetention() retention.Config {
	var r retention.Config
	r.SetDefaults()
	return r
}

// Load reads a YAML file over the defaults. Unknown keys are errors.
func Load(path string) (Config, error) {
	c := Default()
	f, err := os.Open(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	if err := Parse(b, &c); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML into c strictly and validates the result.
func Parse(b []byte, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return c.Validate()
}

// Validate checks every field and names the first bad one.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("field listen: %q is not host:port", c.Listen)
	}
	if c.DataDir == "" {
		return errors.New("field data_dir: must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("field log_level: %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("field tls: set both cert_file and key_file, or neither")
	}
	checks := []struct {
		name      string
		v, lo, hi int64
	}{
		{"ingest.max_body_bytes", c.Ingest.MaxBodyBytes, 1 << 10, 1 << 30},
		{"ingest.max_event_bytes", int64(c.Ingest.MaxEventBytes), 256, 64 << 20},
		{"ingest.max_depth", int64(c.Ingest.MaxDepth), 2, 1000},
		{"ingest.max_batch_events", int64(c.Ingest.MaxBatchEvents), 1, 1000000},
		{"ingest.max_concurrent_requests", int64(c.Ingest.MaxConcurrent), 1, 100000},
		{"ingest.max_queued_events", int64(c.Ingest.MaxQueuedEvents), 1, 100000000},
	}
	for _, k := range checks {
		if k.v < k.lo || k.v > k.hi {
			return fmt.Errorf("field %s: %d is outside %d..%d", k.name, k.v, k.lo, k.hi)
		}
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("field shutdown_timeout: must be positive")
	}
	if c.AccessLogInterval < Duration(time.Second) || c.AccessLogInterval > Duration(time.Hour) {
		return fmt.Errorf("field access_log_interval: %s is outside 1s..1h", time.Duration(c.AccessLogInterval))
	}
	if err := c.Alerting.Validate(); err != nil {
		return errors.New(strings.Replace(err.Error(), "field ", "field alerting.", 1))
	}
	if err := c.Notify.Validate(); err != nil {
		return fmt.Errorf("field notify.%w", err)
	}
	if err := c.Respond.Validate(); err != nil {
		return err
	}
	if err := c.Encryption.Validate(); err != nil {
		return err
	}
	r := c.Retention
	r.SetDefaults()
	if err := r.Validate("retention"); err != nil {
		return fmt.Errorf("field %w", err)
	}
	return nil
}
