package event

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// TestGolden parses each testdata/canonical/*.json and compares the canonical
// form with the .golden file next to it.
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/canonical/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no inputs in testdata/canonical")
	}
	for _, in := range inputs {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Parse(data, DefaultLimits, testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := append(ev.Canonical, '\n')
			golden := strings.TrimSuffix(in, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("canonical form differs from %s (go test -update rewrites it)\n got %s\nwant %s", golden, got, want)
			}
			checkIdempotent(t, ev)
		})
	}
}

// TestSchemaDocExamples parses every ```json block of docs/event-schema.md:
// the examples of the schema must be events Vigil accepts.
func TestSchemaDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/event-schema.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 4 {
		t.Fatalf("found %d json examples in docs/event-schema.md, want at least 4", len(blocks))
	}
	now := time.Date(2025, 3, 1, 12, 5, 0, 412e6, time.UTC)
	var canonical []string
	for i, b := range blocks {
		ev, err := Parse(b[1], DefaultLimits, now)
		if err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, b[1])
			continue
		}
		if !json.Valid(ev.Canonical) {
			t.Errorf("example %d: canonical form is not valid JSON", i+1)
		}
		canonical = append(canonical, string(ev.Canonical))
	}
	// The doc shows the stored form of the configuration change.
	m := regexp.MustCompile("(?s)The stored \\(canonical\\) form.*?```\n(.*?)\n```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/event-schema.md shows no canonical form")
	}
	if len(canonical) > 2 && string(m[1]) != canonical[2] {
		t.Errorf("the canonical form in docs/event-schema.md is not what Parse gives:\n doc %s\nParse %s", m[1], canonical[2])
	}
}
