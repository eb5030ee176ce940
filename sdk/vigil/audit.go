package vigil

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
)

// The audit calls below record security events named after the OWASP
// Logging Vocabulary (docs/event-schema.md, "Actions"). Each takes the
// actor, the client address and the request ID from ctx, as set by the
// middleware and WithActor, and the related objects from WithRelated.
//
// Audit events are critical: they go to the sink with critical set, so a
// shipper waits for room rather than drop them. When the sink refuses one
// anyway, the call returns the error if Config.CriticalFail is set (the
// caller may then fail the request: an action that cannot be audited is not
// done), and nil otherwise.

// ErrNoAction is returned by Audit without an action.
var ErrNoAction = errors.New("vigil: audit event without an action")

// auditEvent is what one audit call records.
type auditEvent struct {
	action   string
	category string // ECS event.category
	typ      string // ECS event.type
	outcome  string
	severity int
	message  string
	subject  string // user.name: the user the event is about, when not the actor
	fields   []Field
}

// spec returns the category, type, outcome and severity of an action, for
// Audit.
func spec(action string) auditEvent {
	a := auditEvent{action: action, outcome: "success", severity: sevInfo}
	switch {
	case action == "authz_fail":
		a.category, a.typ = "web", "denied"
	case strings.HasPrefix(action, "authn_"):
		a.category, a.typ = "authentication", "info"
	case strings.HasPrefix(action, "authz_"), strings.HasPrefix(action, "privilege_"), strings.HasPrefix(action, "user_"):
		a.category, a.typ = "iam", "change"
	case strings.HasPrefix(action, "session_"):
		a.category, a.typ = "session", "info"
	case action == "sys_config_change", strings.HasPrefix(action, "sys_monitor_"):
		a.category, a.typ = "configuration", "change"
	case strings.HasPrefix(action, "sys_"):
		a.category, a.typ = "process", "info"
	case strings.HasPrefix(action, "sensitive_"):
		a.category, a.typ = "database", "access"
	case strings.HasPrefix(action, "upload_"):
		a.category, a.typ = "file", "info"
	case strings.HasPrefix(action, "malicious_"), action == "input_validation_fail",
		action == "excess_rate_limit_exceeded", action == "sequence_fail":
		a.category, a.typ = "intrusion_detection", "info"
	}
	switch action {
	case "authn_login_fail_max", "authn_login_lock":
		a.severity = 7
	case "authn_impossible_travel", "authn_token_reuse", "session_use_after_expire":
		a.severity, a.outcome = 6, "unknown"
	case "authz_fail", "excess_rate_limit_exceeded", "sys_crash", "crypt_decrypt_fail", "crypt_encrypt_fail":
		a.severity = sevError
	case "authz_change", "authz_admin", "privilege_permissions_changed", "sys_config_change",
		"user_created", "user_updated", "user_archived", "user_deleted",
		"authn_token_created", "authn_token_revoked", "authn_token_delete", "sys_monitor_disabled":
		a.severity = sevChange
	case "authn_password_change", "sensitive_create", "sensitive_update", "sensitive_delete":
		a.severity = sevNotice
	}
	switch {
	case strings.HasPrefix(action, "malicious_"):
		a.severity, a.outcome = 6, "unknown"
	case strings.Contains(action, "fail") || action == "excess_rate_limit_exceeded":
		a.outcome = "failure"
		a.severity = max(a.severity, sevWarning)
	}
	return a
}

// Audit records a security event with an action of the OWASP Logging
// Vocabulary or one of Vigil's (see the constants of internal/event and
// docs/event-schema.md) and fields of the caller's. The category, outcome
// and severity follow from the action; fields may override them.
func (c *Client) Audit(ctx context.Context, action string, fields ...Field) error {
	if action == "" {
		return ErrNoAction
	}
	a := spec(action)
	a.message = action
	if _, name := Actor(ctx); name != "" {
		a.message += " by " + name
	}
	return c.audit(ctx, a, fields)
}

// audit records a; extra are the caller's fields.
func (c *Client) audit(ctx context.Context, a auditEvent, extra []Field) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var snap snapshot
	if st := stateOf(ctx); st != nil {
		snap = st.snapshot()
	}
	fs := make([]Field, 0, 16+len(a.fields)+len(extra))
	if a.category != "" {
		fs = append(fs, own(Strings("event.category", []string{a.category})))
	}
	if a.typ != "" {
		fs = append(fs, own(Strings("event.type", []string{a.typ})))
	}
	fs = append(fs,
		own(String("event.outcome", a.outcome)),
		Int("event.severity", int64(a.severity)),
		own(String("log.level", levelOf(a.severity))))
	if a.message != "" {
		fs = append(fs, String("message", a.message))
	}
	userID, userName := snap.actorID, snap.actor
	if a.subject != "" {
		if userName != "" && userName != a.subject {
			userID = "" // the actor is someone else
		}
		userName = a.subject
	}
	if userID != "" {
		fs = append(fs, own(String("user.id", userID)))
	}
	if userName != "" {
		fs = append(fs, String("user.name", userName))
	}
	if snap.ip.IsValid() {
		fs = append(fs, own(String("source.ip", snap.ip.WithZone("").String())))
		if snap.port != 0 {
			fs = append(fs, Int("source.port", int64(snap.port)))
		}
	}
	if snap.id != "" {
		fs = append(fs, own(String("http.request.id", snap.id)))
	}
	if snap.inRequest {
		fs = append(fs, own(String("http.request.method", snap.method)), own(String("url.path", snap.path)))
	}
	if len(snap.related) > 0 {
		fs = append(fs, own(Strings("related.objects", snap.related)))
	}
	if snap.slug != "" {
		fs = append(fs, own(String("vigil.slug", snap.slug)))
	}
	if c.cfg.Release != "" {
		fs = append(fs, own(String("labels.release", c.cfg.Release)))
	}
	fs = append(fs, a.fields...)
	for _, f := range extra {
		if f, ok := c.fit(f); ok && !overlapsReserved(f.Key) {
			fs = append(fs, f)
		}
	}
	// Merge the related objects of the call and the caller into the
	// context's instead of replacing them.
	fs = mergeRelated(fs)
	fs = resolve(fs)

	e := getEnc()
	defer putEnc(e)
	c.begin(e, c.now(), a.action, "")
	for _, f := range fs {
		c.field(e, f)
	}
	err := c.send(ctx, e, true)
	if err != nil && c.cfg.CriticalFail {
		return err
	}
	return nil
}

// own marks f as one of the SDK's own fields.
func own(f Field) Field {
	f.own = true
	return f
}

// mergeRelated folds every related.objects field into the first.
func mergeRelated(fs []Field) []Field {
	first := -1
	for i := range fs {
		if fs[i].Key != "related.objects" {
			continue
		}
		if first < 0 {
			first = i
			fs[i].ss = slices.Clip(fs[i].ss)
			continue
		}
		for _, o := range fs[i].ss {
			if !slices.Contains(fs[first].ss, o) {
				fs[first].ss = append(fs[first].ss, o)
			}
		}
		fs[i].Key = ""
	}
	return slices.DeleteFunc(fs, func(f Field) bool { return f.Key == "" })
}

// LoginSucceeded records a successful login of user (authn_login_success).
func (c *Client) LoginSucceeded(ctx context.Context, user string) error {
	a := spec("authn_login_success")
	a.typ, a.subject = "start", user
	a.message = "login succeeded for " + user
	return c.audit(ctx, a, nil)
}

// LoginFailed records a failed login attempt for user (authn_login_fail),
// with the reason (event.reason): "bad password", "unknown user", "locked".
// Never pass the password tried.
func (c *Client) LoginFailed(ctx context.Context, user, reason string) error {
	a := spec("authn_login_fail")
	a.typ, a.subject = "start", user
	a.message = "login failed for " + user
	if reason != "" {
		a.message += ": " + reason
		a.fields = []Field{String("event.reason", reason)}
	}
	return c.audit(ctx, a, nil)
}

// Logout records that user logged out: the OWASP vocabulary names it
// session_expired, with event.reason "logout".
func (c *Client) Logout(ctx context.Context, user string) error {
	a := spec("session_expired")
	a.typ, a.subject = "end", user
	a.message = "logout of " + user
	a.fields = []Field{String("event.reason", "logout")}
	return c.audit(ctx, a, nil)
}

// PasswordChanged records that user's password changed
// (authn_password_change).
func (c *Client) PasswordChanged(ctx context.Context, user string) error {
	a := spec("authn_password_change")
	a.category, a.typ, a.subject = "iam", "change", user
	a.message = "password changed for " + user
	return c.audit(ctx, a, nil)
}

// PasswordChangeFailed records a refused password change for user
// (authn_password_change_fail), with the reason.
func (c *Client) PasswordChangeFailed(ctx context.Context, user, reason string) error {
	a := spec("authn_password_change_fail")
	a.category, a.typ, a.subject = "iam", "change", user
	a.message = "password change failed for " + user
	if reason != "" {
		a.message += ": " + reason
		a.fields = []Field{String("event.reason", reason)}
	}
	return c.audit(ctx, a, nil)
}

// PasswordReset records that user's password was reset (the vocabulary's
// authn_password_change, with event.reason "reset").
func (c *Client) PasswordReset(ctx context.Context, user string) error {
	a := spec("authn_password_change")
	a.category, a.typ, a.subject = "iam", "change", user
	a.message = "password reset for " + user
	a.fields = []Field{String("event.reason", "reset")}
	return c.audit(ctx, a, nil)
}

// MFAChallenge records the answer of user to a second-factor challenge:
// authn_login_success when ok, authn_login_fail otherwise, both with
// labels.mfa true (docs/event-schema.md's example), so that rules counting
// failed logins count failed codes too.
func (c *Client) MFAChallenge(ctx context.Context, user string, ok bool) error {
	action, verb := "authn_login_success", "passed"
	if !ok {
		action, verb = "authn_login_fail", "failed"
	}
	a := spec(action)
	a.typ, a.subject = "start", user
	a.message = "second-factor challenge " + verb + " for " + user
	a.fields = []Field{Bool("labels.mfa", true)}
	if !ok {
		a.fields = append(a.fields, String("event.reason", "bad second-factor code"))
	}
	return c.audit(ctx, a, nil)
}

// PermissionChanged records that permission was granted to or revoked from
// user target by the actor (privilege_permissions_changed): user.target.name,
// vigil.change.key (the permission), vigil.change.old and vigil.change.new
// (whether target held it).
func (c *Client) PermissionChanged(ctx context.Context, target, permission string, granted bool) error {
	a := spec("privilege_permissions_changed")
	verb := "granted to "
	if !granted {
		verb = "revoked from "
	}
	a.message = "permission " + permission + " " + verb + target
	a.fields = []Field{
		String("user.target.name", target),
		String("vigil.change.key", permission),
		Bool("vigil.change.old", !granted),
		Bool("vigil.change.new", granted),
	}
	return c.audit(ctx, a, nil)
}

// RoleChanged records that the roles of user target changed (authz_change):
// user.target.name, vigil.change.key "roles", vigil.change.old and
// vigil.change.new (arrays).
func (c *Client) RoleChanged(ctx context.Context, target string, oldRoles, newRoles []string) error {
	a := spec("authz_change")
	a.message = "roles of " + target + " changed from [" + strings.Join(oldRoles, ", ") + "] to [" + strings.Join(newRoles, ", ") + "]"
	a.fields = []Field{
		String("user.target.name", target),
		String("vigil.change.key", "roles"),
		Strings("vigil.change.old", nonNil(oldRoles)),
		Strings("vigil.change.new", nonNil(newRoles)),
		Strings("user.changes.roles", nonNil(newRoles)),
	}
	return c.audit(ctx, a, nil)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ConfigChanged records that setting key changed from old to new
// (sys_config_change): vigil.change.key, vigil.change.old, vigil.change.new.
// Both values are hidden when key names a secret (the redactor's rules:
// "smtp.password", "api_token"), and secrets inside them are hidden too.
func (c *Client) ConfigChanged(ctx context.Context, key string, old, new any) error {
	a := spec("sys_config_change")
	a.message = "setting " + key + " changed"
	oldF, newF := Any("vigil.change.old", old), Any("vigil.change.new", new)
	if c.sensitiveKey(key) || c.sensitiveKey(lastPart(key)) {
		oldF, newF = String("vigil.change.old", filtered), String("vigil.change.new", filtered)
	}
	a.fields = []Field{String("vigil.change.key", key), oldF, newF}
	return c.audit(ctx, a, nil)
}

func lastPart(key string) string {
	if i := strings.LastIndexAny(key, "._-/:"); i >= 0 {
		return key[i+1:]
	}
	return key
}

// DataChanged records a change of object objectID of type objectType (a
// model label: "shop.order"): sensitive_create when before is nil,
// sensitive_delete when after is nil, sensitive_update otherwise. It writes
// the field-level difference: vigil.change.fields (the names of the fields
// that differ, sorted), vigil.change.old and vigil.change.new (objects
// holding those fields only), with the values of secrets (password, token,
// secret... the redactor's rules) hidden. The object is added to
// related.objects and written to vigil.change.object as "type:id".
func (c *Client) DataChanged(ctx context.Context, objectType, objectID string, before, after map[string]any) error {
	action, typ := "sensitive_update", "change"
	switch {
	case before == nil && after != nil:
		action, typ = "sensitive_create", "creation"
	case after == nil && before != nil:
		action, typ = "sensitive_delete", "deletion"
	}
	a := spec(action)
	a.typ = typ
	object := objectType + ":" + objectID
	changed := diff(before, after)
	a.message = object + ": " + strings.TrimPrefix(action, "sensitive_")
	if len(changed) > 0 {
		a.message += " of " + strings.Join(changed, ", ")
	}
	oldV, newV := make(map[string]any, len(changed)), make(map[string]any, len(changed))
	for _, k := range changed {
		if v, ok := before[k]; ok {
			oldV[k] = v
		}
		if v, ok := after[k]; ok {
			newV[k] = v
		}
	}
	a.fields = []Field{
		String("vigil.change.object", object),
		Strings("vigil.change.fields", nonNil(changed)),
		Strings("related.objects", []string{object}),
	}
	if before != nil {
		a.fields = append(a.fields, Any("vigil.change.old", oldV))
	}
	if after != nil {
		a.fields = append(a.fields, Any("vigil.change.new", newV))
	}
	return c.audit(ctx, a, nil)
}

// diff returns the sorted names of the fields whose values differ between
// before and after (present in one only, or encoded differently).
func diff(before, after map[string]any) []string {
	var changed []string
	var a, b enc
	for k, v := range before {
		w, ok := after[k]
		if ok {
			a.b, b.b = a.b[:0], b.b[:0]
			a.budget, b.budget = maxEventBudget, maxEventBudget
			a.b = appendAny(&a, a.b, v, 0, nil)
			b.b = appendAny(&b, b.b, w, 0, nil)
			if bytes.Equal(a.b, b.b) {
				continue
			}
		}
		changed = append(changed, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	return changed
}

// AuthzFailed records that the actor was refused action on resource
// (authz_fail): vigil.authz.resource, vigil.authz.action.
func (c *Client) AuthzFailed(ctx context.Context, resource, action string) error {
	a := spec("authz_fail")
	a.message = "access denied: " + action + " on " + resource
	a.fields = []Field{String("vigil.authz.resource", resource), String("vigil.authz.action", action)}
	return c.audit(ctx, a, nil)
}
