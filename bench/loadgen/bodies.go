package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Event ids are UUID-shaped: the run id (16 hex digits) then the event's
// sequence number in the run (16 hex digits), so that ids are unique within a
// run and, with a fresh run id, across runs:
//
//	RRRRRRRR-RRRR-RRRR-SSSS-SSSSSSSSSSSS
const (
	idLen       = 36
	idSeqOffset = 19 // where the sequence part starts in an id
	idSeqLen    = 17 // "SSSS-SSSSSSSSSSSS"
)

// writeSeq writes seq as the sequence part of an id into dst[:idSeqLen].
func writeSeq(dst []byte, seq uint64) {
	const hexDigits = "0123456789abcdef"
	var digits [16]byte
	for i := 15; i >= 0; i-- {
		digits[i] = hexDigits[seq&0xf]
		seq >>= 4
	}
	copy(dst[0:4], digits[0:4])
	dst[4] = '-'
	copy(dst[5:17], digits[4:16])
}

// eventID returns the id of event seq of run runID (16 hex digits).
func eventID(runID string, seq uint64) string {
	b := make([]byte, idLen)
	copy(b, runID[0:8])
	b[8] = '-'
	copy(b[9:13], runID[8:12])
	b[13] = '-'
	copy(b[14:18], runID[12:16])
	b[18] = '-'
	writeSeq(b[idSeqOffset:], seq)
	return string(b)
}

// bodies holds the request bodies, prepared before the clock starts.
//
// When every batch fits in the memory budget each has its own body with its
// own ids ("unique" mode). Otherwise the first batches' bodies are kept as
// templates and later batches reuse one with the event ids rewritten in place
// ("patched" mode): a copy and a few bytes per event, plus, with gzip, the
// compression of the body in the timed loop.
type bodies struct {
	batch       int
	fullBatches int64      // batches of exactly batch events
	templates   [][]byte   // bodies of batches 0..len-1; gzipped when gzip && !patched
	rawLens     []int      // uncompressed length of each template
	offsets     [][]uint32 // patched mode: where each event's id sequence starts in its template
	tail        []byte     // body of the last, shorter batch (nil if none)
	tailRaw     int
	tailEvents  int
	patched     bool
	gzip        bool
	heldBytes   int64 // memory held by templates and tail
}

// meanEventBytes returns the mean uncompressed size of the prepared events,
// newline included.
func (b *bodies) meanEventBytes() float64 {
	raw, events := int64(b.tailRaw), int64(b.tailEvents)
	for _, n := range b.rawLens {
		raw += int64(n)
		events += int64(b.batch)
	}
	if events == 0 {
		return 0
	}
	return float64(raw) / float64(events)
}

// requests returns the number of batches to send.
func (b *bodies) requests() int64 {
	if b.tail != nil {
		return b.fullBatches + 1
	}
	return b.fullBatches
}

// mode names how bodies are produced, for the report.
func (b *bodies) mode() string {
	if b.patched {
		return "patched"
	}
	return "unique"
}

// scratch is a worker's buffers for patched bodies.
type scratch struct {
	raw []byte
	gz  bytes.Buffer
	zw  *gzip.Writer
}

// get returns the body of batch k with its number of events and its
// uncompressed length. The body may live in s and is valid until the next call.
func (b *bodies) get(k int64, s *scratch) (body []byte, events, rawLen int) {
	if k == b.fullBatches {
		return b.tail, b.tailEvents, b.tailRaw
	}
	if !b.patched {
		return b.templates[k], b.batch, b.rawLens[k]
	}
	// Patched templates are kept uncompressed; every batch, the first ones
	// too, goes through the same copy, patch and compress steps.
	t := k % int64(len(b.templates))
	s.raw = append(s.raw[:0], b.templates[t]...)
	first := uint64(k) * uint64(b.batch)
	for i, off := range b.offsets[t] {
		writeSeq(s.raw[off:], first+uint64(i))
	}
	if !b.gzip {
		return s.raw, b.batch, len(s.raw)
	}
	s.gz.Reset()
	if s.zw == nil {
		s.zw, _ = gzip.NewWriterLevel(&s.gz, gzipLevel)
	} else {
		s.zw.Reset(&s.gz)
	}
	s.zw.Write(s.raw) // writes to a bytes.Buffer cannot fail
	s.zw.Close()
	return s.gz.Bytes(), b.batch, len(s.raw)
}

// bodyGen generates batches of realistic web-request events.
type bodyGen struct {
	runID string
	seed  uint64
	size  int       // target mean event size in bytes
	base  time.Time // @timestamp of event 0
}

// prepare builds the bodies of n events in batches of batch, keeping at most
// about memLimit bytes. Generation runs on all CPUs and is deterministic for a
// seed, apart from the run id and the timestamps.
func prepare(ctx context.Context, g bodyGen, n int64, batch int, gz bool, memLimit int64) (*bodies, error) {
	b := &bodies{batch: batch, fullBatches: n / int64(batch), gzip: gz}
	if tail := int(n % int64(batch)); tail > 0 {
		raw, _ := g.batch(b.fullBatches, tail, batch, false)
		b.tailEvents, b.tailRaw = tail, len(raw)
		b.tail = raw
		if gz {
			b.tail = compress(raw)
		}
		b.heldBytes += int64(len(b.tail))
	}
	if b.fullBatches == 0 {
		return b, nil
	}

	// Size one body to decide between unique and patched bodies.
	first, _ := g.batch(0, batch, batch, false)
	per := int64(len(first))
	if gz {
		per = int64(len(compress(first)))
	}
	count := b.fullBatches
	if budget := max(memLimit-b.heldBytes, 0); per*count > budget {
		b.patched = true
		count = min(b.fullBatches, max(1, budget/int64(len(first)))) // templates stay uncompressed
	}
	b.templates = make([][]byte, count)
	b.rawLens = make([]int, count)
	if b.patched {
		b.offsets = make([][]uint32, count)
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := next.Add(1) - 1
				if k >= count {
					return
				}
				raw, offs := g.batch(k, batch, batch, b.patched)
				b.rawLens[k] = len(raw)
				switch {
				case b.patched:
					b.templates[k], b.offsets[k] = raw, offs
				case gz:
					b.templates[k] = compress(raw)
				default:
					b.templates[k] = raw
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prepare bodies: %w", err)
	}
	for _, t := range b.templates {
		b.heldBytes += int64(cap(t))
	}
	return b, nil
}

// gzipLevel is the compression of -gzip bodies: the fastest, as log
// shippers commonly use; the server's cost to decompress hardly depends on it.
const gzipLevel = gzip.BestSpeed

func compress(raw []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzipLevel)
	zw.Write(raw) // writes to a bytes.Buffer cannot fail
	zw.Close()
	return bytes.Clone(buf.Bytes())
}

// Vocabulary of the generated traffic. Addresses come from the documentation
// ranges only.
var (
	lgPaths = []string{
		"/", "/products", "/products/%d", "/products/%d", "/products/%d", "/search", "/cart",
		"/checkout", "/login", "/account", "/account/orders", "/api/v1/cart/items", "/static/app.%d.js",
	}
	lgSearch = []string{"running shoes", "rain jacket", "wool socks", "backpack", "headlamp", "tent", "gift card"}
	lgAgents = []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
		"ShopApp/3.2.1 (iPhone; iOS 17.4)",
		"ShopApp/3.2.0 (Android 14)",
		"curl/8.5.0",
		"python-requests/2.31.0",
	}
	lgShortAgents = []string{"ShopApp/3.2.1", "curl/8.5.0", "okhttp/4.12.0", "Go-http-client/1.1"}
	lgNets        = []string{"192.0.2.", "198.51.100.", "203.0.113."}
)

// wireEvent is a generated event. The labels object comes last so that
// padding can be appended cheaply; optional fields drop out of small events.
type wireEvent struct {
	Timestamp string `json:"@timestamp"`
	Event     struct {
		ID       string `json:"id"`
		Kind     string `json:"kind"`
		Category string `json:"category"`
		Type     string `json:"type,omitempty"`
		Action   string `json:"action"`
		Outcome  string `json:"outcome"`
		Severity int    `json:"severity"`
		Duration int64  `json:"duration"`
	} `json:"event"`
	Source struct {
		IP   string `json:"ip"`
		Port int    `json:"port,omitempty"`
	} `json:"source"`
	User *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"user,omitempty"`
	HTTP struct {
		Request struct {
			ID     string `json:"id,omitempty"`
			Method string `json:"method"`
		} `json:"request"`
		Response struct {
			StatusCode int `json:"status_code"`
		} `json:"response"`
	} `json:"http"`
	URL struct {
		Path  string `json:"path"`
		Query string `json:"query,omitempty"`
	} `json:"url"`
	UserAgent struct {
		Original string `json:"original"`
	} `json:"user_agent"`
	Service struct {
		Name string `json:"name"`
	} `json:"service"`
	Host struct {
		Name string `json:"name"`
	} `json:"host"`
	Message string            `json:"message"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// batch returns the NDJSON body of batch k holding events events; batch k's
// first event has sequence number k*stride. With offsets it also returns
// where each event's id sequence part starts.
func (g bodyGen) batch(k int64, events, stride int, offsets bool) ([]byte, []uint32) {
	rng := rand.New(rand.NewPCG(g.seed, uint64(k)))
	buf := make([]byte, 0, events*(g.size+64))
	var offs []uint32
	if offsets {
		offs = make([]uint32, 0, events)
	}
	first := uint64(k) * uint64(stride)
	for i := range events {
		seq := first + uint64(i)
		start := len(buf)
		buf = g.appendEvent(buf, rng, seq)
		if offsets {
			at := bytes.Index(buf[start:], []byte(`"id":"`)) // event.id is the first id
			offs = append(offs, uint32(start+at+len(`"id":"`)+idSeqOffset))
		}
		buf = append(buf, '\n')
	}
	if cap(buf)-len(buf) > len(buf)/16 { // the estimate was off: do not hold the slack
		buf = bytes.Clone(buf)
	}
	return buf, offs
}

// appendEvent appends one web-request event, without newline.
func (g bodyGen) appendEvent(buf []byte, rng *rand.Rand, seq uint64) []byte {
	var e wireEvent
	e.Timestamp = g.base.Add(time.Duration(seq) * time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00")
	e.Event.ID = eventID(g.runID, seq)
	e.Event.Kind, e.Event.Category, e.Event.Type, e.Event.Action = "event", "web", "access", "http_request"

	status := 200
	switch r := rng.IntN(1000); {
	case r < 5:
		status = 500
	case r < 15:
		status = 403
	case r < 35:
		status = 401
	case r < 85:
		status = 404
	case r < 135:
		status = 304
	case r < 215:
		status = 302
	}
	e.Event.Outcome, e.Event.Severity = "success", 1
	switch {
	case status >= 500:
		e.Event.Outcome, e.Event.Severity = "failure", 5
	case status >= 400:
		e.Event.Outcome, e.Event.Severity = "failure", 3
	}
	e.Event.Duration = int64(2*time.Millisecond) + rng.Int64N(int64(300*time.Millisecond))

	if rng.IntN(10) == 0 {
		e.Source.IP = fmt.Sprintf("2001:db8:%x:%x::%x", rng.IntN(1<<16), rng.IntN(1<<16), 1+rng.IntN(1<<16-1))
	} else {
		e.Source.IP = lgNets[rng.IntN(len(lgNets))] + strconv.Itoa(1+rng.IntN(254))
	}
	e.Source.Port = 49152 + rng.IntN(16384)
	if rng.IntN(3) == 0 {
		id := 1000 + rng.IntN(5000)
		e.User = &struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}{strconv.Itoa(id), "user" + strconv.Itoa(id)}
	}

	e.HTTP.Request.ID = fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
	e.HTTP.Request.Method = "GET"
	if rng.IntN(8) == 0 {
		e.HTTP.Request.Method = "POST"
	}
	e.HTTP.Response.StatusCode = status
	path := lgPaths[rng.IntN(len(lgPaths))]
	if bytes.Contains([]byte(path), []byte("%d")) {
		path = fmt.Sprintf(path, 1+rng.IntN(2000))
	}
	e.URL.Path = path
	if path == "/search" {
		e.URL.Query = "q=" + lgSearch[rng.IntN(len(lgSearch))]
	}
	e.UserAgent.Original = lgAgents[rng.IntN(len(lgAgents))]
	e.Service.Name, e.Host.Name = "shop", "shop-web-"+strconv.Itoa(1+rng.IntN(4))
	target := path
	if e.URL.Query != "" {
		target += "?" + e.URL.Query
	}
	e.Message = e.HTTP.Request.Method + " " + target + " " + strconv.Itoa(status)
	e.Labels = map[string]string{"env": "bench"}

	line, err := json.Marshal(&e)
	if err != nil {
		panic(err) // plain strings and numbers always encode
	}
	// Aim at a size drawn around the target: drop optional fields, least
	// telling first, while the event is too long, then pad with a label.
	want := g.size*3/4 + rng.IntN(g.size/2+1)
	if excess := len(line) - want; excess > 0 {
		drops := []func() int{
			func() int { e.Labels = nil; return len(`,"labels":{"env":"bench"}`) },
			func() int { e.Event.Type = ""; return len(`"type":"access",`) },
			func() int {
				n := len(`,"port":`) + len(strconv.Itoa(e.Source.Port))
				e.Source.Port = 0
				return n
			},
			func() int {
				if e.User == nil {
					return 0
				}
				n := len(`"user":{"id":"","name":""},`) + len(e.User.ID) + len(e.User.Name)
				e.User = nil
				return n
			},
			func() int {
				short := lgShortAgents[rng.IntN(len(lgShortAgents))]
				n := len(e.UserAgent.Original) - len(short)
				if n <= 0 {
					return 0
				}
				e.UserAgent.Original = short
				return n
			},
			func() int { e.HTTP.Request.ID = ""; return len(`"id":"",`) + 32 },
		}
		for _, drop := range drops {
			if excess <= 0 {
				break
			}
			excess -= drop()
		}
		if line, err = json.Marshal(&e); err != nil {
			panic(err)
		}
	}
	const padOverhead = len(`,"labels":{"pad":""}`)
	if need := want - len(line) - padOverhead; need > 0 {
		if e.Labels != nil {
			line = line[:len(line)-2] // before the `}}` closing labels and event
			line = append(line, `,"pad":"`...)
		} else {
			line = line[:len(line)-1] // before the `}` closing the event
			line = append(line, `,"labels":{"pad":"`...)
		}
		for need > 0 {
			r := rng.Uint64()
			for j := 0; j < 16 && need > 0; j, need = j+1, need-1 {
				line = append(line, "0123456789abcdef"[r&0xf])
				r >>= 4
			}
		}
		line = append(line, `"}}`...)
	}
	return append(buf, line...)
}
