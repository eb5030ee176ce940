package retention

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestHoldAPI(t *testing.T) {
	path := filepath.Join(t.TempDir(), HoldsFile)
	fixed := []Hold{{ID: "cfg", Query: `user.name = "alice"`, Reason: "audit 2026"}}
	serve := func() (*Holds, *http.ServeMux) {
		t.Helper()
		holds, err := NewHolds(fixed)
		if err != nil {
			t.Fatal(err)
		}
		api, err := NewHoldAPI(holds, path, fixed)
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		api.Register(mux, func(h http.Handler) http.Handler { return h })
		return holds, mux
	}
	do := func(mux *http.ServeMux, method, target, body string) int {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, target, strings.NewReader(body)))
		return rec.Code
	}
	ids := func(h *Holds) []string {
		var out []string
		for _, x := range h.List() {
			out = append(out, x.ID)
		}
		return out
	}

	holds, mux := serve()
	for _, tc := range []struct {
		method, target, body string
		want                 int
	}{
		{"POST", "/api/v1/holds", `{"id":"case-42","incident":"INC-42","reason":"litigation"}`, http.StatusCreated},
		{"POST", "/api/v1/holds", `{"id":"bad","query":"url.path =="}`, http.StatusBadRequest},
		{"POST", "/api/v1/holds", `{"id":"x","query":"a = 1","color":"red"}`, http.StatusBadRequest},
		{"POST", "/api/v1/holds", `{"id":"cfg","query":"a = 1"}`, http.StatusConflict},
		{"POST", "/api/v1/holds", strings.Repeat(" ", maxHoldBody+1), http.StatusRequestEntityTooLarge},
		{"DELETE", "/api/v1/holds/cfg", "", http.StatusConflict},
		{"DELETE", "/api/v1/holds/nope", "", http.StatusNotFound},
		{"GET", "/api/v1/holds", "", http.StatusOK},
	} {
		if got := do(mux, tc.method, tc.target, tc.body); got != tc.want {
			t.Errorf("%s %s %.40s: %d, want %d", tc.method, tc.target, tc.body, got, tc.want)
		}
	}
	if got := ids(holds); !slices.Equal(got, []string{"case-42", "cfg"}) {
		t.Fatalf("holds %v", got)
	}
	// A restart keeps the hold added through the API.
	holds, mux = serve()
	if got := ids(holds); !slices.Equal(got, []string{"case-42", "cfg"}) {
		t.Fatalf("after a restart: holds %v", got)
	}
	if got := do(mux, "DELETE", "/api/v1/holds/case-42", ""); got != http.StatusOK {
		t.Fatalf("lift: %d", got)
	}
	holds, _ = serve()
	if got := ids(holds); !slices.Equal(got, []string{"cfg"}) {
		t.Fatalf("after lifting and a restart: holds %v", got)
	}
}
