package scripts

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReleaseArchiveInstallsAndRunsWithoutGo builds the release archive for
// this machine's architecture as make dist does, checks it against its
// SHA256SUMS, unpacks it into a temporary root, runs its install.sh with a
// PATH that has no go, and starts the installed emitter against nothing.
func TestReleaseArchiveInstallsAndRunsWithoutGo(t *testing.T) {
	dist := t.TempDir()
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "dist.sh"))
	cmd.Env = append(os.Environ(), "DIST_DIR="+dist, "DIST_ARCHES="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/dist.sh: %v\n%s", err, out)
	}
	name, version := checkSums(t, dist)
	archive := filepath.Join(dist, name+".tar.gz")
	checkEntries(t, archive, name)

	root := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", archive, "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("tar -xzf: %v\n%s", err, out)
	}
	unpacked := filepath.Join(root, name)
	noGo := pathWithoutGo(t)
	prefix := filepath.Join(root, "usr")

	t.Run("install.sh installs from the archive without go", func(t *testing.T) {
		out, code := runScript(t, noGo, filepath.Join(unpacked, "install.sh"), "--prefix", prefix)
		if code != 0 || !strings.Contains(out, "("+version+")") {
			t.Fatalf("install.sh: exit %d, want 0 and the version %s:\n%s", code, version, out)
		}
		unit, err := os.ReadFile(filepath.Join(prefix, "etc", "systemd", "system", "kc-event-emitter.service"))
		if err != nil || !strings.Contains(string(unit), "ExecStart="+filepath.Join(prefix, "bin", "kc-event-emitter")+" run\n") {
			t.Errorf("unit not installed pointing at the binary: %v\n%s", err, unit)
		}
	})

	// dist.sh stamps the checkout's commit; outside a git checkout, none.
	commit := ""
	if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	shownCommit := commit
	if shownCommit == "" {
		shownCommit = "unknown"
	}
	for _, b := range []string{"kc-event-emitter", "kc-event-receiver"} {
		t.Run(b+" is static and prints its stamped version", func(t *testing.T) {
			bin := filepath.Join(prefix, "bin", b)
			checkStatic(t, bin)
			out, err := exec.Command(bin, "--version").Output()
			if err != nil {
				t.Fatalf("%s --version: %v", b, err)
			}
			lines := strings.Split(string(out), "\n")
			if len(lines) < 3 || lines[0] != b+" "+version || lines[1] != "commit "+shownCommit ||
				!strings.HasPrefix(lines[2], "go     "+runtime.Version()+" linux/"+runtime.GOARCH) {
				t.Errorf("%s --version:\n%s\nwant version %s, commit %s, %s", b, out, version, shownCommit, runtime.Version())
			}
		})
	}

	t.Run("the installed emitter serves its build on /metrics and stops on SIGTERM", func(t *testing.T) {
		runInstalledEmitter(t, filepath.Join(prefix, "bin", "kc-event-emitter"), root, noGo, version, commit)
	})

	t.Run("install.sh refuses a binary for another architecture", func(t *testing.T) {
		// The unpacked archive with a receiver built for another machine: an
		// ELF header the kernel refuses here (ENOEXEC), as a real one would.
		machine := elf.EM_AARCH64
		if runtime.GOARCH == "arm64" {
			machine = elf.EM_X86_64
		}
		hdr := make([]byte, 64)
		copy(hdr, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1})
		hdr[16], hdr[18], hdr[19] = 2, byte(machine), byte(machine>>8) // ET_EXEC, e_machine
		if err := os.WriteFile(filepath.Join(unpacked, "bin", "kc-event-receiver"), hdr, 0o755); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(root, "other")
		out, code := runScript(t, noGo, filepath.Join(unpacked, "install.sh"), "--prefix", other)
		if code != 1 || !strings.Contains(out, "bin/kc-event-receiver does not run on this machine") {
			t.Errorf("install.sh: exit %d, want 1 naming the binary:\n%s", code, out)
		}
		if _, err := os.Stat(filepath.Join(other, "bin")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("something was installed: %v", err)
		}
	})
}

// TestInstallWithoutBinariesOrGoSaysWhatToDo: a checkout with no bin/ and
// no go exits 1 pointing at the release archive, instead of failing on
// "go: command not found".
func TestInstallWithoutBinariesOrGoSaysWhatToDo(t *testing.T) {
	checkout := t.TempDir()
	for _, f := range []string{"install.sh", "scripts/build.sh"} {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(checkout, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(checkout, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, code := runScript(t, pathWithoutGo(t), filepath.Join(checkout, "install.sh"), "--prefix", filepath.Join(checkout, "usr"))
	if code != 1 || !strings.Contains(out, "there is no go to build them: install from a release archive") {
		t.Errorf("install.sh: exit %d, want 1 and what to do:\n%s", code, out)
	}
}

// checkSums reads SHA256SUMS: one line naming the archive of this
// architecture, whose digest it holds. It returns the archive's folder name
// and the version in it.
func checkSums(t *testing.T, dist string) (name, version string) {
	t.Helper()
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^([0-9a-f]{64})  (kc-event-emitter-(\S+)-linux-` + runtime.GOARCH + `)\.tar\.gz\n$`).FindStringSubmatch(string(sums))
	if m == nil {
		t.Fatalf("SHA256SUMS is not one sha256sum line for the %s archive:\n%s", runtime.GOARCH, sums)
	}
	f, err := os.Open(filepath.Join(dist, m[2]+".tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m[1] {
		t.Errorf("%s has sha256 %s, SHA256SUMS says %s", m[2], got, m[1])
	}
	return m[2], m[3]
}

// checkEntries: the archive holds exactly one folder with what a server
// needs, owned by root, programs 0755 and the rest 0644.
func checkEntries(t *testing.T, archive, name string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"": 0o755, "bin/": 0o755, "bin/kc-event-emitter": 0o755, "bin/kc-event-receiver": 0o755,
		"install.sh": 0o755, "README.md": 0o644, "CHANGELOG.md": 0o644, "LICENSE": 0o644,
		"deploy/": 0o755, "deploy/systemd/": 0o755,
		"deploy/systemd/kc-event-emitter.service": 0o644, "deploy/systemd/kc-event-emitter.env": 0o644,
	}
	got := map[string]int64{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(h.Name, name+"/")
		if !ok {
			t.Errorf("entry %s outside the folder %s", h.Name, name)
			continue
		}
		got[rel] = h.Mode
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
	}
	for rel, mode := range want {
		if g, ok := got[rel]; !ok || g != mode {
			t.Errorf("entry %q: mode %o (present %v), want %o", rel, g, ok, mode)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("unexpected entry %q", rel)
		}
	}
}

// checkStatic: no program interpreter and no shared library.
func checkStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s is dynamically linked (%v)", bin, p.Type)
		}
	}
}

// pathWithoutGo is a PATH of one folder holding a link to every program
// of the test's PATH except go and gofmt.
func pathWithoutGo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.Name() == "go" || e.Name() == "gofmt" || e.IsDir() {
				continue
			}
			// The first of a name on PATH wins, as for the shell.
			if err := os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrExist) {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bash")); err != nil {
		t.Fatalf("no bash on PATH: %v", err)
	}
	return dir
}

// runScript runs a bash script with only PATH (and HOME) set, as a fresh
// login would have, and returns its output and exit status.
func runScript(t *testing.T, path, script string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(path, "bash"), append([]string{script}, args...)...)
	cmd.Env = []string{"PATH=" + path, "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return string(out), exit.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s %v: %v", script, args, err)
	}
	return string(out), 0
}

// runInstalledEmitter starts the installed emitter with a database and a
// target where nothing listens: it serves /healthz and its build on
// /metrics while it waits for the source, its first log line names the
// build, and SIGTERM stops it with exit 0.
func runInstalledEmitter(t *testing.T, bin, root, path, version, commit string) {
	nothing, ops := freePort(t), freePort(t)
	cmd := exec.Command(bin, "run", "--format", "JSON", "--targetUri", "http://"+nothing+"/event/receiver",
		"--bufferCapacity", "10", "--keycloakId", "0", "--datacenterId", "0",
		"--listen", ops, "--checkpoint", filepath.Join(root, "checkpoint.json"), "--logFormat", "json")
	cmd.Env = []string{"PATH=" + path, "KC_EMITTER_DB_URL=postgres://nobody@" + nothing + "/keycloak?sslmode=disable"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		for l := range lines {
			if t.Failed() {
				t.Log(l)
			}
		}
	}()

	select {
	case first := <-lines:
		var rec map[string]any
		if err := json.Unmarshal([]byte(first), &rec); err != nil || rec["msg"] != "kc-event-emitter starting" ||
			rec["version"] != version || rec["go_version"] != runtime.Version() || rec["commit"] != commit {
			t.Errorf("first log line %s (%v), want kc-event-emitter starting with version %s, commit %s, go_version %s",
				first, err, version, commit, runtime.Version())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no log line within 10s")
	}

	var metrics string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if body, err := get("http://" + ops + "/healthz"); err == nil && body == "ok\n" {
			if metrics, err = get("http://" + ops + "/metrics"); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz and /metrics did not answer on %s within 10s", ops)
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := fmt.Sprintf(`kc_event_emitter_build_info{commit=%q,goversion=%q,version=%q} 1`, commit, runtime.Version(), version)
	if !slices.Contains(strings.Split(metrics, "\n"), want) {
		t.Errorf("/metrics lacks %s", want)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("still running 15s after SIGTERM")
	}
}

// freePort is a loopback address nothing listens on (it did a moment ago).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
