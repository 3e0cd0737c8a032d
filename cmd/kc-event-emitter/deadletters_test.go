package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

func TestParseRunFlagsMovesStatusesBetweenTheSidesOfTheAnswerTable(t *testing.T) {
	args := append(minimalArgs[:len(minimalArgs):len(minimalArgs)],
		"--deadLetterStatuses", "400, 404,413,422", "--holdStatuses", "401,403,410", "--deadLetterMaxBytes", "1048576")
	o, err := parseRunFlags(args, env(minimalEnv), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(o.cfg.DeadLetterStatuses, []int{400, 404, 413, 422}) || !slices.Equal(o.cfg.HoldStatuses, []int{401, 403, 410}) ||
		o.cfg.DeadLetterMaxBytes != 1<<20 {
		t.Errorf("dead-letter %v, hold %v, max %d", o.cfg.DeadLetterStatuses, o.cfg.HoldStatuses, o.cfg.DeadLetterMaxBytes)
	}
	o, err = parseRunFlags(minimalArgs, env(minimalEnv), io.Discard)
	if err != nil || !slices.Equal(o.cfg.DeadLetterStatuses, []int{400, 413, 422}) || !slices.Equal(o.cfg.HoldStatuses, []int{401, 403, 404, 410}) {
		t.Errorf("defaults: %v, %v (%v)", o.cfg.DeadLetterStatuses, o.cfg.HoldStatuses, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--deadLetterStatuses", "400,404"}, `--deadLetterStatuses "400,404": 404 is also in --holdStatuses (401,403,404,410)`},
		{[]string{"--holdStatuses", "40x"}, `--holdStatuses "40x": "40x" is not a status`},
		{[]string{"--holdStatuses", "204"}, `--holdStatuses "204": 204: want HTTP statuses 300..599`},
		{[]string{"--deadLetterMaxBytes", "10"}, `--deadLetterMaxBytes "10"`},
	} {
		_, err := parseRunFlags(append(minimalArgs[:len(minimalArgs):len(minimalArgs)], tc.args...), env(minimalEnv), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

// writeDeadLetters writes the dead letters of uids 1..n at path.
func writeDeadLetters(t *testing.T, path string, n int) {
	t.Helper()
	f, err := deadletter.Open(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		rec := deadletter.Record{UID: int64(i), Kind: "Event", ID: fmt.Sprint("e", i), Type: "LOGIN", Time: 1700000000000,
			Status: 401, At: time.Date(2026, 1, 2, 3, 4, i, 0, time.UTC), Body: fmt.Sprintf(`{"uid":%d}`, i)}
		if err := f.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDeadlettersListShowsTheCountTheFirstAndLastAndTheStatuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	writeDeadLetters(t, path, 3)
	var out, errOut strings.Builder
	if code := listMain([]string{"--deadLetterFile", path}, env(nil), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"count      3", "first      2026-01-02T03:04:01Z  uid 1", "last       2026-01-02T03:04:03Z  uid 3", "statuses   401: 3"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("list lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if code := listMain(nil, env(map[string]string{"KC_EMITTER_DEAD_LETTER_FILE": path}), &out, &errOut); code != 0 || !strings.Contains(out.String(), "count      3") {
		t.Errorf("the file from KC_EMITTER_DEAD_LETTER_FILE: exit %d, %s", code, out.String())
	}
}

func TestDeadlettersReplayTakesTheTargetFromTheRunVariablesAndRemovesWhatWasDelivered(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if user != "kc-0" || pass != "right" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get("webhook-id"))
		mu.Unlock()
	}))
	defer srv.Close()
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	writeDeadLetters(t, path, 4)
	vars := map[string]string{"KC_EMITTER_TARGET_URI": srv.URL, "KC_EMITTER_DEAD_LETTER_FILE": path, "HOSTNAME": "kc-0",
		"CT_KEYCLOAK_BRIDGE_SECRET_TOKEN": "s3cret-rotated", "KC_EMITTER_SIGNING_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	var out, errOut strings.Builder
	if code := replayMain(context.Background(), nil, env(vars), &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "401 Unauthorized") || !strings.Contains(out.String(), "left 4") {
		t.Errorf("with the wrong secret: exit %d, stdout %q, stderr %q; want 1, 4 left, the 401 named", code, out.String(), errOut.String())
	}
	if strings.Contains(errOut.String(), "s3cret-rotated") {
		t.Errorf("the secret is in the log: %s", errOut.String())
	}
	vars["CT_KEYCLOAK_BRIDGE_SECRET_TOKEN"] = "right"
	out.Reset()
	errOut.Reset()
	if code := replayMain(context.Background(), nil, env(vars), &out, &errOut); code != 0 || !strings.Contains(out.String(), "delivered 4") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Errorf("the target got webhook-ids %v, want the uids 1..4 in order", got)
	}
	if s, _ := deadletter.Summarize(path); s.Count != 0 {
		t.Errorf("%d dead letters left", s.Count)
	}
}

func TestDeadlettersRefusesABadCommandOrFlagWithStatus2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deadletters"}, "want list or replay"},
		{[]string{"deadletters", "purge"}, "want list or replay"},
		{[]string{"deadletters", "replay", "--deadLetterFile", "x"}, "--targetUri: missing"},
		{[]string{"deadletters", "replay", "--targetUri", "http://127.0.0.1:1/", "--holdStatuses", "401,400"}, "400 is also in --holdStatuses (401,400)"},
		{[]string{"deadletters", "replay", "--targetUri", "kafka://127.0.0.1:1/kc", "--kafkaSaslMechanism", "PLAIN", "--kafkaUsername", "u"},
			"SASL PLAIN needs a password"},
		{[]string{"deadletters", "replay", "--targetUri", "kafka://127.0.0.1:1/kc", "--kafkaCaFile", "ca.pem"}, "--kafkaTls"},
		{[]string{"deadletters", "replay", "--targetUri", "nats://127.0.0.1:1/kc", "--natsUsername", "u"}, "the user name needs a password"},
		{[]string{"deadletters", "replay", "--targetUri", "smtp://127.0.0.1:1", "--mailTo", "a@example.com"}, "flag provided but not defined"},
		{[]string{"deadletters", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"deadletters", "list", "--targetUri", "http://127.0.0.1:1/"}, "flag provided but not defined"},
	} {
		var out, errOut strings.Builder
		if code := dispatch(tc.args, strings.NewReader(""), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}

func TestDeadlettersReplayOfAFilesRouteTakesItsTargetAndFile(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, _ := r.BasicAuth(); user != "kc-0" || pass != "route-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, r.Header.Get("webhook-id"))
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	dead := filepath.Join(dir, "signups.dead.jsonl")
	writeDeadLetters(t, dead, 2)
	cfgPath := filepath.Join(dir, "routes.yaml")
	// The source's and the other route's secrets are not set: a replay
	// needs only its route's.
	file := "keycloakId: 1\ndatacenterId: 0\ndbUrlEnv: KCEE_UNSET_DB_URL\nroutes:\n" +
		"  - name: audit\n    sink: {http: {url: http://127.0.0.1:9/audit, username: a, passwordEnv: KCEE_UNSET_AUDIT_PW}}\n    format: JSON\n" +
		"  - name: signups\n    sink:\n      http:\n        url: " + srv.URL + "\n        username: kc-0\n        passwordEnv: ROUTE_PW\n" +
		"        signingSecretsEnv: ROUTE_SIG\n    format: JSON\n    deadLetterFile: " + dead + "\n"
	if err := os.WriteFile(cfgPath, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"ROUTE_PW": "route-secret", "ROUTE_SIG": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	var out, errOut strings.Builder
	if code := replayMain(context.Background(), []string{"--config", cfgPath, "--route", "signups"}, env(vars), &out, &errOut); code != 0 ||
		!strings.Contains(out.String(), "delivered 2") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	if !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("route signups' target got %v, want the uids 1, 2", got)
	}
	for _, tc := range []struct {
		args []string
		vars map[string]string
		want string
	}{
		{[]string{"--config", cfgPath}, nil, "--config and --route go together"},
		{[]string{"--config", cfgPath, "--route", "mail"}, nil, `--route "mail": ` + cfgPath + ` has no such route (it has audit, signups)`},
		{[]string{"--config", cfgPath, "--route", "signups", "--targetUri", "http://127.0.0.1:9/"}, nil, "--targetUri (or KC_EMITTER_TARGET_URI) with --config"},
		{[]string{"--config", cfgPath, "--route", "signups", "--kafkaTls"}, nil, "--kafkaTls (or KC_EMITTER_KAFKA_TLS) with --config"},
		{[]string{"--config", cfgPath, "--route", "signups"}, map[string]string{"ROUTE_SIG": "whsec_x"}, "passwordEnv: the environment variable ROUTE_PW is not set"},
	} {
		errOut.Reset()
		if tc.vars == nil {
			tc.vars = vars
		}
		if code := replayMain(context.Background(), tc.args, env(tc.vars), &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
