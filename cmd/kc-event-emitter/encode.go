package main

import (
	"fmt"
	"io"
)

// encodeMain is the encode subcommand. Placeholder until the wire format lands.
func encodeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "kc-event-emitter encode: not implemented yet")
	return 1
}
