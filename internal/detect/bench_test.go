package detect

import (
	"testing"

	"github.com/vigilsec/vigil/internal/demo"
	"github.com/vigilsec/vigil/internal/event"
)

// BenchmarkEngine runs the demo shop's traffic (customers browsing and
// buying, a brute force, a scanner) through the whole built-in pack.
func BenchmarkEngine(b *testing.B) {
	rs, err := Builtin()
	if err != nil {
		b.Fatal(err)
	}
	des := demo.Generate(demo.Options{Scale: 5, Duration: 30 * 60e9})
	evs := make([]event.Event, len(des))
	for i, de := range des {
		if evs[i], err = event.Parse(de.Line, event.Limits{}, de.Time); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	eng := NewEngine(rs)
	var seq uint64
	for i := 0; i < b.N; i++ {
		if i%len(evs) == 0 && i > 0 {
			eng = NewEngine(rs) // times restart with each pass
		}
		seq++
		e := &evs[i%len(evs)]
		eng.Process(seq, e)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
