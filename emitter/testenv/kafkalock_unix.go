//go:build unix

package testenv

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// lockBroker takes the lock of the broker of scripts/kafka.sh, shared by
// every test that uses it (in any test process: go test runs packages at
// once) or exclusive for a restart, and returns its release.
func lockBroker(t testing.TB, exclusive bool) (release func()) {
	t.Helper()
	dir := filepath.Join(ModuleRoot(t), ".cache", "kafka")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "broker.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", f.Name(), err)
	}
	return func() { f.Close() } // closing releases the lock
}
