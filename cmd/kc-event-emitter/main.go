// Command kc-event-emitter tails Keycloak's events (from its database or its
// admin REST API) and delivers each Event and AdminEvent to an HTTP target in
// the wire formats of the original event-emitter.
//
// Subcommands: run (the default), encode, deadletters (list, replay), state
// import, version (also --version).
// `kc-event-emitter help` lists them; `kc-event-emitter run --help` lists the
// flags of run.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo"
)

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// dispatch runs the subcommand named by args[0] (run when args is empty or
// starts with a flag) and returns the process exit status.
func dispatch(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		cmd, args = "version", args[1:]
	} else if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runMain(args, stdout, stderr)
	case "encode":
		return encodeMain(args, stdin, stdout, stderr)
	case "deadletters":
		return deadlettersMain(args, stdout, stderr)
	case "state":
		return stateMain(args, stdout, stderr)
	case "version":
		if len(args) > 0 {
			fmt.Fprintf(stderr, "kc-event-emitter version: unexpected argument %q\n", args[0])
			return 2
		}
		fmt.Fprint(stdout, buildinfo.Read().Text("kc-event-emitter"))
		return 0
	case "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "kc-event-emitter: unknown subcommand %q\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: kc-event-emitter [run] [flags]     tail Keycloak's events and deliver them (default)
       kc-event-emitter encode [flags]    encode admin API event JSON lines from stdin to wire payloads
       kc-event-emitter deadletters list|replay [flags]
                                          show the dead letters, or send them again and remove them
       kc-event-emitter state import ...  move a file checkpoint into a cluster's state in PostgreSQL
       kc-event-emitter version           print the version, the commit and the Go version
Run "kc-event-emitter run --help", "kc-event-emitter encode --help" or
"kc-event-emitter deadletters --help" for the flags.
`)
}
