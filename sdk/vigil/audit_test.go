package vigil_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/sdk/vigil"
	"github.com/vigilsec/vigil/sdk/vigiltest"
)

// requestContext returns a context as the middleware makes it for a request
// from 198.51.100.23 with request ID req-1, with admin as the actor.
func requestContext(t *testing.T, c *vigil.Client) context.Context {
	t.Helper()
	var ctx context.Context
	h := c.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ctx = r.Context() }))
	serve(h, request("POST", "/admin/users", "198.51.100.23:51234", "", "X-Request-ID", "req-1"))
	return vigil.WithActor(ctx, "1", "admin")
}

func TestAuditCalls(t *testing.T) {
	type want map[string]any
	tests := []struct {
		name   string
		call   func(c *vigil.Client, ctx context.Context) error
		action string
		fields want
	}{
		{"LoginSucceeded", func(c *vigil.Client, ctx context.Context) error { return c.LoginSucceeded(ctx, "admin") },
			"authn_login_success", want{"event.outcome": "success", "user.name": "admin", "user.id": "1", "event.category": []string{"authentication"}, "event.severity": 1}},
		{"LoginFailed", func(c *vigil.Client, ctx context.Context) error { return c.LoginFailed(ctx, "joebob1", "bad password") },
			"authn_login_fail", want{"event.outcome": "failure", "user.name": "joebob1", "event.reason": "bad password", "log.level": "WARNING", "event.severity": 3,
				"message": "login failed for joebob1: bad password"}},
		{"Logout", func(c *vigil.Client, ctx context.Context) error { return c.Logout(ctx, "admin") },
			"session_expired", want{"event.reason": "logout", "user.name": "admin", "event.category": []string{"session"}}},
		{"PasswordChanged", func(c *vigil.Client, ctx context.Context) error { return c.PasswordChanged(ctx, "admin") },
			"authn_password_change", want{"event.outcome": "success", "user.name": "admin"}},
		{"PasswordChangeFailed", func(c *vigil.Client, ctx context.Context) error {
			return c.PasswordChangeFailed(ctx, "admin", "too short")
		},
			"authn_password_change_fail", want{"event.outcome": "failure", "event.reason": "too short"}},
		{"PasswordReset", func(c *vigil.Client, ctx context.Context) error { return c.PasswordReset(ctx, "carol") },
			"authn_password_change", want{"event.reason": "reset", "user.name": "carol"}},
		{"MFAChallenge ok", func(c *vigil.Client, ctx context.Context) error { return c.MFAChallenge(ctx, "admin", true) },
			"authn_login_success", want{"labels.mfa": true, "event.outcome": "success"}},
		{"MFAChallenge failed", func(c *vigil.Client, ctx context.Context) error { return c.MFAChallenge(ctx, "admin", false) },
			"authn_login_fail", want{"labels.mfa": true, "event.outcome": "failure"}},
		{"PermissionChanged", func(c *vigil.Client, ctx context.Context) error {
			return c.PermissionChanged(ctx, "bob", "orders.refund", true)
		}, "privilege_permissions_changed", want{"user.target.name": "bob", "vigil.change.key": "orders.refund", "vigil.change.old": false, "vigil.change.new": true,
			"user.name": "admin", "event.category": []string{"iam"}, "event.severity": 4}},
		{"RoleChanged", func(c *vigil.Client, ctx context.Context) error {
			return c.RoleChanged(ctx, "bob", []string{"viewer"}, []string{"viewer", "admin"})
		}, "authz_change", want{"user.target.name": "bob", "vigil.change.old": []string{"viewer"}, "vigil.change.new": []string{"viewer", "admin"}}},
		{"ConfigChanged", func(c *vigil.Client, ctx context.Context) error {
			return c.ConfigChanged(ctx, "payments.provider", "acme-pay", "globex-pay")
		}, "sys_config_change", want{"vigil.change.key": "payments.provider", "vigil.change.old": "acme-pay", "vigil.change.new": "globex-pay",
			"event.category": []string{"configuration"}}},
		{"ConfigChanged secret", func(c *vigil.Client, ctx context.Context) error {
			return c.ConfigChanged(ctx, "smtp.password", "old-"+secretPassword, "new-"+secretPassword)
		}, "sys_config_change", want{"vigil.change.old": "[Filtered]", "vigil.change.new": "[Filtered]"}},
		{"ConfigChanged structured", func(c *vigil.Client, ctx context.Context) error {
			return c.ConfigChanged(ctx, "smtp", map[string]any{"host": "a", "password": secretPassword}, map[string]any{"host": "b", "password": secretPassword})
		}, "sys_config_change", want{"vigil.change.old.host": "a", "vigil.change.new.host": "b", "vigil.change.new.password": "[Filtered]"}},
		{"DataChanged update", func(c *vigil.Client, ctx context.Context) error {
			return c.DataChanged(ctx, "auth.user", "42",
				map[string]any{"email": "a@x.example", "name": "Al", "password": "old-" + secretPassword, "age": 30},
				map[string]any{"email": "b@x.example", "name": "Al", "password": "new-" + secretPassword, "age": 30.0, "phone": "123"})
		}, "sensitive_update", want{"vigil.change.fields": []string{"email", "password", "phone"}, "vigil.change.old.email": "a@x.example",
			"vigil.change.new.email": "b@x.example", "vigil.change.new.phone": "123", "vigil.change.new.password": "[Filtered]",
			"vigil.change.object": "auth.user:42", "related.objects": []string{"auth.user:42"}}},
		{"DataChanged create", func(c *vigil.Client, ctx context.Context) error {
			return c.DataChanged(ctx, "shop.order", "981", nil, map[string]any{"total": 12})
		}, "sensitive_create", want{"vigil.change.fields": []string{"total"}, "vigil.change.new.total": 12}},
		{"DataChanged delete", func(c *vigil.Client, ctx context.Context) error {
			return c.DataChanged(ctx, "shop.order", "981", map[string]any{"total": 12}, nil)
		}, "sensitive_delete", want{"vigil.change.old.total": 12}},
		{"AuthzFailed", func(c *vigil.Client, ctx context.Context) error {
			return c.AuthzFailed(ctx, "shop.order:981", "refund")
		},
			"authz_fail", want{"vigil.authz.resource": "shop.order:981", "vigil.authz.action": "refund", "event.outcome": "failure", "event.severity": 5, "log.level": "ERROR"}},
		{"Audit generic", func(c *vigil.Client, ctx context.Context) error {
			return c.Audit(ctx, "authn_token_created", vigil.String("user.target.name", "bob"), vigil.Int("labels.ttl_days", 30))
		}, "authn_token_created", want{"user.target.name": "bob", "labels.ttl_days": 30, "event.category": []string{"authentication"}}},
		{"Audit malicious", func(c *vigil.Client, ctx context.Context) error { return c.Audit(ctx, "malicious_sqli") },
			"malicious_sqli", want{"event.severity": 6, "event.outcome": "unknown", "event.category": []string{"intrusion_detection"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rec := newClient(t, nil)
			ctx := requestContext(t, c)
			rec.Reset()
			if err := tt.call(c, ctx); err != nil {
				t.Fatal(err)
			}
			e := only(t, rec)
			if e.Action() != tt.action {
				t.Errorf("action %q, want %q", e.Action(), tt.action)
			}
			if !e.Critical() {
				t.Error("audit event not sent as critical")
			}
			ms := []vigiltest.Matcher{vigiltest.Field("source.ip", "198.51.100.23"), vigiltest.Field("http.request.id", "req-1"),
				vigiltest.Field("url.path", "/admin/users"), vigiltest.Has("event.id"), vigiltest.Has("@timestamp"), vigiltest.Has("message")}
			for k, v := range tt.fields {
				ms = append(ms, vigiltest.Field(k, v))
			}
			rec.Assert(t, ms...)
			if rec.Contains(secretPassword) {
				t.Errorf("secret recorded: %s", e.Raw())
			}
		})
	}
}

func TestAuditOutsideRequest(t *testing.T) {
	c, rec := newClient(t, nil)
	if err := c.LoginFailed(context.Background(), "alice", ""); err != nil {
		t.Fatal(err)
	}
	e := only(t, rec)
	if e.Has("source.ip") || e.Has("http.request.id") || e.Has("url.path") || e.Has("event.reason") {
		t.Errorf("request fields outside a request: %s", e.Raw())
	}
}

func TestAuditActorNotSubject(t *testing.T) {
	c, rec := newClient(t, nil)
	// admin resets carol's password: user.name is carol, admin's ID is not
	// attached to her.
	ctx := vigil.WithActor(context.Background(), "1", "admin")
	c.PasswordReset(ctx, "carol")
	e := only(t, rec)
	if e.Str("user.name") != "carol" || e.Has("user.id") {
		t.Errorf("%s", e.Raw())
	}
}

func TestAuditFieldsOverrideAndConflicts(t *testing.T) {
	c, rec := newClient(t, func(cfg *vigil.Config) { cfg.Release = "2.0" })
	ctx := vigil.WithRelated(vigil.WithActor(context.Background(), "1", "admin"), "auth.user:1")
	err := c.Audit(ctx, "user_created",
		vigil.String("event.outcome", "failure"),           // overrides
		vigil.String("event.outcome", "bogus"),             // not an outcome: dropped
		vigil.String("event.id", "forged"),                 // identity: dropped
		vigil.String("@timestamp", "yesterday"),            // identity: dropped
		vigil.String("service", "x"),                       // identity: dropped
		vigil.Int("user.id", 99),                           // converted to a string
		vigil.String("user", "flat"),                       // a namespace: dropped
		vigil.String("user.name.first", "A"),               // inside a known leaf: dropped
		vigil.Int("source.port", 70000),                    // out of range: dropped
		vigil.String("source.ip", "999.1.1.1"),             // not an IP: dropped
		vigil.Any("labels.nested", map[string]any{"a": 1}), // labels are flat: text
		vigil.String("labels.a.b", "dots"),                 // becomes labels.a_b
		vigil.Strings("related.objects", []string{"auth.user:2"}),
		vigil.Any("shop.order", map[string]any{"id": 1, "a.b": 2, "price": 1.5}),
		vigil.Float("shop.ratio", 0.5),
		vigil.Bool("shop.flag", true),
		vigil.Time("shop.at", time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("", 3600))),
		vigil.String("", "no name"),
	)
	if err != nil {
		t.Fatal(err)
	}
	e := only(t, rec)
	for k, v := range map[string]any{
		"event.outcome": "failure", "user.id": "99", "labels.nested": `{"a":1}`, "labels.a_b": "dots",
		"related.objects": []string{"auth.user:1", "auth.user:2"}, "shop.order.a_b": 2, "shop.order.price": 1.5,
		"shop.ratio": 0.5, "shop.flag": true, "shop.at": "2025-03-01T11:00:00Z", "labels.release": "2.0", "user.name": "admin",
		"service.name": "test",
	} {
		rec.Assert(t, vigiltest.Field(k, v))
	}
	if e.Str("event.id") == "forged" || e.Str("@timestamp") == "yesterday" || e.Has("source.port") || e.Has("source.ip") {
		t.Errorf("a bad field got through: %s", e.Raw())
	}
}

func TestAuditCriticalFail(t *testing.T) {
	full := errors.New("queue full")
	for _, critical := range []bool{false, true} {
		c, rec := newClient(t, func(cfg *vigil.Config) { cfg.CriticalFail = critical })
		rec.FailWith(full)
		err := c.LoginFailed(context.Background(), "alice", "bad password")
		if critical && !errors.Is(err, full) {
			t.Errorf("CriticalFail: err = %v, want %v", err, full)
		}
		if !critical && err != nil {
			t.Errorf("without CriticalFail: err = %v, want nil", err)
		}
		if !strings.Contains(string(metricsText(t, c)), "vigil_sdk_events_failed_total 1") {
			t.Error("failure not counted")
		}
	}
	c, _ := newClient(t, nil)
	if err := c.Audit(context.Background(), ""); !errors.Is(err, vigil.ErrNoAction) {
		t.Errorf("Audit without action: %v", err)
	}
}
