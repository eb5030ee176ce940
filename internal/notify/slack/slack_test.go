package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

var colourRE = regexp.MustCompile(`^#[0-9a-f]{6}$`)

// slackHook is an incoming-webhook endpoint that validates the message
// against Slack's format and answers as scripted.
type slackHook struct {
	t      *testing.T
	got    []Message
	status int
	body   string
	header map[string]string
}

func (s *slackHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/services/T0/B0/XYZSECRET" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		s.t.Errorf("%s %s %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(r.Body)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Message
	if err := dec.Decode(&m); err != nil {
		s.t.Errorf("message is not the documented JSON: %v", err)
	}
	if m.Text == "" || len(m.Text) > MaxTextBytes {
		s.t.Errorf("text of %d bytes", len(m.Text))
	}
	if len(m.Attachments) != 1 {
		s.t.Fatalf("%d attachments", len(m.Attachments))
	}
	a := m.Attachments[0]
	if !colourRE.MatchString(a.Color) || a.Fallback == "" || a.Text == "" || len(a.Text) > MaxAttachmentBytes || a.Ts == 0 {
		s.t.Errorf("attachment %+v", a)
	}
	if a.TitleLink != "" && !strings.HasPrefix(a.TitleLink, "https://") {
		s.t.Errorf("title_link %q", a.TitleLink)
	}
	s.got = append(s.got, m)
	for k, v := range s.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(s.status)
	io.WriteString(w, s.body)
}

func newNotifier(t *testing.T, url string) *Notifier {
	t.Helper()
	n, err := New(Options{URL: url + "/services/T0/B0/XYZSECRET", Channel: "#security", Receiver: "sec", ExternalURL: "https://vigil.test", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNotifyStatuses(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		retry      bool
		wantErr    string
		retryAfter time.Duration
	}{
		{"200 ok", 200, "ok", nil, false, "", 0},
		{"429 honours Retry-After", 429, "rate_limited", map[string]string{"Retry-After": "30"}, true, "rate_limited", 30 * time.Second},
		{"500 retried", 500, "", nil, true, "500", 0},
		{"503 retried", 503, "", nil, true, "503", 0},
		{"400 invalid_payload not retried", 400, "invalid_payload", nil, false, "invalid_payload", 0},
		{"403 not retried", 403, "invalid_token", nil, false, "invalid_token", 0},
		{"404 not retried", 404, "channel_not_found", nil, false, "channel_not_found", 0},
		{"410 not retried", 410, "channel_is_archived", nil, false, "channel_is_archived", 0},
		{"201 is not Slack's success", 201, "", nil, false, "201", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := &slackHook{t: t, status: c.status, body: c.body, header: c.header}
			srv := httptest.NewServer(h)
			defer srv.Close()
			retry, err := newNotifier(t, srv.URL).Notify(context.Background(), message.SampleAlerts())
			if retry != c.retry {
				t.Errorf("retry %v, want %v", retry, c.retry)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "XYZSECRET") {
					t.Errorf("error shows the webhook token: %v", err)
				}
			}
			var ra interface{ RetryAfter() time.Duration }
			if c.retryAfter > 0 && (!errors.As(err, &ra) || ra.RetryAfter() != c.retryAfter) {
				t.Errorf("Retry-After not carried: %v", err)
			}
			if len(h.got) != 1 || h.got[0].Channel != "#security" {
				t.Fatalf("received %+v", h.got)
			}
		})
	}
}

func TestNetworkErrorIsRetriedAndHidesToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	retry, err := newNotifier(t, url).Notify(context.Background(), message.SampleAlerts())
	if !retry || err == nil || strings.Contains(err.Error(), "XYZSECRET") {
		t.Fatalf("retry %v err %v", retry, err)
	}
}

func TestMessageContent(t *testing.T) {
	firing := message.SampleAlerts()
	resolved := message.SampleAlerts()
	for i := range resolved {
		resolved[i].Status = alert.StateResolved
		resolved[i].EndsAt = resolved[i].StartsAt.Add(time.Hour)
	}
	hostile := message.SampleAlerts()[:1]
	hostile[0].Annotations = map[string]string{"summary": "<!channel> see <https://evil.example|your bank> & more"}
	hostile[0].Labels["user.name"] = "<@U123>"
	info := message.SampleAlerts()[1:]
	info[0].Labels["severity"] = "info"
	info[0].GeneratorURL = ""

	cases := []struct {
		name      string
		alerts    []alert.Alert
		colour    string
		text      []string // substrings of text or attachment text
		forbidden []string
		link      string
	}{
		{"firing critical", firing, "#a30200", []string{"[FIRING:2]", "BruteForceLogin", "42 failed logins", "`203.0.113.7`", "events 1201, 1207, 1288", "<https://vigil.example.com/alerts/5f2c1a9e0b7d4c33|*BruteForceLogin*>", "runbook"}, nil, "https://vigil.example.com/alerts/5f2c1a9e0b7d4c33"},
		{"resolved is green", resolved, "#2eb886", []string{"[RESOLVED]", "resolved"}, []string{"FIRING"}, "https://vigil.example.com/alerts/5f2c1a9e0b7d4c33"},
		{"alert text is escaped", hostile, "#a30200", []string{"&lt;!channel&gt;", "&lt;https://evil.example|your bank&gt; &amp; more", "&lt;@U123&gt;"}, []string{"<!channel>", "<https://evil.example", "<@U123>"}, ""},
		{"info without own link uses external URL", info, "#439fe0", []string{"(info)"}, nil, "https://vigil.test"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := newNotifier(t, "https://hooks.test").Build(c.alerts)
			if err != nil {
				t.Fatal(err)
			}
			all := m.Text + "\n" + m.Attachments[0].Text
			for _, s := range c.text {
				if !strings.Contains(all, s) {
					t.Errorf("message lacks %q:\n%s", s, all)
				}
			}
			for _, s := range c.forbidden {
				if strings.Contains(all, s) {
					t.Errorf("message contains %q:\n%s", s, all)
				}
			}
			if m.Attachments[0].Color != c.colour {
				t.Errorf("colour %s, want %s", m.Attachments[0].Color, c.colour)
			}
			if c.link != "" && m.Attachments[0].TitleLink != c.link {
				t.Errorf("title_link %q, want %q", m.Attachments[0].TitleLink, c.link)
			}
		})
	}
}

func TestLongTextIsTruncated(t *testing.T) {
	n, err := New(Options{URL: "https://hooks.test/x", Title: message.MustText("t", `{{ printf "%05000d" 0 }}`), Text: message.MustText("x", `{{ printf "%020000d" 0 }}`)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := n.Build(message.SampleAlerts())
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Text) > MaxTextBytes || len(m.Attachments[0].Text) > MaxAttachmentBytes || len(m.Attachments[0].Fallback) > MaxTitleBytes {
		t.Errorf("lengths %d %d %d", len(m.Text), len(m.Attachments[0].Text), len(m.Attachments[0].Fallback))
	}
}
