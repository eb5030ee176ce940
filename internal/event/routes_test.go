package event

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fast routes (verbatim.go, flat.go) must give what the general route
// gives, for every input: the same canonical bytes, the same Event, the same
// error. FuzzParseRoutes runs the general route alone and the others with
// it, and compares; go test runs it on its seeds (routeInputs), go test
// -fuzz on anything.

// routeCases are inputs written to reach the corners of the fast routes.
var routeCases = []string{
	// Conflicts, merges and overrides.
	`{"event.id":"a1","@timestamp":"2025-01-02T03:04:05Z","a":{},"a.b":1}`,
	`{"":{"a":1},"a":2}`,
	`{"":{"":{"":1}}}`,
	`{"x":{"":{"":1}},"x.y":2}`,
	`{"a":{"x":1},"a":{"y":2}}`,
	`{"a.b":{"x":1},"a.b":{"y":2}}`,
	`{"a.b":{"x":1},"a":{"b":{"y":2}}}`,
	`{"a":{"b":1},"a.c":2,"a.b.c":3}`,
	`{"a":{},"a":{}}`,
	`{"a.b":{},"a":{"b":{}}}`,
	`{"a":1,"a.b":2}`,
	`{"a.b":1,"a":{"b":2}}`,
	`{"a.":1,".b":2,"a..b":3,"a.b":4,"":5,".":6,"..":7}`,
	`{"event":{"ingested":{"b":1,"b":2}}}`,
	`{"event":{"ingested":{"b":1},"ingested":{"b":2}}}`,
	`{"event.ingested.x":1,"event":{"ingested":5}}`,
	`{"event.ingested":1,"event.ingested":2}`,
	`{"vigil":{"schema":{"a":1}}}`,
	`{"vigil.schema":"1","vigil":{"schema":"0"}}`,
	`{"event.id.x":1}`,
	`{"@timestamp.x":1}`,
	`{"event":5}`, `{"event":{}}`, `{"vigil":{}}`, `{"vigil":[]}`, `{}`, ` {} `, "{}\n",
	`{"event":{"kind":"alert"}}`,
	`{"user.name.first":"a"}`, `{"labels.a.b":1}`, `{"labels.a":1}`,
	`{"a":[{"b.c":1,"a":[]}],"b":[[],{},[{}]]}`,
	`{"z":1,"a":2}`,
	`{"!":1,"@timestamp":"2025-01-02T03:04:05Z"}`,
	`{"k\u0065y":1,"key":2}`,
	`{"a\u002eb":1,"a":{"c":2}}`,
	`{"x\u0000y":1,"x.z":2,"x\u0000":3}`,
	"{\"k\xe2\x80\xa8\":1,\"k\u00e9\":2}",
	// Known fields.
	`{"@timestamp":"2025-01-02T03:04:05.000Z"}`,
	`{"@timestamp":"2025-01-02T03:04:05.100Z"}`,
	`{"@timestamp":"2025-01-02T03:04:05.1Z"}`,
	`{"@timestamp":"2025-02-29T00:00:00Z"}`,
	`{"@timestamp":"2024-02-29T00:00:00Z"}`,
	`{"@timestamp":"2100-02-29T00:00:00Z"}`,
	`{"@timestamp":"2000-02-29T23:59:59.999999999Z"}`,
	`{"@timestamp":"2025-01-02T03:04:05.1234567890Z"}`,
	`{"@timestamp":"2025-01-02T03:04:60Z"}`,
	`{"@timestamp":"2025-01-02T24:00:00Z"}`,
	`{"@timestamp":"2025-13-02T03:04:05Z"}`,
	`{"@timestamp":"0000-01-01T00:00:00Z"}`,
	`{"@timestamp":"9999-12-31T23:59:59.999999999Z"}`,
	`{"@timestamp":"2025-01-02t03:04:05z"}`,
	`{"@timestamp":"2025-01-02T03:04:05+00:00"}`,
	`{"@timestamp":"2025-01-02T03:04:05.Z"}`,
	`{"@timestamp":"2025-01-02T03:04:05,5Z"}`,
	`{"@timestamp":"+025-01-02T03:04:05Z"}`,
	`{"@timestamp":1735787045123}`,
	`{"@timestamp":"2025-01-02T03:04:0\u0035Z"}`,
	`{"http":{"request":{"method":"get"}}}`,
	`{"http.request.method":"G\u0045T"}`,
	`{"http.request.method":"G\"T"}`,
	`{"source.ip":"::ffff:1.2.3.4"}`, `{"source.ip":"fe80::1%eth0"}`, `{"source.ip":"1.2.3.04"}`,
	`{"source":{"ip":"2001:db8::1"}}`, `{"source":{"ip":"2001:DB8::1"}}`, `{"source":{"ip":"1.2.3.4"}}`,
	`{"source":{"ip":"1.2.3.\u0034"}}`,
	`{"http.response.status_code":"200"}`, `{"http.response.status_code":200.0}`,
	`{"http.response.status_code":-0}`, `{"http.response.status_code":599}`, `{"http.response.status_code":600}`,
	`{"event.severity":-0}`, `{"event.severity":9223372036854775807}`, `{"event.severity":-9223372036854775808}`,
	`{"event.severity":9223372036854775808}`, `{"event.severity":1e2}`,
	`{"event.duration":-0}`, `{"event.duration":-1}`,
	`{"source.port":-0}`, `{"source.port":65535}`, `{"source.port":65536}`,
	`{"labels":{"a":null}}`, `{"labels":{"a":"x","b":1.5,"c":true,"d":false}}`, `{"labels":{}}`,
	`{"labels":{"a":[]}}`, `{"labels":{"a":{}}}`,
	`{"event.category":[]}`, `{"event.category":["a\"b","c"]}`, `{"event.category":"w\u0065b"}`,
	`{"event.category":[1]}`, `{"related.objects":[]}`, `{"related.objects":["a","b\nc"]}`,
	`{"related.objects":"a"}`, `{"related":{"objects":["x"]}}`,
	`{"event.outcome":"success"}`, `{"event.outcome":"succes\u0073"}`, `{"event.outcome":"ok"}`,
	`{"event.id":"a\"b"}`, `{"event.id":"a\\b"}`, `{"event.id":"a b"}`, `{"event.id":""}`,
	`{"event.id":"\u0061"}`, `{"event":{"id":"x","kind":"k"}}`,
	`{"user":{"id":"1","name":"\u00e9"}}`,
	// Strings and numbers as written.
	`{"message":"\u2028"}`, "{\"message\":\"\xe2\x80\xa8\"}", `{"message":"\/"}`, `{"message":"\u001F"}`,
	`{"message":"\u001f"}`, `{"message":"\b"}`, `{"message":"\u0008"}`, `{"message":"\u000a"}`,
	`{"message":"\n\r\t\"\\"}`, `{"message":"é\u00e9"}`, `{"message":"\ud83d\ude00"}`, "{\"message\":\"\x7f\"}",
	`{"a":1e2,"b":1.0,"c":-0,"d":1E+2,"e":0.10,"f":-0.0e-0}`,
	`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":+1}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":true,"b":false,"c":null}`,
	// Known fields in canonical layout, for the verbatim route.
	`{"@timestamp":"2025-01-02T03:04:05Z","event":{"id":"a","kind":"event"},"http":{"response":{"status_code":600}}}`,
	`{"http":{"response":{"status_code":99}}}`, `{"http":{"response":{"status_code":100}}}`,
	`{"http":{"response":{"status_code":"200"}}}`, `{"http":{"request":{"method":"get"}}}`,
	`{"http":{"request":{"method":"GeT"}}}`, `{"http":{"request":{"method":"G\"T"}}}`,
	`{"source":{"ip":"1.2.3.04"}}`, `{"source":{"ip":"::FFFF:1.2.3.4"}}`, `{"source":{"ip":"fe80::1%eth0"}}`,
	`{"source":{"ip":"fe80::1%"}}`, `{"source":{"ip":"1.2.3"}}`, `{"source":{"ip":7}}`,
	`{"source":{"port":65536}}`, `{"source":{"port":-1}}`, `{"source":{"port":1.0}}`,
	`{"event":{"duration":-1}}`, `{"event":{"duration":1e3}}`, `{"event":{"severity":1.5}}`,
	`{"event":{"severity":99999999999999999999}}`,
	`{"event":{"outcome":"ok"}}`, `{"event":{"outcome":"Success"}}`,
	`{"event":{"id":""}}`, `{"event":{"id":"a b"}}`, `{"event":{"id":"\u007f"}}`, `{"event":{"id":"é"}}`,
	`{"event":{"category":[1]}}`, `{"event":{"category":{}}}`, `{"event":{"category":null}}`,
	`{"event":{"kind":1}}`, `{"event":{"ingested":1,"kind":"x"}}`, `{"event":{"ingested":[{"b":1,"a":2}]}}`,
	`{"@timestamp":"2025-02-29T00:00:00Z"}`, `{"@timestamp":"2025-01-02T03:04:05.120Z"}`, `{"@timestamp":1}`,
	`{"labels":{"a":null}}`, `{"labels":{"a":{}}}`, `{"labels":{"a":[]}}`, `{"labels":{"a.b":1}}`,
	`{"related":{"objects":"x"}}`, `{"related":{"objects":[1]}}`, `{"related":{"objects":[]}}`,
	`{"message":1}`, `{"message":null}`, `{"user":{"name":{}}}`, `{"user":"x"}`, `{"vigil":{"schema":"1","view":1}}`,
	`{"a":{"b":1,"a":2}}`, `{"a":{"a":1,"a":2}}`, `{"a":[{"b":1,"a":2}]}`, `{"a.b":1}`, `{"a..b":1,"a.b.":2}`,
	// Not JSON, not an object.
	``, ` `, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":1}x`, `{"a":1}}`,
	"{\"a\":\"\xff\"}", "{\"\xff\":1}", "\xef\xbb\xbf{}",
}

// routeInputs returns the inputs of the route tests: routeCases, the test
// events and their golden forms, the benchmark events, the fuzz corpus, and
// the schema's examples.
func routeInputs(t testing.TB) [][]byte {
	t.Helper()
	var in [][]byte
	for _, c := range routeCases {
		in = append(in, []byte(c))
	}
	in = append(in, benchEvent, benchEventNested, benchEventMinimal)
	files, err := filepath.Glob("testdata/canonical/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, b)
	}
	for _, dir := range []string{"testdata/fuzz/FuzzParse", "testdata/fuzz/FuzzParseRoutes"} {
		in = append(in, readCorpus(t, dir)...)
	}
	doc, err := os.ReadFile("../../docs/event-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1) {
		in = append(in, b[1])
	}
	return in
}

// readCorpus reads the []byte values of a go test fuzz corpus directory.
func readCorpus(t testing.TB, dir string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var in [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if q, ok := strings.CutPrefix(line, "[]byte("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(q, ")"))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				in = append(in, []byte(s))
			}
		}
	}
	return in
}

var (
	dropIngested = regexp.MustCompile(`"ingested":"[^"]*",?`)
	dropSchema   = regexp.MustCompile(`,?"vigil":\{"schema":"1"\}|,"schema":"1"|"schema":"1",`)
	dropID       = regexp.MustCompile(`"id":"[^"]*",?`)
	dropTime     = regexp.MustCompile(`"@timestamp":"[^"]*",?`)
	dropKind     = regexp.MustCompile(`,?"kind":"[^"]*"`)
)

// variants returns inputs made from a canonical form: without the fields
// Vigil adds (so that they have to be spliced in), and spoiled by a space.
func variants(canon []byte) [][]byte {
	v := [][]byte{canon}
	for _, re := range []*regexp.Regexp{dropIngested, dropSchema, dropID, dropTime, dropKind} {
		v = append(v, re.ReplaceAll(canon, nil))
	}
	all := canon
	for _, re := range []*regexp.Regexp{dropIngested, dropSchema, dropID, dropTime, dropKind} {
		all = re.ReplaceAll(all, nil)
	}
	v = append(v, all, bytes.Replace(canon, []byte(":"), []byte(": "), 1), append([]byte(" "), canon...))
	return v
}

// routeLimits are the limits the routes are compared under.
var routeLimits = []struct {
	lim Limits
	now time.Time
}{
	{DefaultLimits, testNow},
	{Limits{MaxDepth: 1}, testNow},
	{Limits{MaxDepth: 2}, testNow},
	{Limits{MaxDepth: 3, MaxBytes: 300}, testNow},
	{storedLimits, time.Time{}},
}

// uuidShape matches the IDs Vigil makes.
var uuidShape = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// diffEvents describes how the results of two routes differ, "" when not.
// IDs Vigil made (not in the input) are random, so they are set alike first.
func diffEvents(data []byte, a Event, aerr error, b Event, berr error) string {
	if (aerr == nil) != (berr == nil) || aerr != nil && aerr.Error() != berr.Error() {
		return fmt.Sprintf("errors differ: %v / %v", aerr, berr)
	}
	if aerr != nil {
		if !reflect.DeepEqual(aerr, berr) {
			return fmt.Sprintf("errors differ: %#v / %#v", aerr, berr)
		}
		return ""
	}
	if a.ID != b.ID && uuidShape.MatchString(a.ID) && uuidShape.MatchString(b.ID) &&
		!bytes.Contains(data, []byte(a.ID)) && !bytes.Contains(data, []byte(b.ID)) {
		b.Canonical = bytes.Replace(b.Canonical, []byte(b.ID), []byte(a.ID), 1)
		b.ID = a.ID
	}
	if !bytes.Equal(a.Canonical, b.Canonical) {
		return fmt.Sprintf("canonical bytes differ:\n%s\n%s", a.Canonical, b.Canonical)
	}
	if !reflect.DeepEqual(a, b) {
		return fmt.Sprintf("events differ:\n%#v\n%#v", a, b)
	}
	return ""
}

// compareRoutes parses data by the general route alone and by routes with
// st, and fails the test on any difference; it returns the route taken.
func compareRoutes(t testing.TB, st *state, data []byte, lim Limits, now time.Time, routes route) route {
	t.Helper()
	lim = lim.withDefaults()
	if len(data) > lim.MaxBytes {
		return 0
	}
	want, _, werr := new(state).parse(data, lim, now, routeGeneral)
	got, r, gerr := st.parse(data, lim, now, routes)
	if d := diffEvents(data, want, werr, got, gerr); d != "" {
		t.Fatalf("routes %04b (took %04b) differ from the general route on %q, limits %+v, now %v: %s",
			routes, r, data, lim, now, d)
	}
	return r
}

// checkAllRoutes compares every route with the general one on data and on
// the variants of its canonical form.
func checkAllRoutes(t testing.TB, st *state, data []byte) {
	t.Helper()
	for _, l := range routeLimits {
		inputs := [][]byte{data}
		if ev, err := Parse(data, l.lim, l.now); err == nil {
			inputs = append(inputs, variants(ev.Canonical)...)
		}
		for _, in := range inputs {
			compareRoutes(t, st, in, l.lim, l.now, routeVerbatim|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeVerbatim|routeLayout|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeVerbatim|routeLayout|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeVerbatim|routeLayout|routeGeneral)
			compareRoutes(t, new(state), in, l.lim, l.now, routeFlat|routeGeneral)
			// Three times: the second keeps a plan, which the third
			// follows; plans of other inputs of the same shape serve too.
			compareRoutes(t, st, in, l.lim, l.now, routeFlat|routePlan|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeFlat|routePlan|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeFlat|routePlan|routeGeneral)
			compareRoutes(t, st, in, l.lim, l.now, routeAll)
		}
	}
}

// checkAcrossLimits compares the routes on data and its canonical form
// under each of routeLimits right after plans and layouts were made for
// them under the default limits, which may not serve under smaller ones.
func checkAcrossLimits(t testing.TB, st *state, data []byte) {
	t.Helper()
	inputs := [][]byte{data}
	if ev, err := Parse(data, DefaultLimits, testNow); err == nil {
		inputs = append(inputs, ev.Canonical)
	}
	for _, in := range inputs {
		for _, l := range routeLimits {
			for range 3 {
				compareRoutes(t, st, in, DefaultLimits, testNow, routeAll)
			}
			compareRoutes(t, st, in, l.lim, l.now, routeAll)
		}
	}
}

// TestFastRoutesTaken checks that the fast routes are not dead: the
// events of the tests take them.
func TestFastRoutesTaken(t *testing.T) {
	var golden, inputs [][]byte
	files, err := filepath.Glob("testdata/canonical/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		golden = append(golden, bytes.TrimSuffix(b, []byte("\n")))
		in, err := os.ReadFile(strings.TrimSuffix(f, ".golden") + ".json")
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, in)
	}

	t.Run("ParseStored of a golden form is verbatim", func(t *testing.T) {
		var taken []route
		routeHook = func(r route) { taken = append(taken, r) }
		defer func() { routeHook = nil }()
		for i, g := range golden {
			taken = taken[:0]
			ev, err := ParseStored(g)
			if err != nil {
				t.Fatalf("%s: %v", files[i], err)
			}
			if len(taken) != 1 || taken[0] != routeVerbatim && taken[0] != routeLayout {
				t.Errorf("%s: ParseStored took routes %v, want the verbatim route", files[i], taken)
			}
			want, _, _ := new(state).parse(g, storedLimits, time.Time{}, routeGeneral)
			want.Canonical = g // ParseStored keeps the stored bytes, event.ingested included
			if d := diffEvents(g, want, nil, ev, nil); d != "" {
				t.Errorf("%s: %s", files[i], d)
			}
		}
	})

	t.Run("Parse of a golden form is verbatim, then by its layout", func(t *testing.T) {
		for i, g := range golden {
			for _, in := range [][]byte{g, dropIngested.ReplaceAll(g, nil), dropSchema.ReplaceAll(g, nil)} {
				st := new(state)
				for k, want := range []route{routeVerbatim, routeVerbatim, routeLayout} {
					if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != want {
						t.Errorf("%s: Parse %d of %s took route %05b, want %05b", files[i], k, in, r, want)
					}
				}
			}
		}
	})

	t.Run("a layout serves events that differ in their values only", func(t *testing.T) {
		st := new(state)
		layout := `{"@timestamp":%s,"event":{"id":"a","kind":"k"},"message":%s,"source":{"ip":%s},"x":%s}`
		for k, c := range []struct {
			ts, msg, ip, x string
			want           route
		}{
			{`"2025-01-02T03:04:05Z"`, `"m"`, `"1.2.3.4"`, `[1]`, routeVerbatim},
			{`"2025-01-02T03:04:05Z"`, `"m"`, `"1.2.3.4"`, `[1]`, routeVerbatim},
			{`"2025-01-02T03:04:05.5Z"`, `"\n\u0001"`, `"::1"`, `{"b":{}}`, routeLayout},
			{`"2025-01-02T03:04:05.50Z"`, `"m"`, `"1.2.3.4"`, `1`, routeFlat},
			{`"2025-01-02T03:04:05Z"`, `"\/"`, `"1.2.3.4"`, `1`, routeFlat},
			{`"2025-01-02T03:04:05Z"`, `"m"`, `"1.2.3.04"`, `1`, routeGeneral},
			{`"2025-01-02T03:04:05Z"`, `"m"`, `"1.2.3.4"`, `{"b":1,"a":2}`, routeFlat},
			{`"2025-01-02T03:04:05Z"`, `1`, `"1.2.3.4"`, `null`, routeGeneral},
			{`"2025-01-02T03:04:05Z"`, `"m"`, `"1.2.3.4"`, `"x","y":1`, routeVerbatim},
		} {
			in := []byte(fmt.Sprintf(layout, c.ts, c.msg, c.ip, c.x))
			if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != c.want {
				t.Errorf("Parse %d of %s took route %05b, want %05b", k, in, r, c.want)
			}
		}
	})

	t.Run("other events are flat, then planned", func(t *testing.T) {
		for _, in := range append(inputs, benchEvent, benchEventNested, benchEventMinimal) {
			st := new(state)
			if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != routeFlat {
				t.Errorf("first Parse(%s) took route %04b, want the flat route", in, r)
			}
			if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != routeFlat {
				t.Errorf("second Parse(%s) took route %04b, want the flat route", in, r)
			}
			if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != routePlan {
				t.Errorf("third Parse(%s) took route %04b, want the plan", in, r)
			}
		}
	})

	t.Run("overridden fields do not stop the flat route", func(t *testing.T) {
		in := []byte(`{"event.ingested.x":[1],"vigil":{"schema":{"a":"b"}},"a":1,"Z":2}`)
		if r := compareRoutes(t, new(state), in, DefaultLimits, testNow, routeAll); r != routeFlat {
			t.Errorf("Parse(%s) took route %04b, want the flat route", in, r)
		}
	})

	t.Run("a plan is kept per shape", func(t *testing.T) {
		st := new(state)
		a := []byte(`{"b":1,"a":{"c":"x"}}`)
		b := []byte(`{"b":"y","a":{"c":[2]}}`)        // same shape
		c := []byte(`{"b":1,"a":{"c":"x","d":null}}`) // another
		for i, want := range []route{routeFlat, routeFlat, routePlan, routeFlat, routeFlat, routePlan} {
			in := [][]byte{a, a, b, c, c, c}[i]
			if r := compareRoutes(t, st, in, DefaultLimits, testNow, routeAll); r != want {
				t.Errorf("Parse %d (%s) took route %04b, want %04b", i, in, r, want)
			}
		}
		// A plan made under a larger depth limit is not used under a smaller one.
		deep := []byte(`{"a.b.c":1,"0":1}`)
		for range 2 {
			if r := compareRoutes(t, st, deep, DefaultLimits, testNow, routeAll); r != routeFlat {
				t.Errorf("deep event took route %04b, want the flat route", r)
			}
		}
		if r := compareRoutes(t, st, deep, Limits{MaxDepth: 2}, testNow, routeAll); r != routeGeneral {
			t.Errorf("deep event under a small limit took route %04b, want the general route", r)
		}
	})
}

// FuzzParseRoutes compares the fast routes with the general one on
// arbitrary inputs and on the canonical forms of those Parse accepts, with
// and without the fields Vigil adds.
func FuzzParseRoutes(f *testing.F) {
	for _, in := range routeInputs(f) {
		f.Add(in)
	}
	st := new(state) // kept, so that plans made for one input serve others
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8<<10 {
			return // each input is parsed some hundred times
		}
		checkAllRoutes(t, st, data)
		checkAcrossLimits(t, st, data)
	})
}

// TestRoutesLargeEvents compares the routes on events beyond the sizes the
// fast routes sort or check in simple ways, and beyond the bounds that send
// events to the general route.
func TestRoutesLargeEvents(t *testing.T) {
	var many, objs, dupObjs, deep strings.Builder
	many.WriteString(`{"@timestamp":"2025-01-02T03:04:05Z"`)
	for i := 300; i >= 0; i-- {
		fmt.Fprintf(&many, `,"k%03d.x.y":%d,"k%03d.z":"%d"`, i, i, i, i)
	}
	many.WriteString(`}`)
	objs.WriteString(`{"a":1`)
	dupObjs.WriteString(`{"a":1`)
	for i := range 100 {
		fmt.Fprintf(&objs, `,"o%d":{"a":%d}`, i, i)
		fmt.Fprintf(&dupObjs, `,"o%d":{"a":%d}`, i%90, i)
	}
	objs.WriteString(`}`)
	dupObjs.WriteString(`}`)
	long := strings.Repeat("k", 200)
	for range 30 {
		deep.WriteString(`{"` + long + `":`)
	}
	deep.WriteString(`{`)
	for i := range 300 {
		if i > 0 {
			deep.WriteString(`,`)
		}
		fmt.Fprintf(&deep, `"%s%d":%d`, long, i, i)
	}
	deep.WriteString(strings.Repeat("}", 31))

	lim := Limits{MaxDepth: 40}
	for _, in := range []string{many.String(), objs.String(), dupObjs.String(), deep.String()} {
		st := new(state)
		for _, routes := range []route{routeAll, routeAll, routeAll, routeFlat | routeGeneral, routeVerbatim | routeGeneral} {
			compareRoutes(t, st, []byte(in), lim, testNow, routes)
		}
		if ev, err := Parse([]byte(in), lim, testNow); err == nil {
			for range 3 {
				compareRoutes(t, st, ev.Canonical, lim, testNow, routeAll)
			}
		}
	}
	// The first is flat, the others too wide or deep for it.
	for i, want := range []route{routeFlat, routeGeneral, routeGeneral, routeGeneral} {
		in := []string{many.String(), objs.String(), dupObjs.String(), deep.String()}[i]
		if _, r, _ := new(state).parse([]byte(in), lim.withDefaults(), testNow, routeAll); r != want {
			t.Errorf("large event %d took route %05b, want %05b", i, r, want)
		}
	}
}
