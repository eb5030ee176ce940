package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// secrets in testdata/full.yaml that must never be printed.
var fullSecrets = []string{"smtp-password-1234", "slack-token-5678", "pd-routing-key-0123456789abcdef", "webhook-secret-abcdefgh", "am-password-9999"}

func loadFull(t *testing.T) Config {
	t.Helper()
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadFull(t *testing.T) {
	c := loadFull(t)
	if len(c.Receivers) != 2 {
		t.Fatalf("%d receivers", len(c.Receivers))
	}
	r := c.Receivers[0]
	if len(r.Email) != 1 || len(r.Slack) != 1 || len(r.PagerDuty) != 1 || len(r.Webhook) != 1 || len(r.Alertmanager) != 1 {
		t.Fatalf("receiver %+v", r)
	}
	if r.Email[0].AuthPassword.Reveal() != "smtp-password-1234" || r.Email[0].Timeout.String() != "20s" || *r.Slack[0].SendResolved {
		t.Errorf("decoded %+v", r)
	}
}

func TestSecretsAreNeverPrinted(t *testing.T) {
	c := loadFull(t)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "notify", c, "password", c.Receivers[0].Email[0].AuthPassword)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "notify", c, "key", c.Receivers[0].PagerDuty[0].RoutingKey)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	renderings := map[string]string{
		"%v": fmt.Sprintf("%v", c), "%+v": fmt.Sprintf("%+v", c), "%#v": fmt.Sprintf("%#v", c), "%s": fmt.Sprintf("%s", c.Receivers[0].Webhook[0].Secret),
		"%q": fmt.Sprintf("%q", c.Receivers[0].Slack[0].URL), "json": string(js), "yaml": string(ys), "slog": logs.String(),
	}
	for how, s := range renderings {
		for _, secret := range fullSecrets {
			if strings.Contains(s, secret) {
				t.Errorf("%s rendering shows %q:\n%s", how, secret, s)
			}
		}
		if !strings.Contains(s, "<secret>") && !strings.Contains(s, `\u003csecret\u003e`) {
			t.Errorf("%s rendering has no <secret> mark:\n%s", how, s)
		}
	}
	if !strings.Contains(renderings["%+v"], "smtp.example.com:587") {
		t.Error("redaction hid more than secrets")
	}
	if Secret("").String() != "" {
		t.Error("empty secret rendered as <secret>")
	}
}

func TestParseErrors(t *testing.T) {
	const head = "receivers:\n  - name: r\n"
	email := head + "    email:\n      - to: [a@example.com]\n        from: v@example.com\n        smarthost: mail.example.com:25\n"
	slack := head + "    slack:\n      - url: https://hooks.example.com/x\n"
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "receiver: []\n", "field receiver not found"},
		{"unknown channel key", head + "    slack:\n      - url: https://x.example.com\n        colour: red\n", "field colour not found"},
		{"unknown email key", email + "        passwd: x\n", "field passwd not found"},
		{"bad duration", slack + "        timeout: soon\n", `"soon" is not a duration`},
		{"empty name", "receivers:\n  - slack: []\n", "receivers[0].name: must not be empty"},
		{"duplicate name", head + "  - name: r\n", `receivers[1].name: "r" is already the name of receivers[0]`},
		{"slash in name", "receivers:\n  - name: a/b\n", "receivers[0].name"},
		{"slack url scheme", head + "  - name: s\n    slack:\n      - url: ftp://x\n", "receivers[1].slack[0].url: must be an http(s) URL"},
		{"slack url missing", head + "    slack:\n      - channel: x\n", "receivers[0].slack[0].url: must be set (or url_file)"},
		{"slack url and file", slack + "        url_file: /x\n", "receivers[0].slack[0].url: set url or url_file, not both"},
		{"slack bad template", slack + "        title: '{{ .Nope }}'\n", "receivers[0].slack[0].title: template: title:1:3: executing"},
		{"slack template syntax", slack + "        text: '{{ if }}'\n", "receivers[0].slack[0].text:"},
		{"timeout range", slack + "        timeout: 1h\n", "receivers[0].slack[0].timeout: 1h0m0s is outside 100ms..10m"},
		{"email no to", head + "    email:\n      - from: v@example.com\n        smarthost: m:25\n", "receivers[0].email[0].to: must list at least one address"},
		{"email bad to", head + "    email:\n      - to: [a@example.com, nope]\n        from: v@example.com\n        smarthost: m:25\n", `receivers[0].email[0].to[1]: "nope" is not an email address`},
		{"email bad from", head + "    email:\n      - to: [a@example.com]\n        from: nope\n        smarthost: m:25\n", "receivers[0].email[0].from"},
		{"email smarthost", head + "    email:\n      - to: [a@example.com]\n        from: v@example.com\n        smarthost: mail.example.com\n", "receivers[0].email[0].smarthost"},
		{"email password without user", email + "        auth_password: x\n", "receivers[0].email[0].auth_username: must be set with auth_password"},
		{"email password twice", email + "        auth_username: u\n        auth_password: x\n        auth_password_file: /f\n", "receivers[0].email[0].auth_password: set auth_password or auth_password_file, not both"},
		{"email mechanism", email + "        auth_mechanism: CRAM-MD5\n", "receivers[0].email[0].auth_mechanism"},
		{"email tls modes", email + "        require_tls: true\n        implicit_tls: true\n", "receivers[0].email[0].require_tls"},
		{"email ca and insecure", email + "        tls:\n          ca_file: /ca.pem\n          insecure_skip_verify: true\n", "receivers[0].email[0].tls.insecure_skip_verify"},
		{"email reserved header", email + "        headers:\n          bcc: x@example.com\n", "receivers[0].email[0].headers.bcc: is set by Vigil"},
		{"email header name", email + "        headers:\n          'a b': x\n", "receivers[0].email[0].headers"},
		{"email header newline", email + "        headers:\n          X-A: \"a\\r\\nBcc: x\"\n", "receivers[0].email[0].headers.X-A: must be one line"},
		{"email html template", email + "        html: '<p>{{ .Alerts.Nope }}</p>'\n", "receivers[0].email[0].html:"},
		{"email html and text_only", email + "        html: '<p></p>'\n        text_only: true\n", "receivers[0].email[0].html"},
		{"pagerduty key missing", head + "    pagerduty:\n      - source: x\n", "receivers[0].pagerduty[0].routing_key: must be set (or routing_key_file)"},
		{"pagerduty url", head + "    pagerduty:\n      - routing_key: k\n        url: events\n", "receivers[0].pagerduty[0].url: must be an http(s) URL"},
		{"pagerduty details template", head + "    pagerduty:\n      - routing_key: k\n        details:\n          a: '{{ .X }}'\n", "receivers[0].pagerduty[0].details.a:"},
		{"webhook short secret", head + "    webhook:\n      - url: https://x.example.com\n        secret: short\n", "receivers[0].webhook[0].secret: must be at least 16 characters"},
		{"webhook negative max", head + "    webhook:\n      - url: https://x.example.com\n        max_alerts: -1\n", "receivers[0].webhook[0].max_alerts"},
		{"alertmanager no urls", head + "    alertmanager:\n      - {}\n", "receivers[0].alertmanager[0].urls: must list at least one"},
		{"alertmanager bad url", head + "    alertmanager:\n      - urls: [http://ok.example.com, 'x']\n", "receivers[0].alertmanager[0].urls[1]: must be an http(s) URL"},
		{"alertmanager two auths", head + "    alertmanager:\n      - urls: [http://a.example.com]\n        bearer_token: t\n        basic_auth: {username: u, password: p}\n", "receivers[0].alertmanager[0].basic_auth: set basic_auth or bearer_token, not both"},
		{"alertmanager user colon", head + "    alertmanager:\n      - urls: [http://a.example.com]\n        basic_auth: {username: 'a:b'}\n", "receivers[0].alertmanager[0].basic_auth.username"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestURLNotQuotedInErrors(t *testing.T) {
	_, err := Parse([]byte("receivers:\n  - name: r\n    slack:\n      - url: 'hooks.example.com/services/TOKEN123'\n"))
	if err == nil || strings.Contains(err.Error(), "TOKEN123") {
		t.Fatalf("error %v", err)
	}
}

func TestParseFile(t *testing.T) {
	cases := []struct {
		name, yaml, want string
		receivers        int
	}{
		{"bare section", "receivers:\n  - name: a\n", "", 1},
		{"empty", "", "", 0},
		{"embedded in a whole config", "listen: 127.0.0.1:8080\ndata_dir: x\nnotify:\n  receivers:\n    - name: a\n    - name: b\n", "", 2},
		{"embedded, strict inside", "listen: x\nnotify:\n  receivers:\n    - name: a\n      slak: []\n", "field slak not found", 0},
		{"embedded, validated", "notify:\n  receivers:\n    - name: ''\n", "receivers[0].name", 0},
		{"whole config without notify", "listen: 127.0.0.1:8080\n", "field listen not found", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := ParseFile([]byte(c.yaml))
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("error %v, want %q", err, c.want)
				}
				return
			}
			if err != nil || len(cfg.Receivers) != c.receivers {
				t.Fatalf("%d receivers, err %v", len(cfg.Receivers), err)
			}
		})
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	os.WriteFile(big, bytes.Repeat([]byte("#"), MaxFileBytes+1), 0o600)
	if _, err := Load(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: %v", err)
	}
}

// FuzzParseFile checks that no input makes the loader panic, and that what
// it accepts validates and survives a round trip through YAML.
func FuzzParseFile(f *testing.F) {
	full, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(full)
	f.Add([]byte("notify:\n  receivers:\n    - name: a\n      webhook:\n        - url: http://127.0.0.1:1/x\n"))
	f.Add([]byte("receivers: [{name: a, email: [{to: [a@b.c], from: x@y.z, smarthost: 'h:1', subject: '{{ .Status }}'}]}]"))
	f.Add([]byte("receivers:\n  - &a {name: x}\n  - *a\n"))
	f.Add([]byte("\x00\xff: ["))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseFile(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a config that does not validate: %v", err)
		}
	})
}
