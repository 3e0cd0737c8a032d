package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
)

// newTestDatabase creates a database on the cluster at KCEE_TEST_PG_URL and
// drops it when the test ends, like emitter/internal/testenv.NewDatabase
// (which cmd/ may not import): skipped when the variable is unset, failed
// when KCEE_REQUIRE_SERVERS=1.
func newTestDatabase(tb testing.TB) string {
	tb.Helper()
	cluster := os.Getenv("KCEE_TEST_PG_URL")
	if cluster == "" {
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			tb.Fatal("KCEE_TEST_PG_URL is not set")
		}
		tb.Skip("KCEE_TEST_PG_URL is not set: run `eval $(scripts/postgres.sh env)` first")
	}
	admin, err := sql.Open("postgres", cluster)
	if err != nil {
		tb.Fatal(err)
	}
	name := "kcee_test_" + hex.EncodeToString([]byte(rand.Text()[:6]))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		admin.Close()
		tb.Fatalf("create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			tb.Logf("drop database %s: %v", name, err)
		}
	})
	u, err := url.Parse(cluster)
	if err != nil {
		tb.Fatalf("parse KCEE_TEST_PG_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
