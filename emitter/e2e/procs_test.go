package e2e

// Helpers of the tests that run the built binaries as child processes: the
// emitter, the reference receiver, and their logs, stores and metrics.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds kc-event-emitter, kc-event-receiver and the seed (the
// Keycloak traffic generator of scripts/seed) once per test run and returns
// the folder holding them.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "kcee-bin-")
		if buildErr != nil {
			return
		}
		root := testenv.ModuleRoot(t)
		for _, pkg := range []string{"./cmd/kc-event-emitter", "./cmd/kc-event-receiver", "./scripts/seed"} {
			cmd := exec.Command("go", "build", "-o", binDir, pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// proc is a child process whose output goes to a log file.
type proc struct {
	t     testing.TB
	name  string
	args  []string
	env   []string
	cmd   *exec.Cmd
	log   string
	done  chan struct{}
	err   error
	quiet bool // replaced by restart: its log is not shown
}

// cleanEnv is the environment of the tests without the variables that
// configure the binaries, so that only what a test sets applies.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "KC_EMITTER_") || strings.HasPrefix(kv, "KC_RECEIVER_") ||
			strings.HasPrefix(kv, "CT_KEYCLOAK_BRIDGE_SECRET_TOKEN=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// start runs binary name of binaries() with args and env (added to the
// clean environment); the process is killed when the test ends.
func start(t testing.TB, name string, args []string, env ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Env = cleanEnv(env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, args: args, env: env, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() && !p.quiet {
			t.Logf("%s log (last lines):\n%s", name, tail(p.output(), 40))
		}
	})
	return p
}

// kill ends the process with SIGKILL (kill -9) and waits for it.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// restart kills the process with SIGKILL and starts it again with the same
// arguments and environment.
func (p *proc) restart() *proc {
	p.t.Helper()
	p.kill()
	p.quiet = true
	return start(p.t, p.name, p.args, p.env...)
}

// stop sends SIGTERM and returns the exit status.
func (p *proc) stop(timeout time.Duration) int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(timeout)
}

// wait waits for the process to exit by itself and returns its status.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("%s did not exit within %s; log:\n%s", p.name, timeout, tail(p.output(), 40))
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// receiverProc is a running kc-event-receiver storing to a JSON-lines file.
type receiverProc struct {
	*proc
	addr  string
	store string
}

// startReceiver starts the reference receiver on addr ("" picks a port).
func startReceiver(t testing.TB, addr, store string, extra ...string) *receiverProc {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	args := append([]string{"--listen", addr, "--store", "jsonl:" + store, "--sync=false", "--quiet", "--every", "1h"}, extra...)
	p := start(t, "kc-event-receiver", args)
	waitFor(t, 20*time.Second, "the receiver to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return &receiverProc{proc: p, addr: addr, store: store}
}

func (r *receiverProc) url() string { return "http://" + r.addr + "/event/receiver" }

// received is one line of the receiver's JSON-lines store.
type received struct {
	UID     int64           `json:"uid"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Time    int64           `json:"time"`
	Type    string          `json:"type"`
	RealmID string          `json:"realmId"`
	Payload json.RawMessage `json:"payload"`
}

// readStore reads every row of a JSON-lines store (a missing file is empty).
func readStore(t testing.TB, path string) []received {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var rows []received
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r received
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			break // a line being written
		}
		rows = append(rows, r)
	}
	return rows
}

// countLines counts the complete lines of a file cheaply.
func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte{'\n'})
}

// metric returns the sum of the samples of a Prometheus series name (all
// label values) served on addr's /metrics, and false when it cannot be read.
func metric(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, true
}
