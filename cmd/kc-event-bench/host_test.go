package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// procFixture returns a host reading a proc file system made of files
// (path relative to the mount point: content).
func procFixture(t *testing.T, files map[string]string) host {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h, err := newHost(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHostReadsTheMemoryOfAProcessInBytes(t *testing.T) {
	h := procFixture(t, map[string]string{
		"4242/status": "Name:\tkc-event-emitter\nVmPeak:\t 1862728 kB\nVmHWM:\t   20188 kB\nVmRSS:\t   19000 kB\nThreads:\t9\n",
		"7/status":    "Name:\tkthreadd\nThreads:\t1\n", // a kernel thread: no memory fields
		"8/status":    "Name:\thalf\nVmRSS:\t   19000 kB\n",
	})
	for _, tc := range []struct {
		pid  int
		want memory
		ok   bool
	}{
		{4242, memory{rss: 19000 * 1024, peak: 20188 * 1024}, true},
		{7, memory{}, false},
		{8, memory{}, false},    // no VmHWM
		{4243, memory{}, false}, // no such process
	} {
		got, err := h.memory(tc.pid)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("memory of %d = %+v, %v; want %+v, ok %v", tc.pid, got, err, tc.want, tc.ok)
		}
	}
}

func TestHostCPUSkipsACommandNameWithSpacesAndParentheses(t *testing.T) {
	// Fields 14 and 15 (utime, stime) are 250 and 50 ticks of 10 ms.
	h := procFixture(t, map[string]string{
		"4242/stat": "4242 (kc (event) emitter) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 9 0 123 456 789" +
			" 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		"4243/stat": "4243 (truncated) S 1\n",
	})
	if got, err := h.cpu(4242); err != nil || got != 3*time.Second {
		t.Errorf("cpu = %s, %v; want 3s", got, err)
	}
	if got, err := h.cpu(4243); err == nil {
		t.Errorf("cpu of a short stat line = %s, no error", got)
	}
}

func TestHostReadsTheMachine(t *testing.T) {
	h := procFixture(t, map[string]string{
		"loadavg": "0.42 0.30 0.25 1/123 4567\n",
		"meminfo": "MemTotal:        8148224 kB\nMemFree:          123456 kB\n",
		"cpuinfo": "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC Test Processor\n\n",
	})
	if got := h.loadAverage(); got != 0.42 {
		t.Errorf("load average %v, want 0.42", got)
	}
	if got := h.memTotal(); got != "8 GiB" { // 7.8 GiB
		t.Errorf("memory %q, want 8 GiB", got)
	}
	if runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "386") { // cpuinfo as the kernel of this architecture writes it
		if got := h.cpuModel(); got != "AMD EPYC Test Processor" {
			t.Errorf("CPU model %q", got)
		}
	}
	empty := procFixture(t, nil)
	if l, m, c := empty.loadAverage(), empty.memTotal(), empty.cpuModel(); l != -1 || m != "?" || c != "unknown CPU" {
		t.Errorf("without the files: load %v, memory %q, CPU %q; want -1, ?, unknown CPU", l, m, c)
	}
}

func TestHostReadsThisProcess(t *testing.T) {
	h, err := newHost(procfs.DefaultMountPoint)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := h.memory(os.Getpid()); err != nil || m.rss < 1<<20 || m.peak < m.rss {
		t.Errorf("memory of the test process: %+v, %v; want a few MiB, the peak at least the RSS", m, err)
	}
	// The kernel counts CPU time in ticks of 10 ms: work until one shows.
	deadline := time.Now().Add(10 * time.Second)
	x := uint64(1)
	for {
		cpu, err := h.cpu(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if cpu > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time of the test process still 0 after 10 s of work (%d)", x)
		}
		for range 1 << 20 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
}

func TestHostCPUOfAGroupCountsItsProcessesAndTheChildrenTheyReaped(t *testing.T) {
	// stat fields 14-17: utime, stime, cutime, cstime, in ticks of 10 ms.
	stat := func(pid, comm, times string) string {
		return pid + " (" + comm + ") S 1 1 1 0 -1 4194560 900 0 0 0 " + times + " 20 0 9 0 123 456 789" +
			" 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	}
	h := procFixture(t, map[string]string{
		"10/stat":    stat("10", "postgres", "100 50 300 50"), // the postmaster: 1.5 s, and 3.5 s of exited backends
		"10/cmdline": "/usr/lib/postgresql/15/bin/postgres\x00-D\x00/data\x00",
		"11/stat":    stat("11", "postgres", "200 0 0 0"), // a backend
		"11/cmdline": "postgres: postgres kc 127.0.0.1(5000) idle\x00",
		"20/stat":    stat("20", "java", "400 100 0 0"), // the broker
		"20/cmdline": "java\x00-Xmx512m\x00kafka.Kafka\x00server.properties\x00",
		"30/stat":    stat("30", "java", "900 0 0 0"), // Keycloak: another JVM
		"30/cmdline": "java\x00io.quarkus.bootstrap.runner.QuarkusEntryPoint\x00",
		"40/stat":    stat("40", "psql", "700 0 0 0"),
		"40/cmdline": "psql\x00",
	})
	for _, tc := range []struct {
		name  string
		match func(string, []string) bool
		want  time.Duration
	}{
		{"PostgreSQL", isPostgres, 7 * time.Second},
		{"the broker", isKafkaBroker, 5 * time.Second},
	} {
		if got, _, err := h.cpuOf(tc.match); err != nil || got != tc.want {
			t.Errorf("CPU of %s = %s, %v; want %s", tc.name, got, err, tc.want)
		}
	}
}

func TestHostSettledCPUWaitsForNewProcessesToExitAndCountsThemInTheirParent(t *testing.T) {
	stat := func(pid, times string) string {
		return pid + " (postgres) S 1 1 1 0 -1 4194560 900 0 0 0 " + times + " 20 0 9 0 123 456 789" +
			" 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10/stat", stat("10", "100 0 0 0")) // the postmaster
	write("10/cmdline", "postgres\x00")
	write("12/stat", stat("12", "300 0 0 0")) // a backend of the emitter, not there before
	write("12/cmdline", "postgres: kc\x00")
	h, err := newHost(dir)
	if err != nil {
		t.Fatal(err)
	}
	go func() { // the backend exits; the postmaster reaps it
		time.Sleep(50 * time.Millisecond)
		write("10/stat", stat("10", "100 0 300 0"))
		os.RemoveAll(filepath.Join(dir, "12"))
	}()
	start := time.Now()
	got, err := h.settledCPUOf(isPostgres, map[int]bool{10: true}, 5*time.Second)
	if err != nil || got != 4*time.Second {
		t.Errorf("settled CPU = %s, %v; want 4s: the backend's 3 s in the postmaster's", got, err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond || waited > 4*time.Second {
		t.Errorf("returned after %s: want once the backend is gone, before the timeout", waited)
	}
}
