// Package scripts holds the project's shell scripts and the tests of the
// ones that a test can run without servers (install.sh).
package scripts

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func installSh(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join("..", "install.sh")}, args...)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("install.sh %v: %v", args, err)
	}
	return string(out), 0
}

// TestInstallIntoAPrefixPutsBinariesUnitAndPrivateSettings installs into a
// temporary prefix: both binaries executable under bin, the unit pointing at
// them and at the settings file, which is private and survives a reinstall.
func TestInstallIntoAPrefixPutsBinariesUnitAndPrivateSettings(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "usr")
	if out, code := installSh(t, "--prefix", prefix); code != 0 {
		t.Fatalf("install.sh --prefix: exit %d\n%s", code, out)
	}
	for _, b := range []string{"kc-event-emitter", "kc-event-receiver"} {
		fi, err := os.Stat(filepath.Join(prefix, "bin", b))
		if err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s not installed executable: %v", b, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(prefix, "etc", "systemd", "system", "kc-event-emitter.service"))
	if err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(prefix, "etc", "kc-event-emitter", "kc-event-emitter.env")
	for _, want := range []string{"ExecStart=" + filepath.Join(prefix, "bin", "kc-event-emitter") + " run", "EnvironmentFile=" + envPath} {
		if !strings.Contains(string(unit), want+"\n") {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}
	fi, err := os.Stat(envPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("settings file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := os.WriteFile(envPath, []byte("KC_EMITTER_DB_URL=mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := installSh(t, "--prefix="+prefix); code != 0 {
		t.Fatalf("second install: exit %d\n%s", code, out)
	}
	if got, _ := os.ReadFile(envPath); string(got) != "KC_EMITTER_DB_URL=mine\n" {
		t.Errorf("a reinstall overwrote the settings file: %q", got)
	}
}

// TestInstallFlags: --help succeeds, a bad flag or a missing value exits 2
// and installs nothing.
func TestInstallFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"--help"}, 0, "--prefix DIR"},
		{[]string{"--bogus"}, 2, "unknown argument --bogus"},
		{[]string{"--prefix"}, 2, "--prefix needs a folder"},
	} {
		out, code := installSh(t, c.args...)
		if code != c.code || !strings.Contains(out, c.out) {
			t.Errorf("install.sh %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.out, out)
		}
	}
}
