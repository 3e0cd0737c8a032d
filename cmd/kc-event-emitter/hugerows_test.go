package main

import (
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// hugeRun is one run of the built emitter with --once over a database of
// admin events with huge representations.
type hugeRun struct {
	delivered int   // events the target took
	maxBody   int   // largest body it took
	peakKiB   int64 // the emitter's peak resident memory (VmHWM, ru_maxrss)
	exit      int
	stderr    string
}

// buildEmitter builds this command into a temporary directory.
func buildEmitter(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "kc-event-emitter")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// hugeRowsDB returns the URL of a new database with Keycloak's schema and n
// admin events of one realm whose representations are size bytes of JSON
// text each.
func hugeRowsDB(tb testing.TB, n, size int) string {
	tb.Helper()
	url := testenv.NewDatabase(tb)
	testenv.LoadSchema(tb, url, "26.7.3")
	db, err := sql.Open("postgres", url)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	unit := `{"name":"x","v":1},` // 19 bytes, four quotes each
	for _, q := range []string{
		`INSERT INTO realm (id, name) VALUES ('r1', 'huge')`,
		fmt.Sprintf(`INSERT INTO admin_event_entity (id, realm_id, admin_event_time, operation_type, resource_type, representation)
			SELECT 'huge-' || lpad(g::text, 3, '0'), 'r1', 1700000000000 + g, 'UPDATE', 'REALM', '[' || repeat('%s', %d) || '{}]'
			FROM generate_series(1, %d) g`, unit, size/len(unit), n),
	} {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	return url
}

// runHuge runs bin with --once against dbURL and a local target that
// answers each request after delay, with extra flags, and returns what
// happened.
func runHuge(tb testing.TB, bin, dbURL string, delay time.Duration, extra ...string) hugeRun {
	tb.Helper()
	var mu sync.Mutex
	var res hugeRun
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay) // a slow target: the buffer fills
		n, _ := io.Copy(io.Discard, r.Body)
		mu.Lock()
		res.delivered++
		res.maxBody = max(res.maxBody, int(n))
		mu.Unlock()
	}))
	defer target.Close()
	dir := tb.TempDir()
	args := append([]string{"--format", "JSON", "--targetUri", target.URL, "--bufferCapacity", "10000",
		"--keycloakId", "1", "--datacenterId", "1", "--from", "beginning", "--once", "--listen", "",
		"--checkpoint", filepath.Join(dir, "cp.json"), "--deadLetterFile", filepath.Join(dir, "dead.jsonl")}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"KC_EMITTER_DB_URL=" + dbURL, "PATH=" + os.Getenv("PATH")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var hwm int64
	timeout := time.After(5 * time.Minute)
	for waiting := true; waiting; {
		select {
		case err := <-done:
			waiting = false
			if err != nil && cmd.ProcessState == nil {
				tb.Fatal(err)
			}
		case <-timeout:
			cmd.Process.Kill()
			<-done
			tb.Fatalf("emitter --once did not end within 5 minutes; stderr:\n%s", stderr.String())
		case <-time.After(20 * time.Millisecond):
			if v := vmHWM(cmd.Process.Pid); v > hwm {
				hwm = v
			}
		}
	}
	res.exit = cmd.ProcessState.ExitCode()
	res.stderr = stderr.String()
	res.peakKiB = hwm
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > res.peakKiB {
		res.peakKiB = ru.Maxrss // the kernel's high-water mark at exit, in KiB on Linux
	}
	return res
}

// vmHWM returns the VmHWM of process pid in KiB, 0 when unreadable.
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return v
		}
	}
	return 0
}

// The emitter drains thirty admin events of 8 MiB each (the representation
// of a huge realm) with --once under its default soft memory limit: every
// event arrives whole and the run ends. The peak memory it takes is a
// figure of BenchmarkHugeRowsPeakMemory, not a condition here.
func TestOnceDeliversThirtyEightMiBAdminEventsAndEnds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command and moves 240 MiB")
	}
	url := hugeRowsDB(t, 30, 8<<20)
	res := runHuge(t, buildEmitter(t), url, 0)
	if res.exit != 0 {
		t.Fatalf("exit status %d, want 0; stderr:\n%s", res.exit, res.stderr)
	}
	if res.delivered != 30 {
		t.Fatalf("target took %d events, want 30; stderr:\n%s", res.delivered, res.stderr)
	}
	if res.maxBody < 8<<20 {
		t.Errorf("largest body %d bytes, want the whole 8 MiB representation in it", res.maxBody)
	}
	t.Logf("peak RSS %.1f MiB", float64(res.peakKiB)/1024)
}

// BenchmarkHugeRowsPeakMemory reports the emitter's peak resident memory
// while it drains thirty 8 MiB admin events with --once. KCEE_HUGE_FLAGS:
// more flags, space-separated; KCEE_HUGE_BIN: another build to measure
// (an older commit's, for a before/after figure); KCEE_HUGE_DELAY: how long
// the target takes per event (a slow target fills the buffer);
// KCEE_HUGE_ROWS and KCEE_HUGE_MIB: other rows and sizes.
func BenchmarkHugeRowsPeakMemory(b *testing.B) {
	rows, mib := 30, 8
	if v := os.Getenv("KCEE_HUGE_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("KCEE_HUGE_MIB"); v != "" {
		mib, _ = strconv.Atoi(v)
	}
	url := hugeRowsDB(b, rows, mib<<20)
	bin := os.Getenv("KCEE_HUGE_BIN")
	if bin == "" {
		bin = buildEmitter(b)
	}
	extra := strings.Fields(os.Getenv("KCEE_HUGE_FLAGS"))
	var delay time.Duration
	if d := os.Getenv("KCEE_HUGE_DELAY"); d != "" {
		var err error
		if delay, err = time.ParseDuration(d); err != nil {
			b.Fatalf("KCEE_HUGE_DELAY %q: %v", d, err)
		}
	}
	b.ResetTimer()
	var peak int64
	for range b.N {
		res := runHuge(b, bin, url, delay, extra...)
		if res.exit != 0 || res.delivered != rows {
			b.Fatalf("exit %d, %d delivered; stderr:\n%s", res.exit, res.delivered, res.stderr)
		}
		peak = max(peak, res.peakKiB)
	}
	b.ReportMetric(float64(peak)/1024, "peak-MiB")
}
