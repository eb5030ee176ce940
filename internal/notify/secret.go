package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Secret is a configuration value that must never be printed: a password, a
// routing key, a webhook secret, a URL carrying a token. fmt, encoding/json,
// YAML and log/slog all render it as "<secret>"; Reveal returns the value.
type Secret string

const redacted = "<secret>"

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns "<secret>", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString is String, for %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON writes "<secret>".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalYAML writes "<secret>".
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// LogValue logs "<secret>".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// maxSecretFile bounds a *_file secret.
const maxSecretFile = 64 << 10

// readSecret returns the inline value, or the contents of file without
// trailing line breaks.
func readSecret(inline Secret, file string) (string, error) {
	if file == "" {
		return inline.Reveal(), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s: longer than %d bytes", file, maxSecretFile)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return "", errors.New(file + ": empty")
	}
	return string(b), nil
}
