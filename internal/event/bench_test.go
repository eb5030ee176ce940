package event

import (
	"testing"
	"time"
)

// benchEvent is a web request as a Django application would send it: 409 bytes.
var benchEvent = []byte(`{"@timestamp":"2025-03-01T12:00:00.123456Z","event.id":"0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d","event.kind":"event","event.category":["web"],"event.action":"http_request","event.outcome":"success","event.duration":12345678,"http.request.method":"POST","url.path":"/api/v1/orders/42","http.response.status_code":201,"source.ip":"203.0.113.7","user.id":"42","user.name":"alice","service.name":"shop","host.name":"web-1","vigil.view":"order-detail","log.level":"INFO"}`)

// benchEventNested is the same event written with nested objects.
var benchEventNested = []byte(`{"@timestamp":"2025-03-01T12:00:00.123456Z","event":{"id":"0195519c-4f2a-7b3e-9c1d-2e8f6a7b5c4d","kind":"event","category":["web"],"action":"http_request","outcome":"success","duration":12345678},"http":{"request":{"method":"POST"},"response":{"status_code":201}},"url":{"path":"/api/v1/orders/42"},"source":{"ip":"203.0.113.7"},"user":{"id":"42","name":"alice"},"service":{"name":"shop"},"host":{"name":"web-1"},"vigil":{"view":"order-detail"},"log":{"level":"INFO"}}`)

// benchEventMinimal has neither event.id nor @timestamp: Vigil fills them.
var benchEventMinimal = []byte(`{"event.category":["web"],"event.action":"http_request","event.outcome":"success","event.duration":12345678,"http.request.method":"POST","url.path":"/api/v1/orders/42","http.response.status_code":201,"source.ip":"203.0.113.7","user.id":"42","user.name":"alice","service.name":"shop","host.name":"web-1","vigil.view":"order-detail","log.level":"INFO"}`)

func BenchmarkParse(b *testing.B) {
	now := time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"web_request", benchEvent},
		{"web_request_nested", benchEventNested},
		{"web_request_no_id", benchEventMinimal},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.data, DefaultLimits, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseStored parses the canonical forms of the events above, as
// the store keeps them.
func BenchmarkParseStored(b *testing.B) {
	now := time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"web_request", benchEvent},
		{"web_request_no_id", benchEventMinimal},
	} {
		ev, err := Parse(bc.data, DefaultLimits, now)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(ev.Canonical)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseStored(ev.Canonical); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNewID(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		NewID()
	}
}

// BenchmarkRoutes parses the web request event, and its canonical form, by
// each way through Parse alone (routes_test.go checks they agree): what an
// event costs when its shape has no plan yet, or its layout was not seen.
func BenchmarkRoutes(b *testing.B) {
	now := time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC)
	canon, err := Parse(benchEvent, DefaultLimits, now)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		data   []byte
		routes route
		want   route
	}{
		{"general", benchEvent, routeGeneral, routeGeneral},
		{"flat", benchEvent, routeFlat | routeGeneral, routeFlat},
		{"plan", benchEvent, routeFlat | routePlan | routeGeneral, routePlan},
		{"canonical/general", canon.Canonical, routeGeneral, routeGeneral},
		{"canonical/verbatim", canon.Canonical, routeVerbatim | routeGeneral, routeVerbatim},
		{"canonical/layout", canon.Canonical, routeVerbatim | routeLayout | routeGeneral, routeLayout},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := new(state)
			lim := DefaultLimits.withDefaults()
			for range 3 { // plans and layouts are kept from the second time
				st.parse(bc.data, lim, now, bc.routes)
			}
			if _, r, err := st.parse(bc.data, lim, now, bc.routes); err != nil || r != bc.want {
				b.Fatalf("route %05b, %v; want route %05b", r, err, bc.want)
			}
			b.SetBytes(int64(len(bc.data)))
			b.ReportAllocs()
			for b.Loop() {
				st.parse(bc.data, lim, now, bc.routes)
			}
		})
	}
}
