package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

// envPrefix prefixes the environment variable of every flag:
// --signing-secret-file is KC_RECEIVER_SIGNING_SECRET_FILE.
const envPrefix = "KC_RECEIVER_"

// Secrets that come only from the environment (or the matching file flag).
// The store's connection URL is one: it may hold a password.
const (
	envPassword      = envPrefix + "PASSWORD"
	envSigningSecret = envPrefix + "SIGNING_SECRET"
	envStoreURL      = envPrefix + "STORE_URL"
)

// config is the receiver's configuration after flags, environment and
// secret files were read.
type config struct {
	Listen       string
	Path         string
	Store        storeSpec
	Numbering    string
	Username     string
	Password     string
	Secrets      [][]byte
	Tolerance    time.Duration
	MaxBodyBytes int64
	MaxUnauth    int64 // bytes of unauthenticated bodies held at once; 0: the handler's default
	NoSync       bool
	Quiet        bool
	Every        time.Duration
	LogLevel     string
}

// storeSpec is the parsed --store value, with the connection URL of a
// postgres store.
type storeSpec struct {
	Kind string // "jsonl" or "postgres"
	Arg  string // the file path or the connection URL
}

func (s storeSpec) String() string {
	if s.Kind == "postgres" {
		return "postgres" // the URL may hold a password
	}
	return s.Kind + ":" + s.Arg
}

const usage = `kc-event-receiver receives the events kc-event-emitter (or the original
Java event-emitter) POSTs, checks their credentials and signature, decodes both
the JSON and the FLATBUFFER format, stores each uid once and prints a line per event.

Every flag can also be set by the environment variable KC_RECEIVER_<FLAG>
(upper case, '-' as '_'); a flag on the command line wins. Secrets are never
flags: the Basic auth password comes from KC_RECEIVER_PASSWORD or
--password-file, the Standard Webhooks secrets from KC_RECEIVER_SIGNING_SECRET
(space-separated) or --signing-secret-file (one per line), and the PostgreSQL
connection URL of --store postgres (it may hold a password) from
KC_RECEIVER_STORE_URL or --store-url-file.

Without Basic auth, a body must be read before its signature can be checked:
the bodies of requests not yet authenticated hold at most
--max-unauthenticated-bytes at once (others wait, then get 503), so clients
without credentials cannot make the receiver's memory grow past it.

kc-event-receiver version (or --version) prints the version, the commit and
the Go version.

Flags:
`

// parseConfig reads args and the environment (through getenv).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var (
		c                  config
		store              string
		passFile, sigFile  string
		storeURLFile       string
		maxBody, maxUnauth int64
		sync               bool
	)
	fs := flag.NewFlagSet("kc-event-receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8080", "`address` to listen on")
	fs.StringVar(&c.Path, "path", "/event/receiver", "URL `path` that accepts events (the original receiver's endpoint); \"/\" accepts every path")
	fs.StringVar(&store, "store", "", "where to keep events: `jsonl:FILE`, or postgres (table "+receiver.PostgresTable+", created if missing) at the URL of "+envStoreURL+" or --store-url-file; empty keeps nothing, only prints")
	fs.StringVar(&storeURLFile, "store-url-file", "", "`file` holding the PostgreSQL connection URL (postgres://... or key=value) of --store postgres (else "+envStoreURL+")")
	fs.StringVar(&c.Numbering, "numbering", "20.1", "FLATBUFFER enum `numbering` of the sender: 20.1, bridge or 26")
	fs.StringVar(&c.Username, "username", "", "Basic auth user `name` to require; empty with a password accepts any name (the original sends its HOSTNAME)")
	fs.StringVar(&passFile, "password-file", "", "`file` holding the Basic auth password (else "+envPassword+"); no password: no Basic auth")
	fs.StringVar(&sigFile, "signing-secret-file", "", "`file` of Standard Webhooks secrets (whsec_..., one per line) to verify signatures with (else "+envSigningSecret+")")
	fs.DurationVar(&c.Tolerance, "tolerance", receiver.DefaultTolerance, "largest `age` (either way) of webhook-timestamp")
	envflag.BytesVar(fs, &maxBody, "max-body-bytes", receiver.DefaultMaxBodyBytes, "largest body accepted, in `bytes`; larger ones get 413")
	envflag.BytesVar(fs, &maxUnauth, "max-unauthenticated-bytes", 0, fmt.Sprintf("most `bytes` of bodies held at once for requests not yet authenticated (no Basic auth configured); 0 means %d × --max-body-bytes", receiver.DefaultUnauthenticatedBodies))
	fs.BoolVar(&sync, "sync", true, "acknowledge an event only once it is on disk (fsync, synchronous_commit); --sync=false is for benchmarks: a crash of the machine can lose acknowledged events")
	fs.BoolVar(&c.Quiet, "quiet", false, "print a counter every --every instead of a line per event")
	fs.DurationVar(&c.Every, "every", 5*time.Second, "`interval` of the --quiet counter")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (secrets are never arguments: see -help)", fs.Arg(0))
	}
	if _, err := envflag.Apply(fs, envPrefix, getenv); err != nil {
		return config{}, err
	}
	c.MaxBodyBytes, c.MaxUnauth = maxBody, maxUnauth
	c.NoSync = !sync
	var err error
	if c.Store, err = parseStore(store); err != nil {
		return config{}, err
	}
	storeURL, err := envflag.Secret(getenv, storeURLFile, "store-url-file", envStoreURL)
	if err != nil {
		return config{}, err
	}
	storeURL = strings.TrimSpace(storeURL)
	switch {
	case c.Store.Kind == "postgres" && storeURL == "":
		return config{}, fmt.Errorf("--store postgres needs the connection URL in %s or in the file named by --store-url-file", envStoreURL)
	case c.Store.Kind != "postgres" && storeURL != "":
		return config{}, fmt.Errorf("a PostgreSQL URL is set (%s or --store-url-file) but --store is %q, not postgres", envStoreURL, store)
	}
	if c.Store.Kind == "postgres" {
		c.Store.Arg = storeURL
	}
	if c.Password, err = envflag.Secret(getenv, passFile, "password-file", envPassword); err != nil {
		return config{}, err
	}
	if c.Username != "" && c.Password == "" {
		return config{}, fmt.Errorf("--username is %q but no password is set (%s or --password-file)", c.Username, envPassword)
	}
	sigs, err := envflag.Secret(getenv, sigFile, "signing-secret-file", envSigningSecret)
	if err != nil {
		return config{}, err
	}
	for i, s := range strings.Fields(sigs) {
		key, err := receiver.ParseSecret(s)
		if err != nil {
			return config{}, fmt.Errorf("signing secret #%d: %w", i+1, err)
		}
		c.Secrets = append(c.Secrets, key)
	}
	switch {
	case !strings.HasPrefix(c.Path, "/"):
		return config{}, fmt.Errorf("--path is %q, want it to start with /", c.Path)
	case strings.ContainsAny(c.Path, " \t{}"):
		return config{}, fmt.Errorf("--path is %q, want a plain path without blanks or braces", c.Path)
	case c.Path == "/healthz":
		return config{}, errors.New("--path is /healthz, which the health check answers")
	case c.MaxBodyBytes <= 0:
		return config{}, fmt.Errorf("--max-body-bytes is %d, want > 0", c.MaxBodyBytes)
	case c.MaxUnauth < 0 || (c.MaxUnauth > 0 && c.MaxUnauth < c.MaxBodyBytes):
		return config{}, fmt.Errorf("--max-unauthenticated-bytes is %d, want 0 or at least --max-body-bytes (%d)", c.MaxUnauth, c.MaxBodyBytes)
	case c.Tolerance <= 0:
		return config{}, fmt.Errorf("--tolerance is %s, want > 0", c.Tolerance)
	case c.Every <= 0:
		return config{}, fmt.Errorf("--every is %s, want > 0", c.Every)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return config{}, err
	}
	if _, err := newDecoder(c.Numbering); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseStore parses a --store value: jsonl:FILE, postgres or empty. The
// PostgreSQL URL is refused here, without being quoted: on the command line
// every local user sees it (ps), and it may hold a password.
func parseStore(s string) (storeSpec, error) {
	kind, arg, ok := strings.Cut(s, ":")
	switch {
	case s == "":
		return storeSpec{}, nil
	case s == "postgres":
		return storeSpec{Kind: "postgres"}, nil
	case kind == "jsonl" && arg != "":
		return storeSpec{Kind: kind, Arg: arg}, nil
	case kind == "postgres" || kind == "postgresql" || strings.Contains(s, "://") || strings.Contains(s, "="):
		return storeSpec{}, fmt.Errorf("--store holds a connection URL (not shown: it may hold a password, and a command line is visible to every local user): "+
			"use --store postgres and put the URL in %s or in a file named by --store-url-file", envStoreURL)
	case !ok || arg == "":
		return storeSpec{}, fmt.Errorf("--store is %q, want jsonl:FILE or postgres", s)
	}
	return storeSpec{}, fmt.Errorf("--store kind is %q, want jsonl or postgres", kind)
}
