package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/term"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo"
)

// defaultMemoryLimit is the Go runtime's soft memory limit unless
// GOMEMLIMIT sets another.
const defaultMemoryLimit = 48 << 20

// runMain is the run subcommand: exit 0 after a clean stop (SIGTERM,
// SIGINT, or --once done), 1 when the emitter failed, 2 on a bad flag.
func runMain(args []string, stdout, stderr io.Writer) int {
	o, err := parseRunFlags(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-emitter:", err)
		return 2
	}
	log := newLogger(stderr, o)
	build := buildinfo.Read()
	log.Info("kc-event-emitter starting", build.LogAttrs()...)
	if os.Getenv("GOMEMLIMIT") == "" {
		// A sidecar should stay small: past this the garbage collector
		// works harder instead of the heap growing (GOMEMLIMIT overrides).
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := buildinfo.Register(reg, build); err != nil {
		log.Error("kc-event-emitter stopped", "error", err)
		return 1
	}
	ro := emitter.RunOptions{Logger: log, Registry: reg}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		ro.Progress = stderr
	}
	if err := emitter.Run(ctx, o.cfg, ro); err != nil {
		log.Error("kc-event-emitter stopped", "error", err)
		var fe *emitter.FieldError
		if errors.As(err, &fe) {
			return 2
		}
		return 1
	}
	return 0
}

func newLogger(w io.Writer, o options) *slog.Logger {
	h := &slog.HandlerOptions{Level: o.logLevel}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, h))
	}
	return slog.New(slog.NewTextHandler(w, h))
}
