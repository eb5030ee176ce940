package ingest

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vigilsec/vigil/internal/event"
)

// benchBatch returns an NDJSON body of n web request events, as a Django
// application logs them: about 450 bytes each, with varied values.
func benchBatch(n int) []byte {
	methods := []string{"GET", "POST", "GET", "PUT", "GET", "DELETE"}
	var b bytes.Buffer
	for i := range n {
		status := []int{200, 200, 201, 302, 404, 500}[i%6]
		outcome := "success"
		if status >= 400 {
			outcome = "failure"
		}
		fmt.Fprintf(&b, `{"@timestamp":"2025-03-01T12:%02d:%02d.%06dZ","event.id":"0195519c-4f2a-7b3e-9c1d-%012x",`+
			`"event.kind":"event","event.category":["web"],"event.action":"http_request","event.outcome":%q,`+
			`"event.duration":%d,"http.request.method":%q,"url.path":"/api/v1/orders/%d","http.response.status_code":%d,`+
			`"source.ip":"203.0.%d.%d","user.id":"%d","user.name":"user%d","service.name":"shop","host.name":"web-%d",`+
			`"vigil.view":"order-detail","log.level":"INFO"}`+"\n",
			i/60%60, i%60, i*7919%1000000, i, outcome, 1000000+i*37, methods[i%len(methods)], i%500, status,
			i%256, i*13%256, i%97, i%97, i%4)
	}
	return b.Bytes()
}

func BenchmarkDecodeBatch(b *testing.B) {
	body := benchBatch(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		events, lineErrs, err := DecodeBatch(body, FormatNDJSON, event.DefaultLimits, 10000, decodeNow)
		if err != nil || len(lineErrs) > 0 || len(events) != 1000 {
			b.Fatalf("%d events, %v, %v", len(events), lineErrs, err)
		}
	}
	b.ReportMetric(float64(1000*b.N)/b.Elapsed().Seconds(), "events/s")
}
