// Package testenv gives tests the real servers of the test environment: the
// PostgreSQL cluster started by scripts/postgres.sh (KCEE_TEST_PG_URL) and
// Keycloak's schema dumps under testdata/schema.
package testenv

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/lib/pq" // the PostgreSQL driver
)

// PostgresURL returns KCEE_TEST_PG_URL. When it is unset the test is skipped,
// or fails when KCEE_REQUIRE_SERVERS=1 (as make test sets it).
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("KCEE_TEST_PG_URL")
	if u == "" {
		msg := "KCEE_TEST_PG_URL is not set: run `eval $(scripts/postgres.sh env)` first"
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return u
}

// NewDatabase creates an empty database with a random name on the test
// cluster, drops it when the test ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return NewDatabaseOn(t, PostgresURL(t))
}

// NewDatabaseOn is NewDatabase on the cluster at clusterURL.
func NewDatabaseOn(t testing.TB, clusterURL string) string {
	t.Helper()
	admin, err := sql.Open("postgres", clusterURL)
	if err != nil {
		t.Fatalf("open %s: %v", redact(clusterURL), err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "kcee_test_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(clusterURL)
	if err != nil {
		t.Fatalf("parse KCEE_TEST_PG_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// LoadSchema loads testdata/schema/keycloak-<version>-events.sql, the schema
// a real Keycloak of that version created, into the database at dbURL.
func LoadSchema(t testing.TB, dbURL, version string) {
	t.Helper()
	path := filepath.Join(ModuleRoot(t), "testdata", "schema", "keycloak-"+version+"-events.sql")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read schema dump: %v", err)
	}
	var sqlText strings.Builder
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, `\`) { // psql meta-commands (\restrict) of recent pg_dump
			continue
		}
		sqlText.WriteString(line)
	}
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatalf("open %s: %v", redact(dbURL), err)
	}
	defer db.Close()
	if _, err := db.Exec(sqlText.String()); err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
}

// ModuleRoot returns the directory holding go.mod, found upward from the
// working directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// redact returns u without its password.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return fmt.Sprint(p.Redacted())
}
