package crypt

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxMasterKeyFile bounds what is read of a master key file.
const maxMasterKeyFile = 1 << 10

// LoadMasterKey reads the master key from a file or from an environment
// variable (give exactly one of file, env): 32 bytes in standard base64,
// surrounding whitespace ignored. Make one with
//
//	head -c 32 /dev/urandom | base64 > master.key && chmod 600 master.key
//
// The file must be a regular file that only its owner can read or write
// (mode 0600 or stricter). Errors never include the key.
func LoadMasterKey(file, env string) ([]byte, error) {
	switch {
	case file != "" && env != "":
		return nil, errors.New("master key: give a file or an environment variable, not both")
	case file != "":
		text, err := readKeyFile(file)
		if err != nil {
			return nil, fmt.Errorf("master key: %w", err)
		}
		k, err := decodeMasterKey(text)
		if err != nil {
			return nil, fmt.Errorf("master key file %s: %w", file, err)
		}
		return k, nil
	case env != "":
		text, ok := os.LookupEnv(env)
		if !ok || strings.TrimSpace(text) == "" {
			return nil, fmt.Errorf("master key: environment variable %s is not set or empty", env)
		}
		k, err := decodeMasterKey(text)
		if err != nil {
			return nil, fmt.Errorf("master key in environment variable %s: %w", env, err)
		}
		return k, nil
	}
	return nil, errors.New("master key: no file or environment variable given")
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat() // of the file opened, not of what the path names now
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %04o: group or others may access it; it must be 0600 or stricter (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxMasterKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxMasterKeyFile {
		return "", fmt.Errorf("%s is larger than %d bytes: not a master key file", path, maxMasterKeyFile)
	}
	return string(b), nil
}

func decodeMasterKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	k, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(text)
	}
	if err != nil {
		return nil, errors.New("not base64 (want 32 random bytes in standard base64)")
	}
	if len(k) != MasterKeySize {
		return nil, fmt.Errorf("decodes to %d bytes, want %d", len(k), MasterKeySize)
	}
	return k, nil
}
