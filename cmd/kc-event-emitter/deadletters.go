package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
)

const deadlettersUsage = `Usage: kc-event-emitter deadletters list   [--deadLetterFile FILE]
       kc-event-emitter deadletters replay [--deadLetterFile FILE] [--targetUri URL] [flags]
       kc-event-emitter deadletters replay --config FILE --route NAME

list shows what the dead-letter file and its rotated parts (FILE.1, FILE.2, ...,
oldest first) hold: the count, the first and last record, the statuses.

replay sends the dead letters again, oldest first, one at a time, each with its
uid (the webhook-id of a signed request; the uid header of a Kafka record, the
Nats-Msg-Id of a NATS message), to the target of the same flags and variables
as run (KC_EMITTER_TARGET_URI, CT_KEYCLOAK_BRIDGE_SECRET_TOKEN, the --kafka...
and --nats... flags, ...) or to another --targetUri (http(s), kafka:// or
nats://; not a mail target), and removes each one once the target took it. A
record refused again (--deadLetterStatuses; Kafka or NATS refusing it for good:
a topic that does not exist, too large, no stream) stays and the replay goes
on; an answer of --holdStatuses, a TLS failure or refused credentials stop it;
anything else is retried with backoff (--retryWaitMin, --retryWaitMax). A
kill at any point loses nothing and repeats at most the record in flight. With
--config and --route, the dead-letter file, the target and its settings are
those of that route of the configuration file (the target's flags are then
refused; only that route's secrets are read). The emitter may run meanwhile: it goes on writing to a new FILE.
Exit status: 0 when the file is empty afterwards, 1 when records are left, 2 on
a bad flag.
`

// deadlettersMain is the deadletters subcommand.
func deadlettersMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		if len(args) > 0 && (args[0] == "help" || args[0] == "--help" || args[0] == "-h" || args[0] == "-help") {
			fmt.Fprint(stdout, deadlettersUsage)
			return 0
		}
		fmt.Fprint(stderr, "kc-event-emitter deadletters: want list or replay\n\n"+deadlettersUsage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if args[0] == "list" {
		return listMain(args[1:], os.Getenv, stdout, stderr)
	}
	return replayMain(ctx, args[1:], os.Getenv, stdout, stderr)
}

// listMain is deadletters list.
func listMain(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	def := emitter.DefaultConfig()
	fs := flag.NewFlagSet("kc-event-emitter deadletters list", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("deadLetterFile", def.DeadLetterPath, "JSON-lines `file` of the dead letters; its rotated parts are file.1, file.2, ...")
	fs.Usage = func() {
		fmt.Fprint(stderr, deadlettersUsage)
		printFlagGroups(stderr, fs, []flagGroup{{"Flags of list", []string{"deadLetterFile"}}})
	}
	if code, ok := parseSubcommandFlags(fs, args, getenv, stderr); !ok {
		return code
	}
	s, err := deadletter.Summarize(*path)
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-emitter deadletters list:", err)
		return 1
	}
	if err := s.Write(stdout); err != nil {
		return 1
	}
	return 0
}

// replayMain is deadletters replay.
func replayMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	def := emitter.DefaultConfig()
	c := def
	var o options
	var logLevel, configPath, routeName string
	fs := flag.NewFlagSet("kc-event-emitter deadletters replay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	target := addTargetFlags(fs, &c, def, getenv)
	stream := addStreamFlags(fs, &c, def)
	fs.StringVar(&configPath, "config", "", "the configuration `file` of run: replay the dead letters of its route --route")
	fs.StringVar(&routeName, "route", "", "the `route` of --config whose dead letters are replayed")
	fs.StringVar(&logLevel, "logLevel", "INFO", "DEBUG, INFO, WARN or ERROR")
	fs.StringVar(&o.logFormat, "logFormat", "text", "text or json")
	fs.Usage = func() {
		fmt.Fprint(stderr, deadlettersUsage)
		printFlagGroups(stderr, fs, append([]flagGroup{{"Flags of replay (the target's flags of run)", append(targetFlagNames, "config", "route", "logLevel", "logFormat")}},
			streamFlagGroups...))
	}
	if code, ok := parseSubcommandFlags(fs, args, getenv, stderr); !ok {
		return code
	}
	bad := func(err error) int {
		fmt.Fprintln(stderr, "kc-event-emitter deadletters replay:", err)
		return 2
	}
	if err := target.apply(&c, getenv); err != nil {
		return bad(err)
	}
	if err := stream.apply(&c, getenv); err != nil {
		return bad(err)
	}
	if configPath != "" || routeName != "" {
		rc, err := routeOfFile(fs, configPath, routeName, getenv)
		if err != nil {
			return bad(err)
		}
		if c, err = c.WithRoute(rc); err != nil {
			return bad(err)
		}
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return bad(fmt.Errorf("--logLevel %q: want DEBUG, INFO, WARN or ERROR", logLevel))
	}
	if o.logFormat != "text" && o.logFormat != "json" {
		return bad(fmt.Errorf("--logFormat %q: want text or json", o.logFormat))
	}
	log := newLogger(stderr, o)
	st, err := emitter.ReplayDeadLetters(ctx, c, log)
	if fe := (*emitter.FieldError)(nil); errors.As(err, &fe) {
		return bad(fmt.Errorf("--%w", err))
	}
	fmt.Fprintf(stdout, "delivered %d, refused again %d, unsendable %d, left %d in %s and its parts\n",
		st.Delivered, st.Refused, st.Unsendable, st.Left, c.DeadLetterPath)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		log.Error("replay stopped", "error", err, "left", st.Left)
		return 1
	}
	if st.Left > 0 {
		return 1
	}
	return 0
}

// routeOfFile returns the route name of the configuration file at path,
// refusing the target's flags (set on the command line or by their
// variables): the route says them.
func routeOfFile(fs *flag.FlagSet, path, name string, getenv func(string) string) (emitter.Route, error) {
	if path == "" || name == "" {
		return emitter.Route{}, errors.New("--config and --route go together: the file and the route whose dead letters to replay")
	}
	for _, f := range append(targetFlagNames[:len(targetFlagNames):len(targetFlagNames)], streamFlagNamesAll()...) {
		given := false
		fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == f })
		if given || getenv(envName(f)) != "" {
			return emitter.Route{}, fmt.Errorf("--%s (or %s) with --config: the route's target and settings are in the file", f, envName(f))
		}
	}
	file, err := loadConfigFile(path)
	if err != nil {
		return emitter.Route{}, err
	}
	// A replay needs the route's target only: the secrets of the source,
	// of the cluster's state and of the other routes need not be at hand.
	fc := &file.fc
	fc.DBURLFile, fc.DBURLEnv, fc.StateDBURLFile, fc.StateDBURLEnv = "", "", "", ""
	fc.APISecretF, fc.APISecretE, fc.APIPassF, fc.APIPassE = "", "", "", ""
	for i := range fc.Routes {
		if fc.Routes[i].Name != name {
			fc.Routes[i].Sink = nil
		}
	}
	c := emitter.DefaultConfig()
	if err := file.apply(&c, getenv); err != nil {
		return emitter.Route{}, err
	}
	var names []string
	for _, r := range c.Routes {
		if r.Name == name {
			return r, nil
		}
		names = append(names, r.Name)
	}
	return emitter.Route{}, fmt.Errorf("--route %q: %s has no such route (it has %s)", name, path, strings.Join(names, ", "))
}

// parseSubcommandFlags parses args, then the environment, and reports
// whether to go on; when not, the exit status (0 after --help, 2 on a bad
// flag, with the message on stderr).
func parseSubcommandFlags(fs *flag.FlagSet, args []string, getenv func(string) string, stderr io.Writer) (int, bool) {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0, false
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q (secrets are never arguments: see --help)", fs.Arg(0))
	}
	if err == nil {
		_, err = envflag.Apply(fs, envPrefix, getenv)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
		return 2, false
	}
	return 0, true
}
