//go:build unix

package shipper

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive flock on f without waiting. The kernel drops
// it when the process dies, so a crash never leaves the spool locked.
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
