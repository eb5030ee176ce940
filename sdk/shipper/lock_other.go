//go:build !unix

package shipper

import "os"

// lockFile does nothing where flock(2) does not exist: do not point two
// Shippers at the same SpoolDir there.
func lockFile(f *os.File) error { return nil }
