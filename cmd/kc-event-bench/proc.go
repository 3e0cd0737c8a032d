package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// buildEmitter builds ./cmd/kc-event-emitter into dir and returns its path.
func buildEmitter(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "kc-event-emitter")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kc-event-emitter")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kc-event-emitter: %w\n%s", err, out)
	}
	return bin, nil
}

// emitterRun is how one emitter process is started.
type emitterRun struct {
	bin         string
	dbURL       string
	target      string
	password    string
	format      string
	overflow    string
	buffer      int
	concurrency int
	once        bool
	from        string // "beginning" or "now"
	realms      string // --realms; empty tails every realm
	dir         string // for the checkpoint, the dead-letter file and the log
	stderr      io.Writer
}

// emitterProc is a running emitter.
type emitterProc struct {
	cmd     *exec.Cmd
	metrics string // URL of /metrics
	log     string
	done    chan struct{}
	err     error
}

// start runs the emitter. The database URL and the target's password go
// through the environment, as in production.
func (e emitterRun) start() (*emitterProc, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := []string{"run",
		"--format", e.format, "--targetUri", e.target, "--bufferCapacity", strconv.Itoa(e.buffer),
		"--keycloakId", "1", "--datacenterId", "1", "--overflow", e.overflow,
		"--concurrency", strconv.Itoa(e.concurrency), "--from", e.from,
		"--checkpoint", filepath.Join(e.dir, "checkpoint.json"),
		"--deadLetterFile", filepath.Join(e.dir, "dead-letter.jsonl"),
		"--listen", listen, "--logLevel", "WARN"}
	if e.once {
		args = append(args, "--once")
	}
	if e.realms != "" {
		args = append(args, "--realms", e.realms)
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(cleanEnv(), "KC_EMITTER_DB_URL="+e.dbURL, "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN="+e.password,
		"HOSTNAME=kc-event-bench")
	logPath := filepath.Join(e.dir, "emitter.log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout = f
	cmd.Stderr = f
	if e.stderr != nil {
		cmd.Stderr = io.MultiWriter(f, e.stderr)
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", e.bin, err)
	}
	p := &emitterProc{cmd: cmd, metrics: "http://" + listen + "/metrics", log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// cleanEnv is the environment without the variables that configure the
// emitter, so that only what the harness sets applies.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KC_EMITTER_") || strings.HasPrefix(kv, "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN=") ||
			strings.HasPrefix(kv, "HOSTNAME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// exited tells whether the process has ended.
func (p *emitterProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit (SIGKILL after timeout).
func (p *emitterProc) stop(timeout time.Duration) error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("the emitter did not stop within %s after SIGTERM", timeout)
	}
	return p.exitErr()
}

// wait waits for the process to exit by itself.
func (p *emitterProc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.exitErr()
	case <-ctx.Done():
		p.cmd.Process.Kill()
		<-p.done
		return ctx.Err()
	}
}

func (p *emitterProc) exitErr() error {
	if p.err != nil {
		return fmt.Errorf("kc-event-emitter: %w; log %s:\n%s", p.err, p.log, tailFile(p.log, 20))
	}
	return nil
}

// usage is the CPU time and peak memory of an exited process.
type usage struct {
	cpu    time.Duration // user + system
	maxRSS int64         // bytes
}

// usage returns what the kernel accounted to the exited process.
func (p *emitterProc) usage() usage {
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return usage{}
	}
	return usage{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		maxRSS: ru.Maxrss * 1024, // Linux: kilobytes
	}
}

// procStatus returns a field of /proc/<pid>/status in bytes (VmHWM, VmRSS).
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return statusField(f, field)
}

// statusField reads "Field:   1234 kB" from a /proc status file.
func statusField(r io.Reader, field string) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected %q", field, rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", field, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("no %s in the status file", field)
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user + system time a live process used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return statCPU(string(b))
}

// statCPU reads utime and stime (fields 14 and 15) of a /proc stat line;
// the command name in parentheses may hold spaces.
func statCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat %q: no command name", stat)
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, fmt.Errorf("stat %q: %d fields after the name, want 13 or more", stat, len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// scrape returns the sum over all label sets of each metric of a /metrics
// page whose name is in names.
func scrape(ctx context.Context, url string, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseMetrics(resp.Body, names...)
}

// parseMetrics sums the samples of the named metrics in the Prometheus text
// format; a name that has no sample is missing from the map.
func parseMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		end := strings.IndexAny(line, "{ ")
		if end < 0 || !want[line[:end]] {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			rest = rest[strings.LastIndexByte(rest, '}')+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[line[:end]] += v
	}
	return out, sc.Err()
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
