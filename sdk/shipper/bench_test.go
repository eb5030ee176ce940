package shipper

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigilsec/vigil/internal/server/servertest"
)

// discardServer counts the events it receives (decompressing the body, as
// Vigil would) and stores nothing: the ceiling of the Shipper itself.
func discardServer(b *testing.B) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	zrs := sync.Pool{}
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, _ := zrs.Get().(*gzip.Reader)
			var err error
			if zr == nil {
				zr, err = gzip.NewReader(r.Body)
			} else {
				err = zr.Reset(r.Body)
			}
			if err != nil {
				http.Error(w, `{"error":"bad gzip"}`, 400)
				return
			}
			defer zrs.Put(zr)
			body = zr
		}
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		buf.ReadFrom(body)
		c := bytes.Count(buf.Bytes(), []byte{'\n'})
		n.Add(int64(c))
		fmt.Fprintf(w, `{"accepted":%d,"duplicates":0}`, c)
	}))
	b.Cleanup(srv.Close)
	return srv, &n
}

func benchLines(n int, prefix string) [][]byte {
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = appendEvent(nil, fmt.Sprintf("%s-%08d-0000-4000-8000-000000000000", prefix, i), i, false)
	}
	return lines
}

func benchConfig(url string) Config {
	return Config{URL: url, Token: testToken, CriticalWait: time.Minute, AsyncCritical: true}
}

// BenchmarkSend measures one Send of a ~400-byte best-effort event into a
// Shipper delivering to a counting server. Memory is flushed every 5000
// events, off the clock, so no event is dropped.
func BenchmarkSend(b *testing.B) {
	srv, _ := discardServer(b)
	s, err := New(benchConfig(srv.URL))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	lines := benchLines(5000, "send")
	ctx := context.Background()
	b.SetBytes(int64(len(lines[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(lines) == len(lines)-1 {
			b.StopTimer()
			s.Flush(ctx)
			b.StartTimer()
		}
		if err := s.Send(ctx, lines[i%len(lines)], false); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if d := s.Stats().Dropped; d != 0 {
		b.Fatalf("%d dropped", d)
	}
}

// BenchmarkThroughputDiscard is the Shipper's own ceiling: 4 goroutines send
// 200,000 events per iteration (critical, asynchronous: they wait for room
// rather than being dropped) to a server that only counts them.
func BenchmarkThroughputDiscard(b *testing.B) {
	for _, gz := range []bool{true, false} {
		name := "gzip"
		if !gz {
			name = "identity"
		}
		b.Run(name, func(b *testing.B) {
			srv, got := discardServer(b)
			c := benchConfig(srv.URL)
			c.DisableGzip = !gz
			s, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			lines := benchLines(20000, "tput")
			throughput(b, s, func(int) [][]byte { return lines }, 200000)
			if got.Load() != int64(b.N)*200000 {
				b.Fatalf("server counted %d events, want %d", got.Load(), b.N*200000)
			}
		})
	}
}

// BenchmarkThroughputVigil sends into a real Vigil started in this process
// (temporary data directory, default configuration): 50,000 events per
// iteration, with 2 (the default) and 8 requests in flight. Run it bounded:
// -benchtime=3x.
func BenchmarkThroughputVigil(b *testing.B) {
	for _, conc := range []int{2, 8} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			v := servertest.Start(b, filepath.Join(b.TempDir(), "vigil"), "127.0.0.1:0", testToken)
			c := benchConfig(v.URL)
			c.Concurrency = conc
			s, err := New(c)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			const per = 50000
			throughput(b, s, func(i int) [][]byte { return benchLines(per, fmt.Sprintf("v%04x", i)) }, per)
			if st := s.Stats(); st.Sent != uint64(b.N*per) || st.Duplicates != 0 || st.Dropped != 0 {
				b.Fatalf("stats %+v, want %d sent", st, b.N*per)
			}
		})
	}
}

// throughput runs b.N iterations of sending n events from 4 goroutines and
// flushing, and reports events/s.
func throughput(b *testing.B, s *Shipper, lines func(iter int) [][]byte, n int) {
	const producers = 4
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var elapsed time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ls := lines(i)
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := p; j < n; j += producers {
					if err := s.Send(ctx, ls[j%len(ls)], true); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := s.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/event")
}
