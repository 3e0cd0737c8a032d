package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
)

const encodeUsage = `Usage: kc-event-emitter encode [flags] < events.jsonl

Reads Keycloak EventRepresentation and AdminEventRepresentation JSON objects,
one per line, as the admin REST API returns them (an object with
"operationType" is an AdminEvent), and writes the wire payload of each, one
per line, as the target would receive it: stamped with a fresh uid, without
the usernames the run subcommand looks up. A line that is not an event is
reported on stderr with its number; the other lines are still encoded, and
the exit status is then 1. Blank lines are skipped.

Example:
  curl -s -H "Authorization: Bearer $TOKEN" \
    "$KEYCLOAK/admin/realms/demo/events?max=10" | jq -c '.[]' |
  kc-event-emitter encode --format FLATBUFFER --keycloakId 1 --datacenterId 0

Flags:
`

// encodeMain is the encode subcommand: it returns 0 when every line was
// encoded, 1 when some were not, 2 on a bad flag.
func encodeMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("encode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	format := fs.String("format", string(emitter.FormatJSON), "wire format: JSON or FLATBUFFER")
	keycloakID := fs.Int64("keycloakId", 0, "snowflake keycloakId of the uids, 0..31")
	datacenterID := fs.Int64("datacenterId", 0, "snowflake datacenterId of the uids, 0..3")
	numbering := fs.String("numbering", string(emitter.Numbering201),
		"FLATBUFFER enum numbering the receiver expects: 20.1, bridge or 26")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), encodeUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(err error) int {
		fmt.Fprintf(stderr, "kc-event-emitter encode: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		return bad(fmt.Errorf("unexpected argument %q: events are read from stdin", fs.Arg(0)))
	}
	f, err := emitter.ParseFormat(*format)
	if err != nil {
		return bad(fmt.Errorf("--format: %w", err))
	}
	n, err := emitter.ParseNumbering(*numbering)
	if err != nil {
		return bad(fmt.Errorf("--numbering: %w", err))
	}
	uids, err := emitter.NewUIDGenerator(*keycloakID, *datacenterID)
	if err != nil {
		return bad(err)
	}
	enc, err := emitter.NewEncoder(f, n)
	if err != nil {
		return bad(err)
	}
	return encodeLines(stdin, stdout, stderr, enc, uids)
}

// encodeLines encodes each line of in to out and returns the exit status.
func encodeLines(in io.Reader, out, stderr io.Writer, enc emitter.Encoder, uids *emitter.UIDGenerator) int {
	r := bufio.NewReaderSize(in, 64<<10)
	w := bufio.NewWriter(out)
	status := 0
	var payload []byte
	for lineNo := 1; ; lineNo++ {
		line, readErr := r.ReadBytes('\n')
		if line = bytes.TrimSpace(line); len(line) > 0 {
			rec, err := emitter.ParseAPIEvent(line)
			if err == nil {
				rec.SetUID(uids.Next())
				payload, err = enc.Encode(payload[:0], rec)
			}
			if err != nil {
				fmt.Fprintf(stderr, "kc-event-emitter encode: line %d: %v\n", lineNo, err)
				status = 1
			} else {
				w.Write(payload)
				if err := w.WriteByte('\n'); err != nil {
					fmt.Fprintf(stderr, "kc-event-emitter encode: write: %v\n", err)
					return 1
				}
			}
		}
		if readErr == io.EOF {
			break
		}
		if readErr != nil {
			fmt.Fprintf(stderr, "kc-event-emitter encode: read line %d: %v\n", lineNo, readErr)
			status = 1
			break
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "kc-event-emitter encode: write: %v\n", err)
		return 1
	}
	return status
}
