// Command kc-event-receiver is the reference receiver of kc-event-emitter: it
// accepts the events the emitter (or the original Java event-emitter) POSTs,
// checks Basic auth and Standard Webhooks signatures, decodes the JSON and
// FLATBUFFER formats, stores each uid once in a JSON-lines file or a
// PostgreSQL table, and prints a line per event (or a counter).
//
// Run kc-event-receiver -help for its flags; kc-event-receiver version (or
// --version) prints the version, the commit and the Go version.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/receiver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version" || args[0] == "-version") {
		if len(args) > 1 {
			fmt.Fprintf(stderr, "kc-event-receiver %s: unexpected argument %q\n", args[0], args[1])
			return 2
		}
		fmt.Fprint(stdout, buildinfo.Read().Text("kc-event-receiver"))
		return 0
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kc-event-receiver:", err)
		return 2
	}
	level, _ := parseLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	log.Info("kc-event-receiver starting", buildinfo.Read().LogAttrs()...)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("receiver stopped", "error", err)
		return 1
	}
	return 0
}

// serve listens and receives until ctx is done, then shuts down gracefully:
// requests in flight finish, the store writes what it was handed.
func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	app, err := newApp(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           app.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "path", cfg.Path, "store", app.storeName(),
		"sync", !cfg.NoSync, "numbering", cfg.Numbering, "basic_auth", cfg.Password != "", "signing_secrets", len(cfg.Secrets))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if cfg.Quiet {
		go app.count(ctx, cfg.Every)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := app.Close(); err != nil {
		return err
	}
	log.Info("stopped", app.totals()...)
	return nil
}

// eventStore keeps rows; Put reports whether the row's uid was new. String
// names it for logs, without secrets.
type eventStore interface {
	Put(ctx context.Context, row receiver.Row) (bool, error)
	Close() error
	String() string
}

// app is the receiver's handler with its store and counters.
type app struct {
	mux   *http.ServeMux
	store eventStore // nil: print only
	quiet bool
	out   io.Writer
	outMu sync.Mutex

	closeOnce sync.Once
	closeErr  error

	received, stored, duplicates atomic.Int64
}

func newApp(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) (*app, error) {
	decode, err := newDecoder(cfg.Numbering)
	if err != nil {
		return nil, err
	}
	a := &app{mux: http.NewServeMux(), quiet: cfg.Quiet, out: stdout}
	opts := receiver.StoreOptions{NoSync: cfg.NoSync, Logger: log}
	switch cfg.Store.Kind {
	case "jsonl":
		a.store, err = receiver.OpenJSONL(cfg.Store.Arg, opts)
	case "postgres":
		a.store, err = receiver.OpenPostgres(ctx, cfg.Store.Arg, opts)
	}
	if err != nil {
		return nil, err
	}
	h, err := receiver.NewHandler(receiver.Config[event]{
		Decode:         decode,
		Handle:         a.handle,
		Username:       cfg.Username,
		Password:       cfg.Password,
		SigningSecrets: cfg.Secrets,
		Tolerance:      cfg.Tolerance,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		// The handler's default when 0.
		MaxUnauthenticatedBytes: cfg.MaxUnauth,
		Logger:                  log,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.mux.Handle(cfg.Path, h)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	return a, nil
}

// handle stores e and prints its line; the handler acknowledges e only
// after it returned nil.
func (a *app) handle(ctx context.Context, e event) error {
	a.received.Add(1)
	status := "received"
	if a.store != nil {
		fresh, err := a.store.Put(ctx, e.Row)
		if err != nil {
			return fmt.Errorf("store uid %d: %w", e.Row.UID, err)
		}
		status = "stored"
		if !fresh {
			status = "duplicate"
			a.duplicates.Add(1)
		} else {
			a.stored.Add(1)
		}
	}
	if !a.quiet {
		a.printf("%s %s %s realm=%s uid=%d id=%s format=%s %s\n",
			time.UnixMilli(e.Row.Time).UTC().Format("2006-01-02T15:04:05.000Z"),
			printable(e.Row.Kind), printable(e.Row.Type), printable(e.Row.RealmID), e.Row.UID, printable(e.Row.ID), e.Format, status)
	}
	return nil
}

// printable returns s as it is when it is plain text, and else quoted
// with Go's escapes: a sender controls these fields, and a newline or a
// blank in one must not forge a line or a field of the output.
func printable(s string) string {
	plain := strings.IndexFunc(s, func(r rune) bool {
		return r == ' ' || r == '"' || r == utf8.RuneError || !unicode.IsPrint(r)
	}) < 0
	if plain {
		return s
	}
	return strconv.Quote(s)
}

func (a *app) printf(format string, args ...any) {
	a.outMu.Lock()
	defer a.outMu.Unlock()
	fmt.Fprintf(a.out, format, args...)
}

// count prints the counters every interval until ctx is done.
func (a *app) count(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last, lastT := int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n := a.received.Load()
			rate := float64(n-last) / now.Sub(lastT).Seconds()
			last, lastT = n, now
			a.printf("received=%d stored=%d duplicates=%d rate=%.0f/s\n", n, a.stored.Load(), a.duplicates.Load(), rate)
		}
	}
}

// storeName names the store for logs, without its secrets.
func (a *app) storeName() string {
	if a.store == nil {
		return "none"
	}
	return fmt.Sprint(a.store)
}

func (a *app) totals() []any {
	return []any{"received", a.received.Load(), "stored", a.stored.Load(), "duplicates", a.duplicates.Load()}
}

// Close closes the store once.
func (a *app) Close() error {
	a.closeOnce.Do(func() {
		if a.store != nil {
			a.closeErr = a.store.Close()
		}
	})
	return a.closeErr
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level is %q, want debug, info, warn or error", s)
	}
	return l, nil
}
