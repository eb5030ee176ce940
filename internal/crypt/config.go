package crypt

import (
	"fmt"
	"strings"
)

// Config is the "encryption" section of Vigil's configuration.
type Config struct {
	// Enabled turns encryption of the selected fields on.
	Enabled bool `yaml:"enabled"`
	// Fields lists ECS dotted paths to encrypt besides DefaultFields. A
	// field holding an object is encrypted whole.
	Fields []string `yaml:"fields"`
	// MasterKeyFile names a file holding the master key in base64 (mode
	// 0600 or stricter); MasterKeyEnv names an environment variable holding
	// it. Set one of them when Enabled.
	MasterKeyFile string `yaml:"master_key_file"`
	MasterKeyEnv  string `yaml:"master_key_env"`
}

// DefaultFields returns the fields always encrypted when encryption is on:
// the request and response bodies and headers.
func DefaultFields() []string {
	return []string{
		"http.request.body.content",
		"http.response.body.content",
		"http.request.headers",
		"http.response.headers",
	}
}

// AllFields returns the fields to encrypt: DefaultFields, then Fields.
func (c Config) AllFields() []string {
	return append(DefaultFields(), c.Fields...)
}

// Bounds of the configuration.
const (
	maxFields    = 64  // fields listed, besides the defaults
	maxPathBytes = 256 // length of one field's path
)

// Validate checks c and names the first bad field, as
// "field encryption.fields[2]: ...". It does no I/O.
func (c Config) Validate() error {
	if len(c.Fields) > maxFields {
		return fmt.Errorf("field encryption.fields: %d fields, at most %d", len(c.Fields), maxFields)
	}
	defaults := DefaultFields()
	for i, f := range c.Fields {
		name := fmt.Sprintf("encryption.fields[%d]", i)
		if err := checkPath(f); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
		for _, d := range defaults {
			if msg := overlap(f, d); msg != "" {
				return fmt.Errorf("field %s: %q %s %q, which is always encrypted", name, f, msg, d)
			}
		}
		for j, g := range c.Fields[:i] {
			if msg := overlap(f, g); msg != "" {
				return fmt.Errorf("field %s: %q %s %q (encryption.fields[%d])", name, f, msg, g, j)
			}
		}
	}
	if c.MasterKeyEnv != "" && !validEnvName(c.MasterKeyEnv) {
		return fmt.Errorf("field encryption.master_key_env: %q is not an environment variable name (letters, digits, '_', not starting with a digit)", c.MasterKeyEnv)
	}
	if c.MasterKeyFile != "" && strings.ContainsRune(c.MasterKeyFile, 0) {
		return fmt.Errorf("field encryption.master_key_file: %q has a NUL byte", c.MasterKeyFile)
	}
	if c.Enabled {
		switch {
		case c.MasterKeyFile == "" && c.MasterKeyEnv == "":
			return fmt.Errorf("field encryption.master_key_file: set it or encryption.master_key_env when encryption is enabled")
		case c.MasterKeyFile != "" && c.MasterKeyEnv != "":
			return fmt.Errorf("field encryption.master_key_env: set master_key_file or master_key_env, not both")
		}
	}
	return nil
}

// overlap tells how path a relates to b when one holds the other:
// "repeats", "is inside", "holds"; "" when neither.
func overlap(a, b string) string {
	switch {
	case a == b:
		return "repeats"
	case strings.HasPrefix(a, b+"."):
		return "is inside"
	case strings.HasPrefix(b, a+"."):
		return "holds"
	}
	return ""
}

// Fields Vigil reads, checks or normalizes cannot hold an envelope.
var (
	// objects must stay objects: Vigil checks the fields in them. Fields
	// inside them may be encrypted.
	objects = []string{"event", "http", "http.request", "http.response", "source", "user", "url",
		"service", "host", "log", "related", "labels", "vigil"}
	// checked are fields (and what is inside them) whose value Vigil checks
	// or rewrites: a string of base64 would be refused or altered.
	checked = []string{"@timestamp", "event", "source.ip", "source.port", "http.request.method",
		"http.response.status_code", "related.objects", "vigil.schema"}
)

// checkPath checks the syntax of a field's path and that the field can be
// encrypted.
func checkPath(p string) error {
	if p == "" {
		return fmt.Errorf("empty path")
	}
	if len(p) > maxPathBytes {
		return fmt.Errorf("path longer than %d bytes", maxPathBytes)
	}
	for _, seg := range strings.Split(p, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty part (write ECS dotted paths: http.request.body.content)", p)
		}
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return fmt.Errorf("%q has a character other than visible ASCII (no spaces, quotes or backslashes)", p)
		}
	}
	for _, c := range checked {
		if p == c || strings.HasPrefix(p, c+".") {
			if c == "event" {
				return fmt.Errorf("%q cannot be encrypted: the event.* fields identify and classify the event (event.id is bound into every ciphertext)", p)
			}
			return fmt.Errorf("%q cannot be encrypted: Vigil checks or normalizes %s, which an encrypted value would not pass", p, c)
		}
	}
	for _, o := range objects {
		if p == o {
			return fmt.Errorf("%q cannot be encrypted whole: it must stay an object; name fields inside it", p)
		}
	}
	return nil
}

// checkFields checks a list of fields to encrypt: valid paths, none inside
// another.
func checkFields(fields []string) error {
	if len(fields) == 0 {
		return fmt.Errorf("no fields to encrypt")
	}
	if len(fields) > maxFields+len(DefaultFields()) {
		return fmt.Errorf("%d fields to encrypt, at most %d", len(fields), maxFields+len(DefaultFields()))
	}
	for i, f := range fields {
		if err := checkPath(f); err != nil {
			return fmt.Errorf("field %d: %w", i, err)
		}
		for _, g := range fields[:i] {
			if msg := overlap(f, g); msg != "" {
				return fmt.Errorf("field %d: %q %s %q", i, f, msg, g)
			}
		}
	}
	return nil
}

func validEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
