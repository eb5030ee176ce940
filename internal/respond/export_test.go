package respond

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// exportEnv holds a mix of decisions: addresses and ranges of both
// families, an address inside a banned range, a throttle, a user and an
// expired ban.
func exportEnv(t *testing.T) *testEnv {
	env := newEnv(t, Config{})
	for _, d := range []Decision{
		{Scope: "ip", Value: "203.0.113.7", Reason: "brute force"},
		{Scope: "ip", Value: "192.0.2.1"},
		{Scope: "range", Value: "198.51.100.0/24"},
		{Scope: "ip", Value: "198.51.100.20"}, // inside the range: left out
		{Scope: "range", Value: "198.51.100.128/25"},
		{Scope: "ip", Value: "2001:db8::1"},
		{Scope: "range", Value: "2001:db8:bad::/48"},
		{Scope: "ip", Value: "::ffff:192.0.2.2"},
		{Type: "throttle", Scope: "ip", Value: "192.0.2.50"},
		{Scope: "user", Value: "mallory"},
		{Scope: "ip", Value: "192.0.2.99", Until: t0.Add(time.Minute)},
	} {
		mustAdd(t, env.m, d)
	}
	env.clock.Advance(time.Hour) // the last one has expired
	return env
}

func TestExportGolden(t *testing.T) {
	env := exportEnv(t)
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Export(&buf, format, env.m.List(Filter{Type: TypeBan}), "bans", env.clock.Now()); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "export", format+".golden"), buf.Bytes())
			out := buf.String()
			for _, absent := range []string{"198.51.100.20", "192.0.2.50", "mallory", "192.0.2.99", "::ffff"} {
				if strings.Contains(out, absent) {
					t.Errorf("export holds %s", absent)
				}
			}
		})
	}
	var buf bytes.Buffer
	if err := Export(&buf, "pf", nil, "bans", t0); err == nil {
		t.Error("Export in an unknown format succeeded")
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestExportPrefixes(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"10.0.0.0/8", "10.1.0.0/16", "10.1.2.3", "11.0.0.1"}, []string{"10.0.0.0/8", "11.0.0.1/32"}},
		{[]string{"10.1.2.3", "10.1.0.0/16", "10.1.2.3"}, []string{"10.1.0.0/16"}},
		{[]string{"10.0.0.0/16", "10.0.5.0/24", "10.1.0.0/16", "10.0.0.0/24"}, []string{"10.0.0.0/16", "10.1.0.0/16"}},
		{[]string{"2001:db8::/32", "192.0.2.1", "2001:db8::1"}, []string{"192.0.2.1/32", "2001:db8::/32"}},
	}
	for _, tt := range tests {
		var ds []Decision
		for _, v := range tt.in {
			scope := ScopeIP
			if strings.Contains(v, "/") {
				scope = ScopeRange
			}
			ds = append(ds, Decision{Scope: scope, Value: v})
		}
		var got []string
		for _, p := range ExportPrefixes(ds) {
			got = append(got, p.String())
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("ExportPrefixes(%v) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

// TestExportsLoad loads every export into the real tools: nft, iptables-
// restore, ip6tables-restore and ipset in a network namespace of its own
// (so the machine's firewall is not touched), and nginx -t. Each file is
// loaded twice, as a cron job would, and must replace, not add to, what
// the first load made.
func TestExportsLoad(t *testing.T) {
	if err := exec.Command("unshare", "--net", "true").Run(); err != nil {
		t.Skipf("cannot make a network namespace (unshare --net: %v): run as root to check the exports with the real tools", err)
	}
	var missing []string
	for _, tool := range []string{"nft", "iptables-restore", "ip6tables-restore", "ipset", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("missing %s: apt-get install nftables iptables ipset nginx-light", strings.Join(missing, ", "))
	}
	env := exportEnv(t)
	dir := t.TempDir()
	files := map[string]string{}
	for _, f := range Formats {
		var buf bytes.Buffer
		if err := Export(&buf, f, env.m.List(Filter{Type: TypeBan}), "bans", env.clock.Now()); err != nil {
			t.Fatal(err)
		}
		files[f] = filepath.Join(dir, f)
		if err := os.WriteFile(files[f], buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Smaller exports after, to see that a reload removes what is gone.
	env.m.RemoveValue(t.Context(), "range", "198.51.100.0/24", "manual:test")
	for _, f := range Formats {
		var buf bytes.Buffer
		Export(&buf, f, env.m.List(Filter{Type: TypeBan}), "bans", env.clock.Now())
		os.WriteFile(files[f]+".2", buf.Bytes(), 0o600)
		// And an empty one first: nothing banned yet.
		buf.Reset()
		Export(&buf, f, nil, "bans", env.clock.Now())
		os.WriteFile(files[f]+".0", buf.Bytes(), 0o600)
	}

	tests := []struct {
		name   string
		script string
		want   []string // in the output
		not    []string
	}{
		{"nftables", `nft -f "$F.0" && nft -f "$F" && nft -f "$F" && nft -f "$F.2" && nft list table inet vigil`,
			[]string{"203.0.113.7", "192.0.2.1", "198.51.100.128/25", "2001:db8::1", "2001:db8:bad::/48", "ip saddr @banned4 drop"},
			[]string{"198.51.100.0/24"}},
		{"iptables", `iptables-restore --noflush < "$F.0" && iptables-restore --noflush < "$F" && iptables-restore --noflush < "$F" && iptables-restore --noflush < "$F.2" && iptables -S VIGIL`,
			[]string{"-A VIGIL -s 203.0.113.7/32 -j DROP", "-A VIGIL -s 198.51.100.128/25 -j DROP"},
			[]string{"198.51.100.0/24", "2001:db8"}},
		{"ip6tables", `ip6tables-restore --noflush < "$F.0" && ip6tables-restore --noflush < "$F" && ip6tables-restore --noflush < "$F" && ip6tables-restore --noflush < "$F.2" && ip6tables -S VIGIL`,
			[]string{"-A VIGIL -s 2001:db8::1/128 -j DROP", "-A VIGIL -s 2001:db8:bad::/48 -j DROP"},
			[]string{"203.0.113.7"}},
		{"ipset", `ipset -exist restore < "$F.0" && ipset -exist restore < "$F" && ipset -exist restore < "$F" && ipset -exist restore < "$F.2" && ipset list vigil4 && ipset list vigil6 && ipset list -n`,
			[]string{"203.0.113.7", "198.51.100.128/25", "2001:db8:bad::/48", "vigil4\nvigil6"},
			[]string{"198.51.100.0/24", "vigil4-next"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), "unshare", "--net", "sh", "-ec", tt.script)
			cmd.Env = append(os.Environ(), "F="+files[tt.name])
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s\n--- file:\n%s", tt.script, err, out, readFile(files[tt.name]))
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(string(out), w) {
					t.Errorf("output holds %q after the second export:\n%s", w, out)
				}
			}
			if tt.name == "iptables" || tt.name == "ip6tables" {
				// Loading four times leaves one rule per address.
				if n, want := strings.Count(string(out), "-A VIGIL"), strings.Count(readFile(files[tt.name]+".2"), "-A VIGIL"); n != want {
					t.Errorf("%d rules after four loads; want %d", n, want)
				}
			}
		})
	}
	t.Run("nginx", func(t *testing.T) {
		conf := filepath.Join(dir, "nginx.conf")
		os.WriteFile(conf, fmt.Appendf(nil, "pid %s;\nerror_log stderr;\nevents {}\nhttp {\n  access_log off;\n  include %s;\n  server { listen 127.0.0.1:1; }\n}\n",
			filepath.Join(dir, "nginx.pid"), files["nginx"]), 0o600)
		out, err := exec.CommandContext(t.Context(), "nginx", "-t", "-q", "-e", "stderr", "-p", dir, "-c", conf).CombinedOutput()
		if err != nil {
			t.Fatalf("nginx -t: %v\n%s", err, out)
		}
	})
	t.Run("plain", func(t *testing.T) {
		for _, line := range strings.Split(strings.TrimSpace(readFile(files["plain"])), "\n") {
			if _, err := netip.ParsePrefix(line); err != nil {
				if _, err := netip.ParseAddr(line); err != nil {
					t.Errorf("plain line %q is neither an address nor a range", line)
				}
			}
		}
	})
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return errors.Join(err).Error()
	}
	return string(b)
}
