// Package atomicfile replaces files so that a reader, or the next start after
// a crash, sees either the old content or the new, never a part.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data (mode 0600): written to a temporary file in
// the same directory, fsynced, renamed over path, and the directory fsynced
// so that the rename itself survives a crash.
func Write(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return Rename(tmp, path)
}

// Rename renames oldpath to newpath and fsyncs newpath's directory, so that
// the rename survives a crash.
func Rename(oldpath, newpath string) error {
	if err := os.Rename(oldpath, newpath); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(newpath))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}
