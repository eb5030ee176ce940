package crypt

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// decode reads an "encryption" section as the configuration loader does:
// strictly, then Validate.
func decode(t *testing.T, text string) (Config, error) {
	t.Helper()
	var doc struct {
		Encryption Config `yaml:"encryption"`
	}
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return doc.Encryption, err
	}
	return doc.Encryption, doc.Encryption.Validate()
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // error text; "" for valid
	}{
		{"absent", ``, ""},
		{"file", "encryption:\n  enabled: true\n  master_key_file: /etc/vigil/master.key\n", ""},
		{"env and fields", "encryption:\n  enabled: true\n  master_key_env: VIGIL_MASTER_KEY\n  fields: [user.name, error.stack_trace, vigil.job.kwargs, labels.customer]\n", ""},
		{"disabled needs no key", "encryption:\n  fields: [message]\n", ""},
		{"unknown key", "encryption:\n  enabled: true\n  master_key: abc\n", "field master_key not found"},
		{"enabled without key", "encryption:\n  enabled: true\n", "field encryption.master_key_file: set it or encryption.master_key_env"},
		{"both keys", "encryption:\n  enabled: true\n  master_key_file: k\n  master_key_env: K\n", "field encryption.master_key_env: set master_key_file or master_key_env, not both"},
		{"bad env name", "encryption:\n  master_key_env: 1KEY\n", "field encryption.master_key_env: \"1KEY\" is not an environment variable name"},
		{"empty field", "encryption:\n  fields: [user.name, \"\"]\n", "field encryption.fields[1]: empty path"},
		{"empty segment", "encryption:\n  fields: [a, b, c..d]\n", `field encryption.fields[2]: "c..d" has an empty part`},
		{"space", "encryption:\n  fields: [\"user name\"]\n", "field encryption.fields[0]: \"user name\" has a character other than visible ASCII"},
		{"too long", "encryption:\n  fields: [" + strings.Repeat("a", 257) + "]\n", "field encryption.fields[0]: path longer than 256 bytes"},
		{"event.id", "encryption:\n  fields: [event.id]\n", "field encryption.fields[0]: \"event.id\" cannot be encrypted: the event.* fields identify"},
		{"event.original", "encryption:\n  fields: [message, event.original]\n", "field encryption.fields[1]: \"event.original\" cannot be encrypted"},
		{"timestamp", "encryption:\n  fields: ['@timestamp']\n", "\"@timestamp\" cannot be encrypted: Vigil checks or normalizes @timestamp"},
		{"source.ip", "encryption:\n  fields: [source.ip]\n", "checks or normalizes source.ip"},
		{"inside a checked field", "encryption:\n  fields: [related.objects.x]\n", "checks or normalizes related.objects"},
		{"method", "encryption:\n  fields: [http.request.method]\n", "checks or normalizes http.request.method"},
		{"namespace", "encryption:\n  fields: [user]\n", "field encryption.fields[0]: \"user\" cannot be encrypted whole: it must stay an object"},
		{"labels whole", "encryption:\n  fields: [labels]\n", "\"labels\" cannot be encrypted whole"},
		{"default repeated", "encryption:\n  fields: [http.request.headers]\n", "field encryption.fields[0]: \"http.request.headers\" repeats \"http.request.headers\", which is always encrypted"},
		{"inside a default", "encryption:\n  fields: [http.request.headers.cookie]\n", "\"http.request.headers.cookie\" is inside \"http.request.headers\", which is always encrypted"},
		{"holds a default", "encryption:\n  fields: [http.response.body]\n", "\"http.response.body\" holds \"http.response.body.content\", which is always encrypted"},
		{"listed twice", "encryption:\n  fields: [user.name, message, user.name]\n", "field encryption.fields[2]: \"user.name\" repeats \"user.name\" (encryption.fields[0])"},
		{"overlapping", "encryption:\n  fields: [vigil.job.kwargs.email, vigil.job]\n", "field encryption.fields[1]: \"vigil.job\" holds \"vigil.job.kwargs.email\" (encryption.fields[0])"},
		{"too many", "encryption:\n  fields: [" + manyFields(65) + "]\n", "field encryption.fields: 65 fields, at most 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.yaml)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one with %q", err, tt.want)
			}
		})
	}
}

func manyFields(n int) string {
	f := make([]string, n)
	for i := range f {
		f[i] = "x.f" + strings.Repeat("a", i)
	}
	return strings.Join(f, ", ")
}

func TestAllFields(t *testing.T) {
	c, err := decode(t, "encryption:\n  fields: [user.name]\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "http.request.body.content,http.response.body.content,http.request.headers,http.response.headers,user.name"
	if got := strings.Join(c.AllFields(), ","); got != want {
		t.Errorf("AllFields() = %s, want %s", got, want)
	}
	// AllFields does not share the defaults' array between calls.
	a := c.AllFields()
	a[0] = "changed"
	if DefaultFields()[0] != "http.request.body.content" {
		t.Error("DefaultFields changed through AllFields")
	}
}

func TestNewEncrypterChecksFields(t *testing.T) {
	ring := openRing(t, t.TempDir(), testMaster(1))
	tests := []struct {
		fields []string
		want   string
	}{
		{nil, "no fields to encrypt"},
		{[]string{"a.b", "a"}, `field 1: "a" holds "a.b"`},
		{[]string{"event.id"}, "cannot be encrypted"},
	}
	for _, tt := range tests {
		if _, err := NewEncrypter(ring, tt.fields); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewEncrypter(%q) error %v, want one with %q", tt.fields, err, tt.want)
		}
	}
	if _, err := NewEncrypter(nil, DefaultFields()); err == nil {
		t.Error("NewEncrypter without a keyring accepted")
	}
}
