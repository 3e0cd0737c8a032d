package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

func TestStateImportFlagsAreCheckedBeforeAnythingIsRead(t *testing.T) {
	env := func(k string) string {
		if k == envStateDBURL {
			return "postgres://u@127.0.0.1/db"
		}
		return ""
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--cluster", "kc"}, "--checkpoint is missing"},
		{[]string{"--checkpoint", "cp.json"}, "--cluster is missing"},
		{[]string{"--checkpoint", "cp.json", "--cluster", "a b"}, `--cluster "a b"`},
		{[]string{"--checkpoint", "cp.json", "--cluster", "kc", "--stateSchema", "X"}, `--stateSchema "X"`},
		{[]string{"--checkpoint", "cp.json", "--cluster", "kc", "--route", "a:b"}, `--route "a:b": want 1..64 letters`},
	} {
		_, err := parseImportFlags(tt.args, env, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, err, tt.want)
		}
	}
	for route, key := range map[string]string{"": "kc", "default": "kc", "signups": "kc:signups"} {
		o, err := parseImportFlags([]string{"--checkpoint", "cp.json", "--cluster", "kc", "--route", route}, env, &bytes.Buffer{})
		if err != nil || o.key != key {
			t.Errorf("--route %q: the state's key %q (%v), want %q", route, o.key, err, key)
		}
	}
	_, err := parseImportFlags([]string{"--checkpoint", "cp.json", "--cluster", "kc"}, func(string) string { return "" }, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "stateDbUrl") {
		t.Errorf("no database: error %v, want it to name stateDbUrl", err)
	}
	var stderr bytes.Buffer
	if code := dispatch([]string{"state", "import", "--cluster", "kc"}, nil, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("bad flags: exit %d, want 2", code)
	}
	if code := dispatch([]string{"state", "export"}, nil, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("unknown state subcommand: exit %d, want 2", code)
	}
}

// TestStateImportMovesAFileCheckpointWithItsJournalIntoTheCluster: a file
// checkpoint with a journal is imported; a ledger opened on the cluster's
// state then holds the same streams, uids and high-water mark; a second
// import is refused unless --force.
func TestStateImportMovesAFileCheckpointWithItsJournalIntoTheCluster(t *testing.T) {
	dbURL := newTestDatabase(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cp.json")
	var n int64
	l, err := checkpoint.Open(ctx, checkpoint.Options{Store: checkpoint.NewFile(path), NextUID: func() int64 { n++; return n }})
	if err != nil {
		t.Fatal(err)
	}
	l.Begin("Event/r", 0)
	if _, _, err := l.Take(ctx, "Event/r", []checkpoint.Item{{ID: "a", Time: 1}, {ID: "b", Time: 2}}, true); err != nil {
		t.Fatal(err)
	}
	if err := l.Save(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Take(ctx, "Event/r", []checkpoint.Item{{ID: "c", Time: 3}}, true); err != nil { // journaled only
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		t.Setenv(envStateDBURL, dbURL)
		var out, errOut bytes.Buffer
		code := dispatch(append([]string{"state", "import", "--checkpoint", path, "--cluster", "kc"}, args...), nil, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "1 streams, 1 journaled uids") {
		t.Fatalf("import: exit %d, %s", code, out)
	}
	store, err := checkpoint.OpenPostgres(ctx, dbURL, "kc_event_emitter", "kc")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	term, err := store.Lead(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	l2, err := checkpoint.Open(ctx, checkpoint.Options{Store: term, NextUID: func() int64 { return 99 }})
	if err != nil {
		t.Fatal(err)
	}
	if l2.MaxUID() != 3 {
		t.Errorf("MaxUID after import = %d, want 3", l2.MaxUID())
	}
	uids, _, err := l2.Take(ctx, "Event/r", []checkpoint.Item{{ID: "a", Time: 1}, {ID: "b", Time: 2}, {ID: "c", Time: 3}}, false)
	if err != nil || len(uids) != 3 || uids[0] != 1 || uids[1] != 2 || uids[2] != 3 {
		t.Fatalf("replayed uids %v (%v), want 1 2 3: the imported state", uids, err)
	}
	if code, out := run(); code != 1 || !strings.Contains(out, "already has a state") {
		t.Fatalf("second import: exit %d, %s; want 1 and a refusal", code, out)
	}
	if code, out := run("--force"); code != 0 {
		t.Fatalf("forced import: exit %d, %s", code, out)
	}
	os.Remove(path)
	os.Remove(checkpoint.JournalPath(path))
	if code, out := run("--force"); code != 1 || !strings.Contains(out, "nothing to import") {
		t.Fatalf("import of a missing file: exit %d, %s", code, out)
	}
}
