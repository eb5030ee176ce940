package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/event"
	"github.com/vigilsec/vigil/internal/store/sqlite"
)

// TestFilterParameter searches and counts with filter=, the grammar of
// detection rules, over a real store.
func TestFilterParameter(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "events.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var events []event.Event
	for i := range 30 {
		query := "page=1"
		if i%3 == 0 {
			query = "id=1%27%20UNION%20SELECT%20password"
		}
		e, err := event.Parse(fmt.Appendf(nil, `{"@timestamp":%q,"event":{"action":"http_request"},"source":{"ip":"10.0.0.%d"},"url":{"path":"/p","query":%q},"http":{"response":{"status_code":%d}}}`,
			t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i%2, query, 200+i%2*300), event.Limits{}, t0)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if _, err := st.Append(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&Events{Store: st}).Register(mux, func(h http.Handler) http.Handler { return h })
	get := func(path string, params url.Values, out any) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path+"?"+params.Encode(), nil))
		if out != nil && rec.Code == http.StatusOK {
			if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
				t.Fatal(err)
			}
		}
		return rec.Code
	}
	type answer struct {
		Events []struct {
			Seq uint64 `json:"seq"`
		} `json:"events"`
		NextAfter uint64 `json:"next_after"`
		Partial   bool   `json:"partial"`
		Count     int64  `json:"count"`
	}
	for _, tc := range []struct {
		params url.Values
		want   []uint64
	}{
		{url.Values{"filter": {`urldecode(url.query) contains~ "union select"`}}, []uint64{1, 4, 7, 10, 13, 16, 19, 22, 25, 28}},
		{url.Values{"filter": {`urldecode(url.query) contains~ "union select"`}, "ip": {"10.0.0.1"}}, []uint64{4, 10, 16, 22, 28}},
		{url.Values{"filter": {`http.response.status_code >= 500 and not source.ip in 10.0.0.0/31`}}, nil},
		{url.Values{"filter": {`http.response.status_code >= 500`}, "limit": {"3"}}, []uint64{2, 4, 6}},
	} {
		var a answer
		if code := get("/api/v1/events", tc.params, &a); code != http.StatusOK {
			t.Fatalf("%v: %d", tc.params, code)
		}
		var got []uint64
		for _, e := range a.Events {
			got = append(got, e.Seq)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || a.Partial {
			t.Errorf("%v: %v (partial %v), want %v", tc.params, got, a.Partial, tc.want)
		}
		tc.params.Del("limit")
		var c answer
		get("/api/v1/events/count", tc.params, &c)
		if tc.params.Get("filter") == `http.response.status_code >= 500` {
			if c.Count != 15 {
				t.Errorf("count %v = %d, want 15", tc.params, c.Count)
			}
		} else if c.Count != int64(len(tc.want)) {
			t.Errorf("count %v = %d, want %d", tc.params, c.Count, len(tc.want))
		}
	}
	if code := get("/api/v1/events", url.Values{"filter": {`url.path ==`}}, nil); code != http.StatusBadRequest {
		t.Errorf("bad filter: %d, want 400", code)
	}
}
