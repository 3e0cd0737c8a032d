package main

import (
	"context"
	"fmt"
	"io"
	"net"
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
	extra       []string // more flags
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
	args = append(args, e.extra...)
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

// pid is the process id of the emitter.
func (p *emitterProc) pid() int { return p.cmd.Process.Pid }

// waitReady waits until the emitter answers /metrics and has read its
// source once.
func waitReady(ctx context.Context, p *emitterProc) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if p.exited() {
			if err := p.exitErr(); err != nil {
				return err
			}
			return fmt.Errorf("kc-event-emitter exited before it was ready; log %s:\n%s", p.log, tailFile(p.log, 20))
		}
		m, err := scrape(ctx, p.metrics, "kc_event_emitter_source_reads_total")
		if err == nil && m["kc_event_emitter_source_reads_total"] > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kc-event-emitter not ready after a minute (%v); log %s:\n%s", err, p.log, tailFile(p.log, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
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
