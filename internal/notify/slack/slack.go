// Package slack posts alerts to a Slack incoming webhook: a message whose
// text is the title template and one attachment coloured by the worst
// severity that fires (green when everything is resolved), holding the text
// template and a link to the evidence in Vigil.
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigilsec/vigil/internal/alert"
	"github.com/vigilsec/vigil/internal/notify/message"
	"github.com/vigilsec/vigil/internal/notify/post"
)

// Limits Slack applies, with room to spare.
const (
	MaxTextBytes       = 3000 // top-level text (Slack truncates far later, but notifications show ~150)
	MaxAttachmentBytes = 8000 // attachment text
	MaxTitleBytes      = 300
)

// Default templates. Every string from alerts reaches them with Slack's
// control characters (&, <, >) escaped, so an alert cannot inject links or
// mentions.
const (
	DefaultTitle = `{{ if eq .Status "firing" }}:rotating_light: *[FIRING:{{ .NumFiring }}]*{{ else }}:white_check_mark: *[RESOLVED]*{{ end }} {{ with .CommonLabels.alertname }}{{ . }}{{ else }}{{ len .Alerts }} alerts{{ end }}`
	DefaultText  = `{{ range .Alerts }}{{ if .EvidenceURL }}<{{ .EvidenceURL }}|*{{ .Name }}*>{{ else }}*{{ .Name }}*{{ end }} ({{ .Severity }}{{ if eq .Status "resolved" }}, resolved{{ end }}): {{ .Summary }}
{{ range (.Labels.Remove "alertname" "severity" "rule").SortedPairs }}• {{ .Name }}: ` + "`{{ .Value }}`" + `
{{ end }}{{ with .Evidence }}• evidence: events {{ seqs . }}
{{ end }}{{ with .Annotations.runbook }}• runbook: {{ . }}
{{ end }}
{{ end }}`
)

// Colours of the attachment bar.
var colours = map[string]string{
	alert.SeverityCritical: "#a30200",
	alert.SeverityError:    "#e8590c",
	alert.SeverityWarning:  "#daa038",
	alert.SeverityInfo:     "#439fe0",
	"":                     "#2eb886", // nothing firing: resolved
}

// Message is the JSON body posted to the webhook.
type Message struct {
	Text        string       `json:"text"`
	Channel     string       `json:"channel,omitempty"`
	Username    string       `json:"username,omitempty"`
	IconEmoji   string       `json:"icon_emoji,omitempty"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is the coloured part of a Message.
type Attachment struct {
	Color     string   `json:"color"`
	Fallback  string   `json:"fallback"`
	Title     string   `json:"title,omitempty"`
	TitleLink string   `json:"title_link,omitempty"`
	Text      string   `json:"text"`
	Footer    string   `json:"footer"`
	Ts        int64    `json:"ts"`
	MrkdwnIn  []string `json:"mrkdwn_in"`
}

// Options configure a Notifier.
type Options struct {
	URL       string // the incoming webhook URL; it is a secret
	Channel   string // optional override (legacy webhooks only)
	Username  string
	IconEmoji string
	Title     *message.Template // nil: DefaultTitle
	Text      *message.Template // nil: DefaultText
	Receiver  string
	// ExternalURL is Vigil's base URL, the attachment's link when no alert
	// has its own.
	ExternalURL string
	Timeout     time.Duration
	Client      *http.Client
	Now         func() time.Time
}

// Notifier posts to one Slack incoming webhook.
type Notifier struct{ o Options }

// New returns a Notifier.
func New(o Options) (*Notifier, error) {
	if o.URL == "" {
		return nil, errors.New("slack: no webhook URL")
	}
	if o.Title == nil {
		o.Title = message.MustText("slack.title", DefaultTitle)
	}
	if o.Text == nil {
		o.Text = message.MustText("slack.text", DefaultText)
	}
	if o.Client == nil {
		o.Client = post.NewClient(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Notifier{o: o}, nil
}

// Escape escapes the three characters Slack's mrkdwn gives meaning to.
func Escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Build renders the message for alerts.
func (n *Notifier) Build(alerts []alert.Alert) (Message, error) {
	d := message.NewData(n.o.Receiver, n.o.ExternalURL, alerts)
	worst := d.WorstSeverity()
	ed := d.Map(Escape)
	title, err := n.o.Title.Execute(ed)
	if err != nil {
		return Message{}, fmt.Errorf("slack: title template: %w", err)
	}
	text, err := n.o.Text.Execute(ed)
	if err != nil {
		return Message{}, fmt.Errorf("slack: text template: %w", err)
	}
	title = message.Truncate(strings.TrimSpace(title), MaxTextBytes)
	colour, ok := colours[worst]
	if !ok {
		colour = colours[alert.SeverityWarning]
	}
	link := n.o.ExternalURL
	if len(d.Alerts) > 0 && d.Alerts[0].EvidenceURL != "" {
		link = d.Alerts[0].EvidenceURL
	}
	att := Attachment{
		Color:    colour,
		Fallback: message.Truncate(title, MaxTitleBytes),
		Text:     message.Truncate(strings.TrimSpace(text), MaxAttachmentBytes),
		Footer:   "Vigil",
		Ts:       n.o.Now().Unix(),
		MrkdwnIn: []string{"text"},
	}
	if link != "" {
		att.Title = "Open in Vigil"
		att.TitleLink = link
	}
	return Message{
		Text:        title,
		Channel:     n.o.Channel,
		Username:    n.o.Username,
		IconEmoji:   n.o.IconEmoji,
		Attachments: []Attachment{att},
	}, nil
}

// Notify posts one message for the alerts. 200 is success; 429 (honouring
// Retry-After, see post.StatusError) and 5xx are worth a retry; other
// statuses (400 invalid_payload, 403, 404 channel_not_found, 410) are not.
func (n *Notifier) Notify(ctx context.Context, alerts []alert.Alert) (bool, error) {
	if len(alerts) == 0 {
		return false, nil
	}
	m, err := n.Build(alerts)
	if err != nil {
		return false, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return false, fmt.Errorf("slack: encode message: %w", err)
	}
	resp, err := post.Do(ctx, n.o.Client, post.Request{URL: n.o.URL, Body: body, SecretURL: true, Timeout: n.o.Timeout})
	if err != nil {
		return post.RetryError(err), fmt.Errorf("slack: %w", err)
	}
	retry, err := post.Check(resp, n.o.Now(), http.StatusOK)
	if err != nil {
		return retry, fmt.Errorf("slack: %w", err)
	}
	return false, nil
}
