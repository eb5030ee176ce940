package alert

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// exampleConfig is the routing example of docs/alerts.md.
const exampleConfig = `
route:
  receiver: team-email
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['severity=~"critical|error"']
      receiver: oncall-pager
      group_by: [alertname, source.ip]
      group_wait: 10s
      continue: true
    - matchers: ['severity="critical"']
      receiver: security-chat
    - matchers: ['rule="scanner"']
      receiver: ignore
      repeat_interval: 7d
      routes:
        - matchers: ['source.ip=~"10\\..*"']
          receiver: internal
receivers:
  - name: team-email
    send_resolved: false
retention: 48h
max_alerts: 5000
`

func TestParseConfigExample(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	root, err := compileRoutes(c.Route)
	if err != nil {
		t.Fatal(err)
	}
	pager := root.children[0]
	if pager.receiver != "oncall-pager" || pager.groupWait != 10*time.Second || pager.groupInterval != 5*time.Minute ||
		pager.repeatInterval != 4*time.Hour || !slices.Equal(pager.groupBy, []string{"alertname", "source.ip"}) {
		t.Errorf("pager route: %+v", pager)
	}
	internal := root.children[2].children[0]
	if internal.id != "route.routes[2].routes[0]" || internal.repeatInterval != 7*24*time.Hour ||
		!slices.Equal(internal.groupBy, []string{"alertname"}) {
		t.Errorf("inheritance: %+v", internal)
	}
	if c.sendResolved("team-email") || !c.sendResolved("oncall-pager") {
		t.Error("send_resolved: want false for team-email, default true for others")
	}
	if c.Retention != Duration(48*time.Hour) || c.withDefaults().Workers != DefaultWorkers {
		t.Errorf("retention %v workers %d", c.Retention, c.withDefaults().Workers)
	}
	// The documentation shows the same example.
	doc, err := os.ReadFile("../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), strings.TrimSpace(exampleConfig)) {
		t.Error("docs/alerts.md does not contain the tested routing example")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		yaml string
		want string
	}{
		{`{}`, "field route: missing"},
		{"route: {group_by: [a]}", "field route.receiver"},
		{"route: {receiver: a, matchers: ['x=1']}", "field route.matchers"},
		{"route: {receiver: a, continue: true}", "field route.continue"},
		{"route: {receiver: a, colour: red}", "colour"},
		{"route: {receiver: a, group_wait: soon}", "not a duration"},
		{"route: {receiver: a, group_interval: 0s}", "field route.group_interval: must be positive"},
		{"route: {receiver: a, repeat_interval: -1m}", "field route.repeat_interval"},
		{"route: {receiver: a, group_by: ['...', a]}", "field route.group_by[0]"},
		{"route: {receiver: a, group_by: [a, a]}", "field route.group_by[1]"},
		{"route: {receiver: a, routes: [{matchers: ['sev=~\"(\"']}]}", "field route.routes[0].matchers[0]"},
		{"route: {receiver: a, routes: [{receiver: b}, {matchers: [nope]}]}", "field route.routes[1].matchers[0]"},
		{"route: {receiver: a}\nreceivers: [{send_resolved: false}]", "field receivers[0].name"},
		{"route: {receiver: a}\nreceivers: [{name: a}, {name: a}]", "field receivers[1].name"},
		{"route: {receiver: a}\nmax_alerts: -1", "field max_alerts"},
		{"route: {receiver: a}\nretry: {initial: 10s, max: 1s}", "field retry.max"},
		{"route: {receiver: a}\nretention: -1h", "field retention"},
		{"route: {receiver: a}\nworkers: 100000", "field workers"},
		{"route: {receiver: a, routes: [null]}", "field route.routes[0]: empty route"},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n  error %v, want %q", c.yaml, err, c.want)
		}
	}
	deep := "route:\n  receiver: a\n"
	indent := "  "
	for range MaxRouteDepth + 1 {
		deep += indent + "routes:\n" + indent + "- receiver: a\n"
		indent += "  "
	}
	if _, err := ParseConfig([]byte(deep)); err == nil || !strings.Contains(err.Error(), "deeper than") {
		t.Errorf("deep tree: %v", err)
	}
}

func TestNewChecksReceivers(t *testing.T) {
	c, err := ParseConfig([]byte("route: {receiver: a, routes: [{receiver: b, matchers: ['x=1']}]}"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Options{Config: c, Receivers: map[string][]Notifier{"a": nil}})
	if err == nil || !strings.Contains(err.Error(), `field route.routes[0].receiver: no receiver named "b"`) {
		t.Errorf("unknown receiver: %v", err)
	}
	c.Receivers = []ReceiverConfig{{Name: "c"}}
	_, err = New(Options{Config: c, Receivers: map[string][]Notifier{"a": nil, "b": nil}})
	if err == nil || !strings.Contains(err.Error(), "field receivers[0].name") {
		t.Errorf("settings for an unknown receiver: %v", err)
	}
}

func TestRouting(t *testing.T) {
	c, err := ParseConfig([]byte(exampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := compileRoutes(c.Route)
	cases := []struct {
		labels map[string]string
		want   []string // receivers in order
	}{
		{map[string]string{"severity": "warning", "rule": "x"}, []string{"team-email"}},
		// continue on the first route lets the second one take it too.
		{map[string]string{"severity": "critical"}, []string{"oncall-pager", "security-chat"}},
		{map[string]string{"severity": "error"}, []string{"oncall-pager"}},
		{map[string]string{"severity": "info", "rule": "scanner", "source.ip": "10.1.2.3"}, []string{"internal"}},
		{map[string]string{"severity": "info", "rule": "scanner", "source.ip": "192.0.2.1"}, []string{"ignore"}},
		// The first route without continue stops the search.
		{map[string]string{"severity": "error", "rule": "scanner"}, []string{"oncall-pager", "ignore"}},
	}
	for _, tc := range cases {
		var got []string
		for _, r := range root.match(tc.labels) {
			got = append(got, r.receiver)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%v routed to %v, want %v", tc.labels, got, tc.want)
		}
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(exampleConfig))
	f.Add([]byte("route: {receiver: a}"))
	f.Add([]byte("route: {receiver: a, routes: [{matchers: ['a=~\"x\"'], group_by: ['...']}]}"))
	f.Add([]byte("route: &a {receiver: a, routes: [*a]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err != nil {
			return
		}
		recv := anyReceivers(c.Route)
		for _, rc := range c.Receivers {
			recv[rc.Name] = nil
		}
		if _, err := New(Options{Config: c, Receivers: recv}); err != nil {
			t.Fatalf("valid config refused by New: %v", err)
		}
	})
}

// anyReceivers maps every receiver named in a tree to no notifiers.
func anyReceivers(r *Route) map[string][]Notifier {
	out := map[string][]Notifier{}
	var walk func(*Route)
	walk = func(r *Route) {
		if r == nil {
			return
		}
		out[r.Receiver] = nil
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(r)
	return out
}
