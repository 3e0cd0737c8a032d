package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/lib/pq"
)

// schemaVersion is the Keycloak version whose event tables the benchmark
// database gets (testdata/schema/keycloak-<version>-events.sql).
const schemaVersion = "26.5.6"

// clusterURL returns the PostgreSQL cluster to use: flagURL, else
// KCEE_TEST_PG_URL, else the cluster "bench" that scripts/postgres.sh starts.
func clusterURL(ctx context.Context, root, flagURL string) (string, error) {
	if flagURL != "" {
		return flagURL, nil
	}
	if u := os.Getenv("KCEE_TEST_PG_URL"); u != "" {
		return u, nil
	}
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "scripts", "postgres.sh"), "start", "bench")
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/postgres.sh start bench: %w", err)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "", errors.New("scripts/postgres.sh start bench printed no URL")
	}
	return f[len(f)-1], nil
}

// benchDB is a database of its own on the cluster, with Keycloak's event
// tables, dropped by drop.
type benchDB struct {
	cluster, name, url string
	db                 *sql.DB
}

// createDB creates an empty database with a random name on the cluster,
// loads Keycloak's schema into it and inserts the realms and users of w.
func createDB(ctx context.Context, root, cluster string, w world) (*benchDB, error) {
	admin, err := sql.Open("postgres", cluster)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact(cluster), err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "kcee_bench_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("create database %s on %s: %w", name, redact(cluster), err)
	}
	u, err := url.Parse(cluster)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", redact(cluster), err)
	}
	u.Path = "/" + name
	d := &benchDB{cluster: cluster, name: name, url: u.String()}
	if err := loadSchema(ctx, root, d.url); err != nil {
		d.drop()
		return nil, err
	}
	if d.db, err = sql.Open("postgres", d.url); err != nil {
		d.drop()
		return nil, err
	}
	if err := d.insertWorld(ctx, w); err != nil {
		d.drop()
		return nil, err
	}
	return d, nil
}

// drop closes the connections and drops the database.
func (d *benchDB) drop() {
	if d.db != nil {
		d.db.Close()
	}
	admin, err := sql.Open("postgres", d.cluster)
	if err != nil {
		return
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "kc-event-bench: drop database %s: %v\n", d.name, err)
	}
}

// loadSchema runs the schema dump on a connection of its own (the dump
// empties search_path for its session).
func loadSchema(ctx context.Context, root, dbURL string) error {
	path := filepath.Join(root, "testdata", "schema", "keycloak-"+schemaVersion+"-events.sql")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read schema dump: %w", err)
	}
	var text strings.Builder
	for line := range strings.Lines(string(data)) {
		if !strings.HasPrefix(line, `\`) { // psql meta-commands (\restrict) of recent pg_dump
			text.WriteString(line)
		}
	}
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, text.String()); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	return nil
}

// insertWorld inserts the realms and users.
func (d *benchDB) insertWorld(ctx context.Context, w world) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	realms, err := tx.PrepareContext(ctx, pq.CopyIn("realm", "id", "name", "enabled", "events_enabled", "admin_events_enabled", "admin_events_details_enabled"))
	if err != nil {
		return fmt.Errorf("copy realms: %w", err)
	}
	for _, r := range w.realms {
		if _, err := realms.ExecContext(ctx, r.id, r.name, true, true, true, true); err != nil {
			return fmt.Errorf("copy realm %s: %w", r.name, err)
		}
	}
	if _, err := realms.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy realms: %w", err)
	}
	users, err := tx.PrepareContext(ctx, pq.CopyIn("user_entity", "id", "username", "realm_id", "enabled", "email", "created_timestamp"))
	if err != nil {
		return fmt.Errorf("copy users: %w", err)
	}
	for _, r := range w.realms {
		for _, u := range r.users {
			if _, err := users.ExecContext(ctx, u.id, u.name, r.id, true, u.name+"@example.test", int64(1_760_000_000_000)); err != nil {
				return fmt.Errorf("copy user %s: %w", u.name, err)
			}
		}
	}
	if _, err := users.ExecContext(ctx); err != nil {
		return fmt.Errorf("copy users: %w", err)
	}
	return tx.Commit()
}

// insert writes rows in one transaction (COPY into each table) and returns
// when the commit returned.
func (d *benchDB) insert(ctx context.Context, rows []row) (time.Time, error) {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return time.Time{}, err
	}
	defer tx.Rollback()
	if err := insertInto(ctx, tx, rows...); err != nil {
		return time.Time{}, err
	}
	if err := tx.Commit(); err != nil {
		return time.Time{}, fmt.Errorf("commit %d events: %w", len(rows), err)
	}
	return time.Now(), nil
}

// insertInto writes rows in tx (COPY into each table).
func insertInto(ctx context.Context, tx *sql.Tx, rows ...row) error {
	// One COPY at a time: a connection runs no other statement during one.
	if err := copyRows(ctx, tx, rows, false, pq.CopyIn("event_entity", "id", "client_id", "details_json", "error",
		"ip_address", "realm_id", "session_id", "event_time", "type", "user_id"),
		func(r *row) []any {
			return []any{r.id, r.client, null(r.details), null(r.err), r.ip, r.realmID, null(r.session), r.time, r.typ, null(r.userID)}
		}); err != nil {
		return err
	}
	return copyRows(ctx, tx, rows, true, pq.CopyIn("admin_event_entity", "id", "admin_event_time", "realm_id",
		"operation_type", "auth_realm_id", "auth_client_id", "auth_user_id", "ip_address", "resource_path",
		"representation", "error", "resource_type", "details_json"),
		func(r *row) []any {
			return []any{r.id, r.time, r.realmID, r.op, r.authRealm, r.authClient, r.authUser, r.ip,
				r.resourcePath, null(r.representation), null(r.err), r.resourceType, null(r.details)}
		})
}

// copyRows copies the rows whose admin field is admin with the COPY
// statement copy; values gives a row's columns.
func copyRows(ctx context.Context, tx *sql.Tx, rows []row, admin bool, copy string, values func(*row) []any) error {
	var st *sql.Stmt
	for i := range rows {
		r := &rows[i]
		if r.admin != admin {
			continue
		}
		if st == nil {
			var err error
			if st, err = tx.PrepareContext(ctx, copy); err != nil {
				return fmt.Errorf("%s: %w", copy, err)
			}
			defer st.Close()
		}
		if _, err := st.ExecContext(ctx, values(r)...); err != nil {
			return fmt.Errorf("copy event %s: %w", r.id, err)
		}
	}
	if st == nil {
		return nil
	}
	if _, err := st.ExecContext(ctx); err != nil {
		return fmt.Errorf("%s: %w", copy, err)
	}
	return st.Close()
}

// commits reads the number of committed transactions of the database
// (pg_stat_database.xact_commit): every query of the emitter outside an
// explicit transaction counts one. Backends publish their counts about once
// a second, so only differences over many seconds mean something.
func (d *benchDB) commits(ctx context.Context) (int64, error) {
	admin, err := sql.Open("postgres", d.cluster) // not counted in d's own database
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	var n int64
	err = admin.QueryRowContext(ctx, "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", d.name).Scan(&n)
	return n, err
}

// null makes "" a SQL NULL.
func null(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// redact returns u without its password.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

// moduleRoot returns the directory holding go.mod, upward from the working
// directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.Contains(data, []byte("module github.com/kc-event-emitter/kc-event-emitter")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run kc-event-bench inside the kc-event-emitter repository (go.mod not found above the working directory)")
		}
		dir = parent
	}
}
