package config

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	cases := []struct {
		name, yaml, wantErr string
	}{
		{"empty file keeps defaults", "", ""},
		{"full", "listen: 127.0.0.1:9000\ndata_dir: /tmp/x\nlog_level: debug\nshutdown_timeout: 3s\ningest:\n  max_depth: 10\n", ""},
		{"unknown key", "listne: 127.0.0.1:9000\n", "field listne not found"},
		{"unknown nested key", "ingest:\n  max_deep: 3\n", "field max_deep not found"},
		{"bad listen", "listen: nonsense\n", "field listen"},
		{"bad level", "log_level: loud\n", "field log_level"},
		{"depth out of range", "ingest:\n  max_depth: 0\n", "field ingest.max_depth"},
		{"half tls", "tls:\n  cert_file: a.pem\n", "field tls"},
		{"bad duration", "shutdown_timeout: soon\n", "not a duration"},
		{"wrong type", "ingest:\n  max_body_bytes: big\n", "line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			err := Parse([]byte(c.yaml), &cfg)
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, c.wantErr)
			}
		})
	}
	cfg := Default()
	if err := Parse([]byte("shutdown_timeout: 3s\ningest:\n  max_depth: 10\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Ingest.MaxDepth != 10 || time.Duration(cfg.ShutdownTimeout) != 3*time.Second || cfg.Listen != "127.0.0.1:8080" {
		t.Errorf("parsed %+v", cfg)
	}
}

// FuzzParse: a configuration file never panics the parser, and what it
// accepts validates.
func FuzzParse(f *testing.F) {
	f.Add("listen: 127.0.0.1:9000\ndata_dir: /tmp/x\nlog_level: debug\nshutdown_timeout: 3s\ningest:\n  max_depth: 10\n")
	f.Add("tls:\n  cert_file: a.pem\n  key_file: b.pem\n")
	f.Add("ingest:\n  max_body_bytes: big\n")
	f.Add("alerting:\n  inhibit_rules:\n    - source_matchers: ['severity=\"critical\"']\n      target_matchers: ['severity=\"warning\"']\n      equal: [ip]\n")
	f.Add("retention:\n  holds:\n    - id: a\n      query: 'user.name = \"x\"'\n")
	f.Fuzz(func(t *testing.T, y string) {
		if len(y) > 64<<10 {
			return
		}
		c := Default()
		if err := Parse([]byte(y), &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v\n%s", err, y)
		}
	})
}
