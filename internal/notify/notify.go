// Package notify turns the receivers section of Vigil's configuration into
// alert.Notifiers. Each channel lives in its own sub-package behind that one
// interface and knows which of its failures are worth a retry:
//
//	email         SMTP with STARTTLS or implicit TLS, AUTH PLAIN/LOGIN
//	slack         Slack incoming webhooks
//	pagerduty     PagerDuty Events API v2
//	webhook       signed JSON to any URL (HMAC-SHA256, replay window)
//	alertmanager  Prometheus Alertmanager API v2
//
// Shared pieces: message (template data model and functions) and post (HTTP
// client, bounded reads, retry classification).
//
// Loading is split as in the rest of Vigil: Parse and Validate do no I/O and
// name the bad field ("receivers[1].slack[0].url: must be an http(s) URL");
// Build reads the files the configuration names (secrets given as *_file,
// CA certificates) and constructs the notifiers. Secrets are of type Secret,
// which prints, marshals and logs as "<secret>".
//
// A failed delivery whose server asked for a delay (HTTP 429 with
// Retry-After) returns an error that implements
// interface{ RetryAfter() time.Duration }; retry loops should find it with
// errors.As and wait at least that long.
package notify
