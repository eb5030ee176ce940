package alert

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func apiDo(t *testing.T, srv *httptest.Server, method, path, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	h := newHarness(t, simpleRoute)
	h.at(0, withEvidence(fire("a"), 5, 6), fire("b"), withFor(fire("p"), time.Hour))
	h.at(30 * time.Second)
	srv := httptest.NewServer(NewAPI(h.m))
	defer srv.Close()
	fpA := Fingerprint(mustNormalize(t, fire("a")))
	q := url.QueryEscape

	cases := []struct {
		method, path, body string
		ctype              string
		status             int
		want               []string
		not                []string
	}{
		{method: "GET", path: "/api/v1/alerts", status: 200, want: []string{`"id":"a"`, `"id":"b"`, `"id":"p"`, `"receivers":["team"]`}},
		{method: "GET", path: "/api/v1/alerts?state=pending", status: 200, want: []string{`"id":"p"`, `"for":"1h0m0s"`}, not: []string{`"id":"a"`}},
		{method: "GET", path: "/api/v1/alerts?state=firing,resolved&receiver=team", status: 200, want: []string{`"id":"a"`}, not: []string{`"id":"p"`}},
		{method: "GET", path: "/api/v1/alerts?receiver=nobody", status: 200, want: []string{`{"alerts":[]}`}},
		{method: "GET", path: "/api/v1/alerts?filter=" + q(`id=~"a|p"`), status: 200, want: []string{`"id":"a"`, `"id":"p"`}, not: []string{`"id":"b"`}},
		{method: "GET", path: "/api/v1/alerts?filter=" + q(`{id!="a", severity="warning"}`) + "&state=firing", status: 200, want: []string{`"id":"b"`}, not: []string{`"id":"a"`}},
		{method: "GET", path: "/api/v1/alerts?silenced=false&limit=1", status: 200, want: []string{`"silenced":false`}},
		{method: "GET", path: "/api/v1/alerts?state=burning", status: 400, want: []string{`parameter state: \"burning\"`}},
		{method: "GET", path: "/api/v1/alerts?filter=" + q(`id~x`), status: 400, want: []string{"parameter filter[0]"}},
		{method: "GET", path: "/api/v1/alerts?colour=red", status: 400, want: []string{`unknown parameter \"colour\"`}},
		{method: "GET", path: "/api/v1/alerts?silenced=maybe", status: 400, want: []string{"parameter silenced"}},
		{method: "GET", path: "/api/v1/alerts?limit=0", status: 400, want: []string{"parameter limit"}},
		{method: "GET", path: "/api/v1/alerts/" + fpA, status: 200, want: []string{`"evidence":[5,6]`, `"evidenceCount":2`, `"state":"firing"`}},
		{method: "GET", path: "/api/v1/alerts/0123456789abcdef", status: 404, want: []string{`"error":`, "not found"}},
		{method: "POST", path: "/api/v1/silences", ctype: "application/json", body: `{}`, status: 400, want: []string{"field matchers"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=~("],"duration":"1h","createdBy":"a","comment":"c"}`, status: 400, want: []string{"field matchers[0]"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":"id=a"}`, status: 400, want: []string{"field matchers"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"colour":1}`, status: 400, want: []string{"field colour: unknown field"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"duration":"1h","endsAt":"2030-01-01T00:00:00Z","createdBy":"a","comment":"c"}`, status: 400, want: []string{"field duration"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"duration":"-1h","createdBy":"a","comment":"c"}`, status: 400, want: []string{"field duration"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"endsAt":"2020-01-01T00:00:00Z","createdBy":"a","comment":"c"}`, status: 400, want: []string{"field endsAt"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"endsAt":"tomorrow","createdBy":"a","comment":"c"}`, status: 400, want: []string{"RFC 3339"}},
		{method: "POST", path: "/api/v1/silences", body: `{"matchers":["id=a"],"duration":"1h","comment":"c"}`, status: 400, want: []string{"field createdBy"}},
		{method: "POST", path: "/api/v1/silences", body: ``, status: 400, want: []string{"body: empty"}},
		{method: "POST", path: "/api/v1/silences", body: `{} {}`, status: 400, want: []string{"one JSON object"}},
		{method: "POST", path: "/api/v1/silences", body: `{"comment":"` + strings.Repeat("x", DefaultAPIMaxBody) + `"}`, status: 413, want: []string{"larger than"}},
		{method: "POST", path: "/api/v1/silences", ctype: "text/plain", body: `{}`, status: 415, want: []string{"application/json"}},
		{method: "PUT", path: "/api/v1/silences", status: 405, want: []string{"not allowed", "GET, POST"}},
		{method: "DELETE", path: "/api/v1/silences/nope", status: 404, want: []string{"not found"}},
		{method: "GET", path: "/api/v1/silences?state=soon", status: 400, want: []string{"parameter state"}},
		{method: "GET", path: "/api/v1/notifications", status: 200, want: []string{`"status":"sent"`, `"receiver":"team"`, `"groupKey":"route{alertname=\"brute_force\"}"`}},
		{method: "GET", path: "/api/v1/notifications?status=failed", status: 200, want: []string{`{"notifications":[]}`}},
		{method: "GET", path: "/api/v1/notifications?status=bogus", status: 400, want: []string{"parameter status"}},
		{method: "GET", path: "/api/v1/notifications?limit=100000", status: 400, want: []string{"parameter limit"}},
		{method: "GET", path: "/api/v1/elsewhere", status: 404, want: []string{"no route"}},
	}
	for _, c := range cases {
		status, body := apiDo(t, srv, c.method, c.path, c.ctype, c.body)
		if status != c.status {
			t.Errorf("%s %s: status %d, want %d: %s", c.method, c.path, status, c.status, body)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s %s: body lacks %q: %.300s", c.method, c.path, w, body)
			}
		}
		for _, w := range c.not {
			if strings.Contains(body, w) {
				t.Errorf("%s %s: body has %q: %.300s", c.method, c.path, w, body)
			}
		}
		if status >= 400 {
			var e struct{ Error string }
			if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Errorf("%s %s: error body is not {\"error\": ...}: %s", c.method, c.path, body)
			}
		}
	}
}

func TestAPISilenceLifecycle(t *testing.T) {
	h := newHarness(t, simpleRoute)
	h.at(0, fire("a"))
	srv := httptest.NewServer(NewAPI(h.m))
	defer srv.Close()
	status, body := apiDo(t, srv, "POST", "/api/v1/silences", "application/json",
		`{"matchers":["id=\"a\""],"duration":"2h","createdBy":"alice","comment":"deploy"}`)
	if status != 200 {
		t.Fatalf("create: %d %s", status, body)
	}
	var s Silence
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	if s.Status != SilenceActive || !s.EndsAt.Equal(t0.Add(2*time.Hour)) || s.Matchers.String() != `{id="a"}` {
		t.Fatalf("created %+v", s)
	}
	// The alert shows as silenced; the group is not notified.
	h.at(30 * time.Second)
	if got := h.rec["team"].take(); len(got) != 0 {
		t.Errorf("silenced alert notified: %q", got)
	}
	_, body = apiDo(t, srv, "GET", "/api/v1/alerts?silenced=true", "", "")
	if !strings.Contains(body, `"silencedBy":["`+s.ID+`"]`) {
		t.Errorf("alert not shown as silenced: %s", body)
	}
	if _, body = apiDo(t, srv, "GET", "/api/v1/silences/"+s.ID, "", ""); !strings.Contains(body, `"createdBy":"alice"`) {
		t.Errorf("get silence: %s", body)
	}
	status, body = apiDo(t, srv, "DELETE", "/api/v1/silences/"+s.ID, "", "")
	if status != 200 || !strings.Contains(body, `"status":"expired"`) {
		t.Fatalf("expire: %d %s", status, body)
	}
	_, body = apiDo(t, srv, "GET", "/api/v1/silences?state=active", "", "")
	if body != "{\"silences\":[]}\n" {
		t.Errorf("active silences after expiry: %s", body)
	}
	h.at(5*time.Minute + 30*time.Second)
	if got := h.rec["team"].take(); len(got) != 1 || got[0] != "a+" {
		t.Errorf("after expiry notified %q", got)
	}
}

func FuzzParseSilenceRequest(f *testing.F) {
	for _, s := range []string{
		`{"matchers":["id=\"a\""],"duration":"2h","createdBy":"alice","comment":"deploy"}`,
		`{"matchers":["{a=~\"x|y\", b!=z}"],"startsAt":"2025-03-01T12:00:00Z","endsAt":"2025-03-02T12:00:00Z","createdBy":"b","comment":"c"}`,
		`{"matchers":[1]}`, `{}`, `[]`, `{"duration":"7d"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSilenceRequest(b, t0)
		if err != nil {
			return
		}
		if len(s.Matchers) > MaxMatchersInList*MaxMatchersInList {
			t.Fatalf("%d matchers", len(s.Matchers))
		}
		if err := s.validate(t0, false); err == nil && !s.EndsAt.After(t0) {
			t.Fatalf("valid silence ending in the past: %+v", s)
		}
	})
}
