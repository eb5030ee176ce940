package vigil_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestStdlibOnly checks that every package under sdk/ depends only on the
// standard library and on other packages of sdk/, so that any Go
// application can take the SDK without new dependencies. Test files are
// not counted: they may use Vigil's internal packages.
func TestStdlibOnly(t *testing.T) {
	const sdk = "github.com/vigilsec/vigil/sdk/"
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", sdk+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr(err))
	}
	var pkgs int
	for _, p := range strings.Fields(string(out)) {
		pkgs++
		if !strings.HasPrefix(p, sdk) {
			t.Errorf("the SDK depends on %s, which is neither the standard library nor under sdk/", p)
		}
	}
	if pkgs < 2 {
		t.Errorf("go list found %d SDK packages: %s", pkgs, out)
	}
	// Check the check: a package outside sdk/ is reported as not standard.
	out, err = exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/vigilsec/vigil/internal/event").Output()
	if err != nil || !strings.Contains(string(out), "github.com/vigilsec/vigil/internal/event") {
		t.Errorf("go list does not report non-standard packages: %v %s", err, out)
	}
}

func stderr(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
