package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

// TestEmitterRefusesABadConfigurationWithExitStatus2 runs the binary with
// bad flags: it exits 2 before doing anything, with one message naming the
// parameter and the value.
func TestEmitterRefusesABadConfigurationWithExitStatus2(t *testing.T) {
	good := []string{"--format", "JSON", "--targetUri", "http://127.0.0.1:9/x", "--bufferCapacity", "10",
		"--keycloakId", "1", "--datacenterId", "0", "--listen", ""}
	tests := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"missing format", good[2:], nil, "--format is missing"},
		{"keycloakId out of range", with(good, "--keycloakId", "32"), nil, `--keycloakId "32"`},
		{"bad format", with(good, "--format", "xml"), nil, `--format "xml"`},
		{"bad environment value", good, []string{"KC_EMITTER_SOCKET_TIMEOUT_MILLIS=soon"}, "KC_EMITTER_SOCKET_TIMEOUT_MILLIS"},
		{"no database", good, nil, "dbUrl: missing"},
		{"unknown subcommand", []string{"serve"}, nil, `unknown subcommand "serve"`},
		{"mail target without a recipient", []string{"--targetUri", "smtp://127.0.0.1:9", "--bufferCapacity", "10",
			"--keycloakId", "1", "--datacenterId", "0", "--listen", "", "--mailFrom", "k@example.com"}, nil, "--mailTo: missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, "kc-event-emitter", tt.args, tt.env...)
			if code := p.wait(30 * time.Second); code != 2 {
				t.Errorf("exit status %d, want 2; output:\n%s", code, p.output())
			}
			if out := p.output(); !strings.Contains(out, tt.want) {
				t.Errorf("output %q does not contain %q", out, tt.want)
			}
		})
	}
}

// TestEmitterServesHealthReadinessAndMetrics checks the operations
// endpoints: /healthz answers while the source is unreachable and /readyz
// does not; once the source and the target work, /readyz answers and
// /metrics counts the events.
func TestEmitterServesHealthReadinessAndMetrics(t *testing.T) {
	db, dbURL := newKeycloakDB(t, "r-acme")
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	get := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	listen := freeAddr(t)
	bad := start(t, "kc-event-emitter", emitterArgs(rcv.url(), filepath.Join(dir, "bad.json"), listen),
		"KC_EMITTER_DB_URL="+strings.Replace(dbURL, "/kcee_test_", "/no_such_db_", 1))
	waitFor(t, 20*time.Second, "/healthz", func() bool { code, _ := get(listen, "/healthz"); return code == 200 })
	if code, body := get(listen, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "source") {
		t.Errorf("/readyz with an unreachable database = %d %q, want 503 naming the source", code, body)
	}
	if code := bad.stop(10 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM while waiting for the source = %d, want 0", code)
	}

	if _, err := db.Exec(`INSERT INTO event_entity (id, realm_id, event_time, type) VALUES ('e1', 'r-acme', 1700000000000, 'LOGIN')`); err != nil {
		t.Fatal(err)
	}
	em := start(t, "kc-event-emitter", emitterArgs(rcv.url(), filepath.Join(dir, "cp.json"), listen), "KC_EMITTER_DB_URL="+dbURL)
	waitFor(t, 20*time.Second, "/readyz", func() bool { code, _ := get(listen, "/readyz"); return code == 200 })
	waitFor(t, 20*time.Second, "the event delivered", func() bool {
		n, _ := metric(listen, "kc_event_emitter_events_delivered_total")
		return n == 1
	})
	_, body := get(listen, "/metrics")
	for _, series := range []string{`kc_event_emitter_events_read_total{kind="Event",route="default"} 1`, "kc_event_emitter_buffer_depth",
		"kc_event_emitter_delivery_latency_seconds_bucket", "kc_event_emitter_source_lag_seconds",
		"kc_event_emitter_checkpoint_age_seconds", `kc_event_emitter_source_reads_total{result="ok",route="default"}`, "process_resident_memory_bytes"} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	if code := em.stop(10 * time.Second); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}

// TestEmitterVersionAndEncodeSubcommands runs the two other subcommands of
// the binary: version starts with "kc-event-emitter <version>", and encode
// turns an admin API event into the payload a receiver gets.
func TestEmitterVersionAndEncodeSubcommands(t *testing.T) {
	v := start(t, "kc-event-emitter", []string{"version"})
	if code := v.wait(10 * time.Second); code != 0 || !strings.HasPrefix(v.output(), "kc-event-emitter ") {
		t.Errorf("version: exit %d, output %q", code, v.output())
	}
	in := filepath.Join(t.TempDir(), "events.jsonl")
	line := `{"id":"e1","time":1700000000000,"type":"LOGIN","realmId":"r1","clientId":"app","userId":"u1","ipAddress":"127.0.0.1","details":{"username":"alice"}}`
	if err := os.WriteFile(in, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), "kc-event-emitter"), "encode", "--format", "JSON", "--keycloakId", "3", "--datacenterId", "1")
	f, _ := os.Open(in)
	defer f.Close()
	cmd.Stdin = f
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	rec, _, err := emitter.DecodePayload(bytes.TrimSpace(out), emitter.Numbering201)
	if err != nil {
		t.Fatalf("encode wrote %q: %v", out, err)
	}
	if k, dc := emitter.UIDNode(rec.UID()); rec.ID() != "e1" || rec.TypeName() != "LOGIN" || k != 3 || dc != 1 {
		t.Errorf("encode wrote %q: id %q type %q keycloakId %d datacenterId %d", out, rec.ID(), rec.TypeName(), k, dc)
	}
}
