package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/pagerduty"
)

// Config is the notify section: the receivers alerts are routed to.
type Config struct {
	Receivers []Receiver `yaml:"receivers"`
}

// Receiver is a named set of integrations; a route that picks the receiver
// notifies through every one of them.
type Receiver struct {
	Name         string               `yaml:"name"`
	Email        []EmailConfig        `yaml:"email"`
	Slack        []SlackConfig        `yaml:"slack"`
	PagerDuty    []PagerDutyConfig    `yaml:"pagerduty"`
	Webhook      []WebhookConfig      `yaml:"webhook"`
	Alertmanager []AlertmanagerConfig `yaml:"alertmanager"`
}

// Common holds the settings every integration has.
type Common struct {
	// SendResolved sends a notification when alerts are resolved
	// (default true).
	SendResolved *bool `yaml:"send_resolved"`
	// Timeout bounds one delivery (default 10s for HTTP, 30s for SMTP).
	Timeout Duration `yaml:"timeout"`
}

// TLSConfig verifies a server's certificate.
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates to trust instead of the
	// system's (for a private CA or a self-signed test server).
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: for tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// EmailConfig sends email through an SMTP server.
type EmailConfig struct {
	Common           `yaml:",inline"`
	To               []string          `yaml:"to"`
	From             string            `yaml:"from"`
	Smarthost        string            `yaml:"smarthost"`
	Hello            string            `yaml:"hello"`
	AuthUsername     string            `yaml:"auth_username"`
	AuthPassword     Secret            `yaml:"auth_password"`
	AuthPasswordFile string            `yaml:"auth_password_file"`
	AuthMechanism    string            `yaml:"auth_mechanism"`
	RequireTLS       bool              `yaml:"require_tls"`
	ImplicitTLS      bool              `yaml:"implicit_tls"`
	TLS              TLSConfig         `yaml:"tls"`
	Subject          string            `yaml:"subject"`
	Text             string            `yaml:"text"`
	HTML             string            `yaml:"html"`
	TextOnly         bool              `yaml:"text_only"`
	Headers          map[string]string `yaml:"headers"`
}

// SlackConfig posts to a Slack incoming webhook.
type SlackConfig struct {
	Common    `yaml:",inline"`
	URL       Secret `yaml:"url"`
	URLFile   string `yaml:"url_file"`
	Channel   string `yaml:"channel"`
	Username  string `yaml:"username"`
	IconEmoji string `yaml:"icon_emoji"`
	Title     string `yaml:"title"`
	Text      string `yaml:"text"`
}

// PagerDutyConfig sends events to PagerDuty's Events API v2.
type PagerDutyConfig struct {
	Common         `yaml:",inline"`
	URL            string            `yaml:"url"`
	RoutingKey     Secret            `yaml:"routing_key"`
	RoutingKeyFile string            `yaml:"routing_key_file"`
	Source         string            `yaml:"source"`
	Component      string            `yaml:"component"`
	Group          string            `yaml:"group"`
	Class          string            `yaml:"class"`
	Summary        string            `yaml:"summary"`
	Details        map[string]string `yaml:"details"`
}

// WebhookConfig posts signed JSON to any URL.
type WebhookConfig struct {
	Common     `yaml:",inline"`
	URL        Secret    `yaml:"url"`
	URLFile    string    `yaml:"url_file"`
	Secret     Secret    `yaml:"secret"`
	SecretFile string    `yaml:"secret_file"`
	MaxAlerts  int       `yaml:"max_alerts"`
	TLS        TLSConfig `yaml:"tls"`
}

// AlertmanagerConfig forwards alerts to Prometheus Alertmanagers.
type AlertmanagerConfig struct {
	Common          `yaml:",inline"`
	URLs            []string   `yaml:"urls"`
	BasicAuth       *BasicAuth `yaml:"basic_auth"`
	BearerToken     Secret     `yaml:"bearer_token"`
	BearerTokenFile string     `yaml:"bearer_token_file"`
	TLS             TLSConfig  `yaml:"tls"`
}

// BasicAuth is HTTP basic authentication.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     Secret `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
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

// String returns the duration as "10s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as "10s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MaxFileBytes bounds a configuration file.
const MaxFileBytes = 1 << 20

// Load reads a YAML file holding either the notify section itself
// ("receivers: …") or a whole Vigil configuration with a "notify:" key, of
// which only that key is read. Unknown keys in the section are errors.
func Load(path string) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("notify config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return Config{}, fmt.Errorf("notify config %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return Config{}, fmt.Errorf("notify config %s: larger than %d bytes", path, MaxFileBytes)
	}
	c, err := ParseFile(b)
	if err != nil {
		return Config{}, fmt.Errorf("notify config %s: %w", path, err)
	}
	return c, nil
}

// ParseFile is Load for bytes.
func ParseFile(b []byte) (Config, error) {
	var whole struct {
		Notify *Config        `yaml:"notify"`
		Other  map[string]any `yaml:",inline"`
	}
	if err := decodeStrict(b, &whole); err != nil {
		return Config{}, err
	}
	if whole.Notify != nil {
		return *whole.Notify, whole.Notify.Validate()
	}
	return Parse(b)
}

// Parse decodes the notify section strictly and validates it.
func Parse(b []byte) (Config, error) {
	var c Config
	if err := decodeStrict(b, &c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func decodeStrict(b []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return nil
}

// Validate checks every receiver without I/O (files named by *_file and
// ca_file are read by Build) and names the first bad field, as in
// "receivers[1].slack[0].url: must be an http(s) URL".
func (c Config) Validate() error {
	return validateReceivers(c.Receivers)
}

func validateReceivers(rs []Receiver) error {
	seen := map[string]int{}
	for i, r := range rs {
		p := fmt.Sprintf("receivers[%d]", i)
		if r.Name == "" {
			return fmt.Errorf("%s.name: must not be empty", p)
		}
		if strings.ContainsFunc(r.Name, func(c rune) bool { return c < 0x20 || c == 0x7f || c == '/' }) {
			return fmt.Errorf("%s.name: %q has a control character or '/'", p, r.Name)
		}
		if j, dup := seen[r.Name]; dup {
			return fmt.Errorf("%s.name: %q is already the name of receivers[%d]", p, r.Name, j)
		}
		seen[r.Name] = i
		if err := r.validate(p); err != nil {
			return err
		}
	}
	return nil
}

func (r Receiver) validate(p string) error {
	for i, c := range r.Email {
		if err := c.validate(fmt.Sprintf("%s.email[%d]", p, i)); err != nil {
			return err
		}
	}
	for i, c := range r.Slack {
		if err := c.validate(fmt.Sprintf("%s.slack[%d]", p, i)); err != nil {
			return err
		}
	}
	for i, c := range r.PagerDuty {
		if err := c.validate(fmt.Sprintf("%s.pagerduty[%d]", p, i)); err != nil {
			return err
		}
	}
	for i, c := range r.Webhook {
		if err := c.validate(fmt.Sprintf("%s.webhook[%d]", p, i)); err != nil {
			return err
		}
	}
	for i, c := range r.Alertmanager {
		if err := c.validate(fmt.Sprintf("%s.alertmanager[%d]", p, i)); err != nil {
			return err
		}
	}
	return nil
}

func fieldErr(p, field, format string, args ...any) error {
	return fmt.Errorf("%s.%s: %s", p, field, fmt.Sprintf(format, args...))
}

func (c Common) validate(p string) error {
	if t := time.Duration(c.Timeout); t < 0 || t > 10*time.Minute || (t > 0 && t < 100*time.Millisecond) {
		return fieldErr(p, "timeout", "%s is outside 100ms..10m", t)
	}
	return nil
}

// checkURL refuses anything but an absolute http(s) URL with a host. The
// value is not quoted in the error: it may carry a token.
func checkURL(p, field, u string) error {
	v, err := url.Parse(u)
	if err != nil || (v.Scheme != "http" && v.Scheme != "https") || v.Host == "" {
		return fieldErr(p, field, "must be an http(s) URL")
	}
	return nil
}

// checkSecret requires exactly one (or, with optional, at most one) of an
// inline secret and its *_file variant.
func checkSecret(p, field string, inline Secret, file string, optional bool) error {
	switch {
	case inline != "" && file != "":
		return fieldErr(p, field, "set %s or %s_file, not both", field, field)
	case inline == "" && file == "" && !optional:
		return fieldErr(p, field, "must be set (or %s_file)", field)
	}
	return nil
}

func (t TLSConfig) validate(p string) error {
	if t.CAFile != "" && t.InsecureSkipVerify {
		return fieldErr(p, "tls.insecure_skip_verify", "set ca_file or insecure_skip_verify, not both")
	}
	return nil
}

// checkTemplate parses src (when set) and runs it on sample data.
func checkTemplate(p, field, src string, html bool) error {
	if src == "" {
		return nil
	}
	_, err := parseTemplate(field, src, html)
	if err != nil {
		return fieldErr(p, field, "%v", err)
	}
	return nil
}

func parseTemplate(name, src string, html bool) (*message.Template, error) {
	if src == "" {
		return nil, nil
	}
	parse := message.Text
	if html {
		parse = message.HTML
	}
	t, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

// reservedHeaders are set by the email notifier itself.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true, "Date": true, "Message-Id": true,
	"Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true, "Auto-Submitted": true,
	"X-Vigil-Status": true,
}

func (c EmailConfig) validate(p string) error {
	if err := c.Common.validate(p); err != nil {
		return err
	}
	if len(c.To) == 0 {
		return fieldErr(p, "to", "must list at least one address")
	}
	for i, t := range c.To {
		if _, err := mail.ParseAddress(t); err != nil {
			return fieldErr(p, fmt.Sprintf("to[%d]", i), "%q is not an email address", t)
		}
	}
	if c.From == "" {
		return fieldErr(p, "from", "must not be empty")
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fieldErr(p, "from", "%q is not an email address", c.From)
	}
	host, port, err := net.SplitHostPort(c.Smarthost)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return fieldErr(p, "smarthost", "%q is not host:port", c.Smarthost)
	}
	if strings.ContainsAny(c.Hello, " \t\r\n") {
		return fieldErr(p, "hello", "%q must be a host name", c.Hello)
	}
	if err := checkSecret(p, "auth_password", c.AuthPassword, c.AuthPasswordFile, true); err != nil {
		return err
	}
	if (c.AuthPassword != "" || c.AuthPasswordFile != "") && c.AuthUsername == "" {
		return fieldErr(p, "auth_username", "must be set with auth_password")
	}
	switch strings.ToUpper(c.AuthMechanism) {
	case "", "PLAIN", "LOGIN":
	default:
		return fieldErr(p, "auth_mechanism", "%q is not PLAIN or LOGIN", c.AuthMechanism)
	}
	if c.RequireTLS && c.ImplicitTLS {
		return fieldErr(p, "require_tls", "implicit_tls already encrypts the whole session; set one")
	}
	if err := c.TLS.validate(p); err != nil {
		return err
	}
	for k, v := range c.Headers {
		if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == ':' }) {
			return fieldErr(p, "headers", "%q is not a header name", k)
		}
		if reservedHeaders[canonicalHeader(k)] {
			return fieldErr(p, "headers."+k, "is set by Vigil")
		}
		if strings.ContainsAny(v, "\r\n") {
			return fieldErr(p, "headers."+k, "must be one line")
		}
	}
	if c.TextOnly && c.HTML != "" {
		return fieldErr(p, "html", "set html or text_only, not both")
	}
	if err := checkTemplate(p, "subject", c.Subject, false); err != nil {
		return err
	}
	if err := checkTemplate(p, "text", c.Text, false); err != nil {
		return err
	}
	return checkTemplate(p, "html", c.HTML, true)
}

func canonicalHeader(k string) string {
	parts := strings.Split(strings.ToLower(k), "-")
	for i, s := range parts {
		if s != "" {
			parts[i] = strings.ToUpper(s[:1]) + s[1:]
		}
	}
	return strings.Join(parts, "-")
}

func (c SlackConfig) validate(p string) error {
	if err := c.Common.validate(p); err != nil {
		return err
	}
	if err := checkSecret(p, "url", c.URL, c.URLFile, false); err != nil {
		return err
	}
	if c.URL != "" {
		if err := checkURL(p, "url", c.URL.Reveal()); err != nil {
			return err
		}
	}
	if err := checkTemplate(p, "title", c.Title, false); err != nil {
		return err
	}
	return checkTemplate(p, "text", c.Text, false)
}

func (c PagerDutyConfig) validate(p string) error {
	if err := c.Common.validate(p); err != nil {
		return err
	}
	if c.URL != "" {
		if err := checkURL(p, "url", c.URL); err != nil {
			return err
		}
	}
	if err := checkSecret(p, "routing_key", c.RoutingKey, c.RoutingKeyFile, false); err != nil {
		return err
	}
	if len(c.Source) > pagerduty.MaxSourceBytes {
		return fieldErr(p, "source", "longer than %d bytes", pagerduty.MaxSourceBytes)
	}
	if err := checkTemplate(p, "summary", c.Summary, false); err != nil {
		return err
	}
	for k, v := range c.Details {
		if k == "" {
			return fieldErr(p, "details", "a key is empty")
		}
		if err := checkTemplate(p, "details."+k, v, false); err != nil {
			return err
		}
	}
	return nil
}

// MinWebhookSecret is the shortest webhook secret accepted.
const MinWebhookSecret = 16

func (c WebhookConfig) validate(p string) error {
	if err := c.Common.validate(p); err != nil {
		return err
	}
	if err := checkSecret(p, "url", c.URL, c.URLFile, false); err != nil {
		return err
	}
	if c.URL != "" {
		if err := checkURL(p, "url", c.URL.Reveal()); err != nil {
			return err
		}
	}
	if err := checkSecret(p, "secret", c.Secret, c.SecretFile, true); err != nil {
		return err
	}
	if c.Secret != "" && len(c.Secret) < MinWebhookSecret {
		return fieldErr(p, "secret", "must be at least %d characters", MinWebhookSecret)
	}
	if c.MaxAlerts < 0 {
		return fieldErr(p, "max_alerts", "must not be negative")
	}
	return c.TLS.validate(p)
}

func (c AlertmanagerConfig) validate(p string) error {
	if err := c.Common.validate(p); err != nil {
		return err
	}
	if len(c.URLs) == 0 {
		return fieldErr(p, "urls", "must list at least one Alertmanager URL")
	}
	for i, u := range c.URLs {
		if err := checkURL(p, fmt.Sprintf("urls[%d]", i), u); err != nil {
			return err
		}
	}
	if err := checkSecret(p, "bearer_token", c.BearerToken, c.BearerTokenFile, true); err != nil {
		return err
	}
	if b := c.BasicAuth; b != nil {
		if b.Username == "" || strings.Contains(b.Username, ":") {
			return fieldErr(p, "basic_auth.username", "must be set and hold no ':'")
		}
		if err := checkSecret(p, "basic_auth.password", b.Password, b.PasswordFile, true); err != nil {
			return err
		}
		if c.BearerToken != "" || c.BearerTokenFile != "" {
			return fieldErr(p, "basic_auth", "set basic_auth or bearer_token, not both")
		}
	}
	return c.TLS.validate(p)
}
