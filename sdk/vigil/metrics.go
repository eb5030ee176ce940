package vigil

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigilsec/vigil/sdk/shipper"
)

// durationBuckets are the upper bounds, in seconds, of the request duration
// histogram: django-prometheus's, so that existing dashboards fit.
var durationBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 25, 50, 75}

var bucketNanos = func() []int64 {
	b := make([]int64, len(durationBuckets))
	for i, s := range durationBuckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// otherRoute is the route label of requests without a known route, and of
// routes beyond Config.MaxRoutes.
const otherRoute = "other"

type reqKey struct {
	method, route string
	status        int
}

type routeKey struct{ method, route string }

// series counts the requests of one method, route and status; its
// histogram is shared by the statuses of the method and route.
type series struct {
	count atomic.Uint64
	hist  *histogram
}

type histogram struct {
	buckets [17]atomic.Uint64 // len(durationBuckets) + the +Inf bucket, not cumulative
	sumNs   atomic.Int64
}

// metrics are the counters behind Client.Metrics. Reads of the maps take a
// read lock; counting is atomic. New series take the write lock once.
type metrics struct {
	mu        sync.RWMutex
	requests  map[reqKey]*series
	durations map[routeKey]*histogram
	panics    map[string]*atomic.Uint64 // by route
	routes    map[string]bool
	maxRoutes int

	inFlight atomic.Int64
}

func newMetrics(maxRoutes int) *metrics {
	return &metrics{
		requests:  make(map[reqKey]*series),
		durations: make(map[routeKey]*histogram),
		panics:    make(map[string]*atomic.Uint64),
		routes:    make(map[string]bool),
		maxRoutes: maxRoutes,
	}
}

// metricMethod bounds the method label to the methods of RFC 9110 and PATCH.
func metricMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE":
		return m
	}
	return "OTHER"
}

func (m *metrics) observe(method, route string, status int, d time.Duration, panicked bool) {
	method = metricMethod(method)
	if route == "" {
		route = otherRoute
	}
	if status < 100 || status > 999 {
		status = 0
	}
	m.mu.RLock()
	s := m.requests[reqKey{method, route, status}]
	m.mu.RUnlock()
	if s == nil {
		s = m.series(method, route, status)
	}
	s.count.Add(1)
	ns := int64(d)
	i, _ := slices.BinarySearch(bucketNanos, ns)
	s.hist.buckets[i].Add(1)
	s.hist.sumNs.Add(ns)
	if panicked {
		m.mu.Lock()
		p := m.panics[m.routeLabel(route)]
		if p == nil {
			p = new(atomic.Uint64)
			m.panics[m.routeLabel(route)] = p
		}
		m.mu.Unlock()
		p.Add(1)
	}
}

// routeLabel returns route, or "other" once MaxRoutes routes are known.
// Called with m.mu held for writing.
func (m *metrics) routeLabel(route string) string {
	if route == otherRoute || m.routes[route] {
		return route
	}
	if len(m.routes) >= m.maxRoutes {
		return otherRoute
	}
	m.routes[route] = true
	return route
}

// series creates the series of a request, under the write lock.
// Requests of a route beyond MaxRoutes are counted in the series of
// "other", which is looked up under the write lock each time.
func (m *metrics) series(method, route string, status int) *series {
	m.mu.Lock()
	defer m.mu.Unlock()
	route = m.routeLabel(route)
	rk := reqKey{method, route, status}
	s := m.requests[rk]
	if s == nil {
		hk := routeKey{method, route}
		hist := m.durations[hk]
		if hist == nil {
			hist = new(histogram)
			m.durations[hk] = hist
		}
		s = &series{hist: hist}
		m.requests[rk] = s
	}
	return s
}

// Metrics returns a handler serving the application's metrics in the
// Prometheus text exposition format (version 0.0.4):
//
//	http_requests_total{method,route,status}             counter
//	http_request_duration_seconds{method,route}          histogram, django-prometheus buckets
//	http_requests_in_flight                              gauge
//	http_panics_total{route}                             counter
//	vigil_sdk_events_total                               counter, events handed to the sink
//	vigil_sdk_events_failed_total                        counter, events the sink refused
//	vigil_sdk_sink_*                                     the sink's Stats, when it has them
//
// The route label is the route's pattern ("GET /orders/{id}"); requests
// that matched no route, and routes beyond Config.MaxRoutes, are "other".
// The method label is one of the standard methods or "OTHER".
func (c *Client) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(c.appendMetrics(nil))
	})
}

func (c *Client) appendMetrics(b []byte) []byte {
	m := c.metrics
	m.mu.RLock()
	reqs := make([]reqKey, 0, len(m.requests))
	for k := range m.requests {
		reqs = append(reqs, k)
	}
	routes := make([]routeKey, 0, len(m.durations))
	for k := range m.durations {
		routes = append(routes, k)
	}
	panics := make([]string, 0, len(m.panics))
	for k := range m.panics {
		panics = append(panics, k)
	}
	m.mu.RUnlock()
	slices.SortFunc(reqs, func(a, b reqKey) int {
		return cmp.Or(cmp.Compare(a.route, b.route), cmp.Compare(a.method, b.method), cmp.Compare(a.status, b.status))
	})
	slices.SortFunc(routes, func(a, b routeKey) int {
		return cmp.Or(cmp.Compare(a.route, b.route), cmp.Compare(a.method, b.method))
	})
	slices.Sort(panics)

	b = metricHeader(b, "http_requests_total", "counter", "HTTP requests served, by method, route and status.")
	for _, k := range reqs {
		m.mu.RLock()
		v := m.requests[k].count.Load()
		m.mu.RUnlock()
		b = append(b, "http_requests_total{"...)
		b = appendLabel(b, "method", k.method, false)
		b = appendLabel(b, "route", k.route, true)
		b = append(b, `,status="`...)
		b = strconv.AppendInt(b, int64(k.status), 10)
		b = append(b, `"} `...)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\n')
	}

	b = metricHeader(b, "http_request_duration_seconds", "histogram", "Time to serve an HTTP request, by method and route.")
	for _, k := range routes {
		m.mu.RLock()
		h := m.durations[k]
		m.mu.RUnlock()
		var total uint64
		for i := range h.buckets {
			total += h.buckets[i].Load()
			b = append(b, "http_request_duration_seconds_bucket{"...)
			b = appendLabel(b, "method", k.method, false)
			b = appendLabel(b, "route", k.route, true)
			b = append(b, `,le="`...)
			if i < len(durationBuckets) {
				b = strconv.AppendFloat(b, durationBuckets[i], 'g', -1, 64)
			} else {
				b = append(b, "+Inf"...)
			}
			b = append(b, `"} `...)
			b = strconv.AppendUint(b, total, 10)
			b = append(b, '\n')
		}
		for _, part := range []string{"_sum", "_count"} {
			b = append(b, "http_request_duration_seconds"...)
			b = append(b, part...)
			b = append(b, '{')
			b = appendLabel(b, "method", k.method, false)
			b = appendLabel(b, "route", k.route, true)
			b = append(b, "} "...)
			if part == "_sum" {
				b = strconv.AppendFloat(b, time.Duration(h.sumNs.Load()).Seconds(), 'g', -1, 64)
			} else {
				b = strconv.AppendUint(b, total, 10)
			}
			b = append(b, '\n')
		}
	}

	b = metricHeader(b, "http_requests_in_flight", "gauge", "HTTP requests being served.")
	b = append(b, "http_requests_in_flight "...)
	b = strconv.AppendInt(b, m.inFlight.Load(), 10)
	b = append(b, '\n')

	b = metricHeader(b, "http_panics_total", "counter", "Panics recovered from HTTP handlers, by route.")
	for _, route := range panics {
		m.mu.RLock()
		v := m.panics[route].Load()
		m.mu.RUnlock()
		b = append(b, "http_panics_total{"...)
		b = appendLabel(b, "route", route, false)
		b = append(b, "} "...)
		b = strconv.AppendUint(b, v, 10)
		b = append(b, '\n')
	}

	b = metricHeader(b, "vigil_sdk_events_total", "counter", "Events the SDK handed to its sink.")
	b = append(b, "vigil_sdk_events_total "...)
	b = strconv.AppendUint(b, c.sent.Load(), 10)
	b = append(b, '\n')
	b = metricHeader(b, "vigil_sdk_events_failed_total", "counter", "Events the sink refused (full, closed).")
	b = append(b, "vigil_sdk_events_failed_total "...)
	b = strconv.AppendUint(b, c.failed.Load(), 10)
	b = append(b, '\n')
	return c.appendSinkMetrics(b)
}

func metricHeader(b []byte, name, typ, help string) []byte {
	b = append(b, "# HELP "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, help...)
	b = append(b, "\n# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	return append(b, '\n')
}

// appendLabel appends name="value", escaping \, " and newlines as the text
// format wants.
func appendLabel(b []byte, name, value string, comma bool) []byte {
	if comma {
		b = append(b, ',')
	}
	b = append(b, name...)
	b = append(b, '=', '"')
	for i := 0; i < len(value); i++ {
		switch c := value[i]; c {
		case '\\':
			b = append(b, '\\', '\\')
		case '"':
			b = append(b, '\\', '"')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// appendSinkMetrics appends the sink's counters when it is a shipper (or
// anything with the shipper's Stats method).
func (c *Client) appendSinkMetrics(b []byte) []byte {
	s, ok := c.sink.(interface{ Stats() shipper.Stats })
	if !ok {
		return b
	}
	st := s.Stats()
	for _, m := range []struct {
		name, typ, help string
		v               uint64
	}{
		{"vigil_sdk_shipper_sent_total", "counter", "Events Vigil acknowledged.", st.Sent},
		{"vigil_sdk_shipper_duplicates_total", "counter", "Acknowledged events Vigil already had (re-sends).", st.Duplicates},
		{"vigil_sdk_shipper_dropped_total", "counter", "Best-effort events dropped because memory or spool was full.", st.Dropped},
		{"vigil_sdk_shipper_rejected_total", "counter", "Events Vigil refused as invalid.", st.Rejected},
		{"vigil_sdk_shipper_spooled_total", "counter", "Events written to the spool.", st.Spooled},
		{"vigil_sdk_shipper_retries_total", "counter", "Failed delivery attempts.", st.Retries},
		{"vigil_sdk_shipper_lost_total", "counter", "Events still in memory when Close gave up, without a spool.", st.Lost},
		{"vigil_sdk_shipper_queued", "gauge", "Events waiting for delivery.", uint64(max(st.Queued, 0))},
		{"vigil_sdk_shipper_spool_bytes", "gauge", "Bytes of the spool files.", uint64(max(st.SpoolBytes, 0))},
	} {
		b = metricHeader(b, m.name, m.typ, m.help)
		b = append(b, m.name...)
		b = append(b, ' ')
		b = strconv.AppendUint(b, m.v, 10)
		b = append(b, '\n')
	}
	return b
}
