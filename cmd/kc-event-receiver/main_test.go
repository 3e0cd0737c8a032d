package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test run this binary's main in a child process.
func TestMain(m *testing.M) {
	if os.Getenv("KC_RECEIVER_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const loginJSON = `{"time":1760000000000,"type":"LOGIN","realmId":"r1","clientId":"c","userId":"u","sessionId":null,"ipAddress":"127.0.0.1","error":null,"details":{"username":"alice"},"uid":4242,"id":"kc-1"}`

// child is the receiver running as a separate process.
type child struct {
	cmd    *exec.Cmd
	url    string
	stdout *bytes.Buffer
	stderr *bytes.Buffer // read it only after <-done
	done   chan struct{} // closed once the process exited and its output was read
	exit   error         // cmd.Wait's result, set before done is closed
}

// startChild runs the receiver with args and env, and waits until it
// listens.
func startChild(t testing.TB, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "KC_RECEIVER_TEST_RUN_MAIN=1"), env...)
	c := &child{cmd: cmd, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = c.stdout
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); <-c.done })
	addr := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		re := regexp.MustCompile(`msg=listening addr=(\S+)`)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			c.stderr.WriteString(sc.Text() + "\n")
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		pw.Close()
		<-scanned
		c.exit = err
		close(c.done)
	}()
	select {
	case a := <-addr:
		c.url = "http://" + a
	case <-c.done:
		t.Fatalf("receiver exited (%v) before listening; stderr: %s", c.exit, c.stderr)
	case <-time.After(10 * time.Second):
		t.Fatal("receiver did not report listening within 10s")
	}
	return c
}

func post(t *testing.T, url, user, pass, body string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestBinaryReceivesStoresOnceAndStopsOnSIGTERM runs the receiver as a
// process, as the end-to-end tests and an operator do.
func TestBinaryReceivesStoresOnceAndStopsOnSIGTERM(t *testing.T) {
	store := filepath.Join(t.TempDir(), "events.jsonl")
	c := startChild(t, []string{"KC_RECEIVER_PASSWORD=pw", "KC_RECEIVER_STORE=jsonl:" + store}, "--max-body-bytes", "1000")
	ep := c.url + "/event/receiver"
	steps := []struct {
		name       string
		url        string
		user, pass string
		body       string
		want       int
	}{
		{"first delivery is stored", ep, "pod-1", "pw", loginJSON, 200},
		{"redelivery is acknowledged", ep, "pod-2", "pw", loginJSON, 200},
		{"wrong password", ep, "pod-1", "nope", loginJSON, 401},
		{"not an event", ep, "pod-1", "pw", `{"uid":`, 400},
		{"too large", ep, "pod-1", "pw", strings.Repeat(" ", 1001), 413},
		{"another path", c.url + "/other", "pod-1", "pw", loginJSON, 404},
	}
	for _, s := range steps {
		if got := post(t, s.url, s.user, s.pass, s.body); got != s.want {
			t.Errorf("%s: status %d, want %d", s.name, got, s.want)
		}
	}
	if resp, err := http.Get(ep); err != nil || resp.StatusCode != 405 {
		t.Errorf("GET on the endpoint: %v %v, want 405", resp.StatusCode, err)
	}
	resp, err := http.Get(c.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("receiver still running 10s after SIGTERM")
	}
	if c.exit != nil {
		t.Fatalf("after SIGTERM: %v; stderr:\n%s", c.exit, c.stderr)
	}
	out := c.stdout.String()
	for _, want := range []string{
		"2025-10-09T08:53:20.000Z Event LOGIN realm=r1 uid=4242 id=kc-1 format=JSON stored\n",
		"2025-10-09T08:53:20.000Z Event LOGIN realm=r1 uid=4242 id=kc-1 format=JSON duplicate\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q; got:\n%s", want, out)
		}
	}
	if !strings.Contains(c.stderr.String(), "msg=stopped received=2 stored=1 duplicates=1") {
		t.Errorf("stderr lacks the final counts:\n%s", c.stderr)
	}
	if strings.Contains(c.stderr.String(), "pw") {
		t.Errorf("stderr shows the password:\n%s", c.stderr)
	}
	data, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), `"uid":4242,`); n != 2 { // the row's uid and the payload's
		t.Errorf("store holds uid 4242 in %d places, want one line:\n%s", n, data)
	}
	if lines := strings.Count(string(data), "\n"); lines != 1 {
		t.Errorf("store has %d lines, want 1", lines)
	}
}

func TestBinaryRefusesBadConfigWithExitCode2(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		want   string
		hidden string
	}{
		{"unknown store kind", []string{"--store", "kafka:x"}, `--store kind is "kafka"`, ""},
		{"a store URL with a password on the command line", []string{"--store", "postgres:postgres://kc:s3cret@127.0.0.1/kc"},
			"put the URL in KC_RECEIVER_STORE_URL or in a file named by --store-url-file", "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "KC_RECEIVER_TEST_RUN_MAIN=1")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want code 2; output %s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output %q does not contain %q", out, tc.want)
			}
			if tc.hidden != "" && strings.Contains(string(out), tc.hidden) {
				t.Fatalf("output %q shows %q", out, tc.hidden)
			}
		})
	}
}
