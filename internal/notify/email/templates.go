package email

// Default templates. Text and subject are text/template; the HTML body is
// html/template, which escapes every value from alerts for its context.
const (
	DefaultSubject = `[{{ .Status | upper }}{{ if eq .Status "firing" }}:{{ .NumFiring }}{{ end }}] {{ with .CommonLabels.alertname }}{{ . }}{{ else }}{{ len .Alerts }} Vigil alerts{{ end }}{{ with .CommonLabels.severity }} ({{ . }}){{ end }}`

	DefaultText = `{{ if eq .Status "firing" }}{{ .NumFiring }} alert{{ if ne .NumFiring 1 }}s{{ end }} firing{{ if .NumResolved }}, {{ .NumResolved }} resolved{{ end }}{{ else }}{{ .NumResolved }} alert{{ if ne .NumResolved 1 }}s{{ end }} resolved{{ end }} (receiver {{ .Receiver }}).
{{ range $a := .Alerts }}
== {{ .Name }} [{{ .Status | upper }}] severity {{ .Severity }}
{{ .Summary }}
{{ with .Description }}{{ if ne . $a.Summary }}{{ . }}
{{ end }}{{ end }}Started:  {{ time .StartsAt }}
{{ if eq .Status "resolved" }}Resolved: {{ time .EndsAt }}
{{ end }}Labels:
{{ range .Labels.SortedPairs }}  {{ .Name }} = {{ .Value }}
{{ end }}{{ with .Evidence }}Evidence: events {{ seqs . }}
{{ end }}{{ with .EvidenceURL }}Details:  {{ . }}
{{ end }}{{ with .Annotations.runbook }}Runbook:  {{ . }}
{{ end }}{{ end }}
-- 
Sent by Vigil{{ with .ExternalURL }} ({{ . }}){{ end }}.
`

	DefaultHTML = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ .Status | upper }}: {{ with .CommonLabels.alertname }}{{ . }}{{ else }}Vigil alerts{{ end }}</title></head>
<body style="font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #222; max-width: 760px;">
<p style="font-size: 16px;">{{ if eq .Status "firing" }}<strong style="color: #a30200;">{{ .NumFiring }} alert{{ if ne .NumFiring 1 }}s{{ end }} firing</strong>{{ if .NumResolved }}, {{ .NumResolved }} resolved{{ end }}{{ else }}<strong style="color: #2eb886;">{{ .NumResolved }} alert{{ if ne .NumResolved 1 }}s{{ end }} resolved</strong>{{ end }} <span style="color: #666;">(receiver {{ .Receiver }})</span></p>
{{ range $a := .Alerts }}
<table style="border-collapse: collapse; width: 100%; margin: 12px 0; border-left: 6px solid {{ if eq .Status "resolved" }}#2eb886{{ else if eq .Severity "critical" }}#a30200{{ else if eq .Severity "error" }}#e8590c{{ else if eq .Severity "info" }}#439fe0{{ else }}#daa038{{ end }};">
<tr><td style="padding: 6px 10px;" colspan="2"><strong>{{ .Name }}</strong> <span style="color: #666;">[{{ .Status | upper }}] severity {{ .Severity }}</span></td></tr>
<tr><td style="padding: 2px 10px;" colspan="2">{{ .Summary }}</td></tr>
{{ with .Description }}{{ if ne . $a.Summary }}<tr><td style="padding: 2px 10px; color: #444;" colspan="2">{{ . }}</td></tr>{{ end }}{{ end }}
<tr><td style="padding: 2px 10px; color: #666; width: 120px; vertical-align: top;">Started</td><td style="padding: 2px 10px;">{{ time .StartsAt }}</td></tr>
{{ if eq .Status "resolved" }}<tr><td style="padding: 2px 10px; color: #666; width: 120px; vertical-align: top;">Resolved</td><td style="padding: 2px 10px;">{{ time .EndsAt }}</td></tr>{{ end }}
{{ range .Labels.SortedPairs }}<tr><td style="padding: 2px 10px; color: #666; width: 120px; vertical-align: top;">{{ .Name }}</td><td style="padding: 2px 10px;"><code>{{ .Value }}</code></td></tr>
{{ end }}{{ with .Evidence }}<tr><td style="padding: 2px 10px; color: #666; width: 120px; vertical-align: top;">Evidence</td><td style="padding: 2px 10px;">events {{ seqs . }}</td></tr>{{ end }}
{{ with .EvidenceURL }}<tr><td style="padding: 2px 10px;" colspan="2"><a href="{{ . }}">Open in Vigil</a></td></tr>{{ end }}
{{ with .Annotations.runbook }}<tr><td style="padding: 2px 10px;" colspan="2"><a href="{{ . }}">Runbook</a></td></tr>{{ end }}
</table>
{{ end }}
<p style="color: #888; font-size: 12px;">Sent by Vigil{{ with .ExternalURL }} (<a href="{{ . }}">{{ . }}</a>){{ end }}.</p>
</body></html>
`
)
