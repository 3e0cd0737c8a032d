package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
)

const stateUsage = `Usage: kc-event-emitter state import --checkpoint FILE --cluster NAME [--route ROUTE] [--force] [flags]

Moves a file checkpoint (FILE and its journal FILE.journal) into the state of
cluster NAME in PostgreSQL, so that a single emitter can switch to --cluster
without replaying or skipping events: stop it, import, start the cluster's
emitters. With --route, FILE is the state of that route of a configuration
file (<checkpoint>.<route>) and becomes the route's state in the cluster; the
route named default is the cluster's own. A cluster (or route) that already
has a state is left alone unless --force;
an import raises the cluster's epoch, so that a leader running meanwhile is
refused its next write and stops.

The database is KC_EMITTER_STATE_DB_URL or --stateDbUrlFile, else Keycloak's
(KC_EMITTER_DB_URL or --dbUrlFile), as for run. Every flag can also be set by
KC_EMITTER_<NAME>.

Flags:
`

// stateMain is the state subcommand: 0 when done, 1 when the import failed,
// 2 on a bad flag.
func stateMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "import" {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
			fmt.Fprint(stdout, stateUsage)
			return 0
		}
		fmt.Fprint(stderr, "kc-event-emitter state: want the subcommand import\n", stateUsage)
		return 2
	}
	o, err := parseImportFlags(args[1:], os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-emitter state import:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	msg, err := importState(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-emitter state import:", err)
		return 1
	}
	fmt.Fprintln(stdout, msg)
	return 0
}

type importOptions struct {
	checkpoint, cluster, schema, dbURL string
	key                                string // the state's key: the cluster, or <cluster>:<route>
	force                              bool
}

func parseImportFlags(args []string, getenv func(string) string, stderr io.Writer) (importOptions, error) {
	var o importOptions
	var stateFile, dbFile string
	fs := flag.NewFlagSet("kc-event-emitter state import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, stateUsage); fs.PrintDefaults() }
	fs.StringVar(&o.checkpoint, "checkpoint", "", "the checkpoint `file` to import (its journal is FILE.journal)")
	fs.StringVar(&o.cluster, "cluster", "", "the cluster `name` whose state it becomes")
	fs.StringVar(&o.schema, "stateSchema", emitter.DefaultConfig().StateSchema, "PostgreSQL `schema` of the cluster's state")
	fs.StringVar(&stateFile, "stateDbUrlFile", "", "`file` holding the PostgreSQL URL of the state (else "+envStateDBURL+")")
	fs.StringVar(&dbFile, "dbUrlFile", "", "`file` holding the URL of Keycloak's database, the default state database (else "+envDBURL+")")
	var routeName string
	fs.StringVar(&routeName, "route", "", "the `route` (of a configuration file) whose state FILE is; empty or default: the cluster's own")
	fs.BoolVar(&o.force, "force", false, "replace a state the cluster already has")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if _, err := envflag.Apply(fs, envPrefix, getenv); err != nil {
		return o, err
	}
	if o.checkpoint == "" {
		return o, errors.New("--checkpoint is missing: the file checkpoint to import")
	}
	cfg := emitter.DefaultConfig()
	cfg.Cluster, cfg.StateSchema = o.cluster, o.schema
	var err error
	if cfg.StateDatabaseURL, err = envflag.Secret(getenv, stateFile, "stateDbUrlFile", envStateDBURL); err != nil {
		return o, err
	}
	if cfg.DatabaseURL, err = envflag.Secret(getenv, dbFile, "dbUrlFile", envDBURL); err != nil {
		return o, err
	}
	if o.cluster == "" {
		return o, errors.New("--cluster is missing: the cluster name whose state it becomes")
	}
	if err := validateClusterFlags(cfg); err != nil {
		return o, fmt.Errorf("--%w", err)
	}
	o.dbURL = cfg.StateURL()
	o.key = o.cluster
	if routeName != "" {
		if err := emitter.CheckRouteName(routeName); err != nil {
			return o, fmt.Errorf("--route %q: %w", routeName, err)
		}
		o.key = cfg.StateKey(routeName)
	}
	return o, nil
}

// validateClusterFlags checks the cluster settings of cfg the way run
// does, without the settings of a run.
func validateClusterFlags(cfg emitter.Config) error {
	cfg.Format, cfg.TargetURI = emitter.FormatJSON, "http://127.0.0.1/"
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = cfg.StateDatabaseURL
	}
	err := cfg.Validate()
	var fe *emitter.FieldError
	if errors.As(err, &fe) && fe.Field == "dbUrl" {
		return &emitter.FieldError{Field: "stateDbUrl", Err: errors.New("missing: set KC_EMITTER_STATE_DB_URL, --stateDbUrlFile, KC_EMITTER_DB_URL or --dbUrlFile")}
	}
	return err
}

// importState reads and checks the file checkpoint, then moves it in.
func importState(ctx context.Context, o importOptions) (string, error) {
	snap, journal, err := checkpoint.NewFile(o.checkpoint).Load(ctx)
	if err != nil {
		return "", err
	}
	if len(bytes.TrimSpace(snap)) == 0 && len(bytes.TrimSpace(journal)) == 0 {
		return "", fmt.Errorf("checkpoint %q: no such file, or empty: nothing to import", o.checkpoint)
	}
	st, err := checkpoint.DecodeState(snap)
	if err != nil {
		return "", fmt.Errorf("checkpoint %q: %w", o.checkpoint, err)
	}
	entries, err := checkpoint.DecodeJournal(journal)
	if err != nil {
		return "", fmt.Errorf("checkpoint %q: %w", checkpoint.JournalPath(o.checkpoint), err)
	}
	store, err := checkpoint.OpenPostgres(ctx, o.dbURL, o.schema, o.key)
	if err != nil {
		return "", err
	}
	defer store.Close()
	if err := store.Import(ctx, snap, journal, o.force); err != nil {
		return "", err
	}
	return fmt.Sprintf("imported %q (%d streams, %d journaled uids) into %v", o.checkpoint, len(st.Streams), len(entries), store), nil
}
