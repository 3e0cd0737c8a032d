//go:build !pipeline

package main

import (
	"fmt"
	"io"
)

// runMain is the run subcommand. Placeholder until the pipeline lands.
func runMain(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kc-event-emitter run: not implemented yet")
	return 1
}
