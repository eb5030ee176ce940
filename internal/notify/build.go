package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/alertmanager"
	"github.com/vigilsec/vigil/internal/notify/email"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/pagerduty"
	"github.com/vigilsec/vigil/internal/notify/post"
	"github.com/vigilsec/vigil/internal/notify/slack"
	"github.com/vigilsec/vigil/internal/notify/webhook"
)

// Options are what Build needs beyond the configuration.
type Options struct {
	// ExternalURL is Vigil's base URL as users reach it, for links.
	ExternalURL string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Integration is one configured channel of a receiver ("security/slack[0]").
// It implements alert.Notifier.
type Integration struct {
	Receiver     string
	Kind         string // email, slack, pagerduty, webhook, alertmanager
	Index        int
	SendResolved bool
	notifier     alert.Notifier
}

// Name returns the integration's name within its receiver, "slack[0]".
func (i *Integration) Name() string { return fmt.Sprintf("%s[%d]", i.Kind, i.Index) }

// String returns "receiver/kind[index]".
func (i *Integration) String() string { return i.Receiver + "/" + i.Name() }

// Notify delivers the alerts, leaving out the resolved ones when
// SendResolved is false; with nothing left it succeeds without sending.
func (i *Integration) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	if !i.SendResolved {
		var firing []alert.Alert
		for _, a := range alerts {
			if a.Status == alert.StateFiring {
				firing = append(firing, a)
			}
		}
		alerts = firing
	}
	if len(alerts) == 0 {
		return false, nil
	}
	retry, err := i.notifier.Notify(ctx, alerts)
	if err != nil {
		return retry, fmt.Errorf("%s: %w", i, err)
	}
	return false, nil
}

// Build validates the receivers, reads the files they name (secrets, CA
// certificates) and returns each receiver's notifiers by receiver name. The
// notifiers are *Integration values, safe for concurrent use.
func Build(receivers []Receiver, o Options) (map[string][]alert.Notifier, error) {
	if err := validateReceivers(receivers); err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	out := make(map[string][]alert.Notifier, len(receivers))
	// Integrations without TLS settings of their own share one client and
	// so one pool of connections.
	shared := post.NewClient(nil)
	for ri, r := range receivers {
		p := fmt.Sprintf("receivers[%d]", ri)
		b := builder{r: r, o: o, shared: shared}
		var list []alert.Notifier
		add := func(kind string, i int, c Common, n alert.Notifier, err error) error {
			if err != nil {
				var fe *buildError
				if errors.As(err, &fe) {
					return fmt.Errorf("%s.%s[%d].%s: %w", p, kind, i, fe.field, fe.err)
				}
				return fmt.Errorf("%s.%s[%d]: %w", p, kind, i, err)
			}
			list = append(list, &Integration{
				Receiver: r.Name, Kind: kind, Index: i,
				SendResolved: c.SendResolved == nil || *c.SendResolved, notifier: n,
			})
			return nil
		}
		for i, c := range r.Email {
			n, err := b.email(c)
			if err := add("email", i, c.Common, n, err); err != nil {
				return nil, err
			}
		}
		for i, c := range r.Slack {
			n, err := b.slack(c)
			if err := add("slack", i, c.Common, n, err); err != nil {
				return nil, err
			}
		}
		for i, c := range r.PagerDuty {
			n, err := b.pagerduty(c)
			if err := add("pagerduty", i, c.Common, n, err); err != nil {
				return nil, err
			}
		}
		for i, c := range r.Webhook {
			n, err := b.webhook(c)
			if err := add("webhook", i, c.Common, n, err); err != nil {
				return nil, err
			}
		}
		for i, c := range r.Alertmanager {
			n, err := b.alertmanager(c)
			if err := add("alertmanager", i, c.Common, n, err); err != nil {
				return nil, err
			}
		}
		out[r.Name] = list
	}
	return out, nil
}

type builder struct {
	r      Receiver
	o      Options
	shared *http.Client
}

// client returns the shared client, or a client of its own for a TLS
// configuration.
func (b builder) client(tc *tls.Config) *http.Client {
	if tc == nil {
		return b.shared
	}
	return post.NewClient(tc)
}

// buildError names the field (relative to the integration) a Build step
// failed on; Build prefixes the integration's path.
type buildError struct {
	field string
	err   error
}

func (e *buildError) Error() string { return e.field + ": " + e.err.Error() }
func (e *buildError) Unwrap() error { return e.err }

func fieldError(field string, err error) error { return &buildError{field, err} }

// urlFromFile checks a URL read from a file.
func urlFromFile(field, u string) error {
	if checkURL("", "", u) != nil {
		return fieldError(field, errors.New("the file does not hold an http(s) URL"))
	}
	return nil
}

func secret(field string, inline Secret, file string) (string, error) {
	v, err := readSecret(inline, file)
	if err != nil {
		return "", fieldError(field+"_file", err)
	}
	return v, nil
}

// tlsConfig builds a client TLS configuration; nil when t is empty.
func tlsConfig(t TLSConfig) (*tls.Config, error) {
	if t == (TLSConfig{}) {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fieldError("tls.ca_file", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fieldError("tls.ca_file", fmt.Errorf("%s holds no PEM certificate", t.CAFile))
		}
		c.RootCAs = pool
	}
	return c, nil
}

func (b builder) email(c EmailConfig) (alert.Notifier, error) {
	pass, err := secret("auth_password", c.AuthPassword, c.AuthPasswordFile)
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(c.TLS)
	if err != nil {
		return nil, err
	}
	subject, _ := parseTemplate("subject", c.Subject, false) // validated
	text, _ := parseTemplate("text", c.Text, false)
	html, _ := parseTemplate("html", c.HTML, true)
	return email.New(email.Options{
		Smarthost: c.Smarthost, Hello: c.Hello, From: c.From, To: c.To,
		Username: c.AuthUsername, Password: pass, AuthMechanism: c.AuthMechanism,
		RequireTLS: c.RequireTLS, ImplicitTLS: c.ImplicitTLS, TLS: tc,
		Subject: subject, Text: text, HTML: html, NoHTML: c.TextOnly, Headers: c.Headers,
		Receiver: b.r.Name, ExternalURL: b.o.ExternalURL,
		Timeout: time.Duration(c.Timeout), Now: b.o.Now,
	})
}

func (b builder) slack(c SlackConfig) (alert.Notifier, error) {
	u, err := secret("url", c.URL, c.URLFile)
	if err != nil {
		return nil, err
	}
	if err := urlFromFile("url_file", u); err != nil {
		return nil, err
	}
	title, _ := parseTemplate("title", c.Title, false)
	text, _ := parseTemplate("text", c.Text, false)
	return slack.New(slack.Options{
		URL: u, Channel: c.Channel, Username: c.Username, IconEmoji: c.IconEmoji,
		Title: title, Text: text, Receiver: b.r.Name, ExternalURL: b.o.ExternalURL,
		Timeout: time.Duration(c.Timeout), Client: b.shared, Now: b.o.Now,
	})
}

func (b builder) pagerduty(c PagerDutyConfig) (alert.Notifier, error) {
	key, err := secret("routing_key", c.RoutingKey, c.RoutingKeyFile)
	if err != nil {
		return nil, err
	}
	summary, _ := parseTemplate("summary", c.Summary, false)
	details := map[string]*message.Template{}
	for k, v := range c.Details {
		details[k], _ = parseTemplate("details."+k, v, false)
	}
	return pagerduty.New(pagerduty.Options{
		URL: c.URL, RoutingKey: key, Source: c.Source, Component: c.Component, Group: c.Group, Class: c.Class,
		Summary: summary, Details: details, Receiver: b.r.Name, ExternalURL: b.o.ExternalURL,
		Timeout: time.Duration(c.Timeout), Client: b.shared, Now: b.o.Now,
	})
}

func (b builder) webhook(c WebhookConfig) (alert.Notifier, error) {
	u, err := secret("url", c.URL, c.URLFile)
	if err != nil {
		return nil, err
	}
	if err := urlFromFile("url_file", u); err != nil {
		return nil, err
	}
	s, err := secret("secret", c.Secret, c.SecretFile)
	if err != nil {
		return nil, err
	}
	if s != "" && len(s) < MinWebhookSecret {
		return nil, fieldError("secret_file", fmt.Errorf("secret must be at least %d characters", MinWebhookSecret))
	}
	tc, err := tlsConfig(c.TLS)
	if err != nil {
		return nil, err
	}
	return webhook.New(webhook.Options{
		URL: u, Secret: []byte(s), Receiver: b.r.Name, ExternalURL: b.o.ExternalURL, MaxAlerts: c.MaxAlerts,
		Timeout: time.Duration(c.Timeout), Client: b.client(tc), Now: b.o.Now,
	})
}

func (b builder) alertmanager(c AlertmanagerConfig) (alert.Notifier, error) {
	o := alertmanager.Options{URLs: c.URLs, Timeout: time.Duration(c.Timeout), Now: b.o.Now}
	var err error
	if o.BearerToken, err = secret("bearer_token", c.BearerToken, c.BearerTokenFile); err != nil {
		return nil, err
	}
	if ba := c.BasicAuth; ba != nil {
		o.Username = ba.Username
		if o.Password, err = secret("basic_auth.password", ba.Password, ba.PasswordFile); err != nil {
			return nil, err
		}
	}
	tc, err := tlsConfig(c.TLS)
	if err != nil {
		return nil, err
	}
	o.Client = b.client(tc)
	return alertmanager.New(o)
}
