package testenv

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Keycloak is the real Keycloak server that scripts/keycloak.sh started.
type Keycloak struct {
	URL           string // base URL on loopback, e.g. http://127.0.0.1:41234
	Admin         string // the master realm's admin
	AdminPassword string
	DBURL         string // its PostgreSQL database, e.g. postgres://postgres@127.0.0.1:5432/keycloak_26_7_3?sslmode=disable
	// Version is the release scripts/keycloak.sh started
	// (KCEE_TEST_KEYCLOAK_VERSION), e.g. "26.7.3"; empty when unset.
	Version string
}

// KeycloakEnv returns the Keycloak of KCEE_TEST_KEYCLOAK_URL, _ADMIN,
// _ADMIN_PASSWORD, _DB_URL and _VERSION (as `scripts/keycloak.sh env` prints
// them; _VERSION may be unset).
// When one is unset the test is skipped, or fails when
// KCEE_REQUIRE_SERVERS=1. It fails when the URL is not a loopback address.
func KeycloakEnv(t testing.TB) Keycloak {
	t.Helper()
	k := Keycloak{
		URL:           os.Getenv("KCEE_TEST_KEYCLOAK_URL"),
		Admin:         os.Getenv("KCEE_TEST_KEYCLOAK_ADMIN"),
		AdminPassword: os.Getenv("KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD"),
		DBURL:         os.Getenv("KCEE_TEST_KEYCLOAK_DB_URL"),
		Version:       os.Getenv("KCEE_TEST_KEYCLOAK_VERSION"),
	}
	if k.URL == "" || k.Admin == "" || k.AdminPassword == "" || k.DBURL == "" {
		msg := "KCEE_TEST_KEYCLOAK_URL, _ADMIN, _ADMIN_PASSWORD and _DB_URL are not all set: run `scripts/keycloak.sh start && eval \"$(scripts/keycloak.sh env)\"` first"
		if os.Getenv("KCEE_REQUIRE_SERVERS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	u, err := url.Parse(k.URL)
	if err != nil {
		t.Fatalf("KCEE_TEST_KEYCLOAK_URL %q: %v", k.URL, err)
	}
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		t.Fatalf("KCEE_TEST_KEYCLOAK_URL %q is not a loopback address", k.URL)
	}
	return k
}

// Seeded is what scripts/seed set up in a realm.
type Seeded struct {
	Realm          string
	ClientID       string // the confidential client (service account with view-events and view-users)
	ClientSecret   string
	PublicClientID string // allows the direct grant and the browser flow
}

// SeedKeycloak runs scripts/seed against the test Keycloak: it creates the
// realm (events, admin events and details on for every type, the two
// clients) and makes rounds of real traffic in it (rounds 0: setup only).
// The realm is deleted when the test ends.
func SeedKeycloak(t testing.TB, realm string, rounds int) Seeded {
	t.Helper()
	k := KeycloakEnv(t)
	secretFile := filepath.Join(t.TempDir(), "seed.env")
	seed := func(args ...string) []byte {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./scripts/seed", "-realm", realm}, args...)...)
		cmd.Dir = ModuleRoot(t)
		cmd.Env = append(os.Environ(),
			"KCEE_TEST_KEYCLOAK_URL="+k.URL, "KCEE_TEST_KEYCLOAK_ADMIN="+k.Admin,
			"KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD="+k.AdminPassword)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go run ./scripts/seed -realm %s %s: %v\n%s%s", realm, strings.Join(args, " "), err, out, stderr.Bytes())
		}
		return out
	}
	out := seed("-rounds", strconv.Itoa(rounds), "-secret-file", secretFile)
	t.Logf("seed: %s", bytes.TrimSpace(out))
	t.Cleanup(func() { seed("-delete") })

	data, err := os.ReadFile(secretFile)
	if err != nil {
		t.Fatalf("read the seed's secret file: %v", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		name, value, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "export "), "=")
		if ok {
			vars[name] = strings.Trim(value, "'")
		}
	}
	s := Seeded{Realm: vars["KCEE_SEED_REALM"], ClientID: vars["KCEE_SEED_CLIENT_ID"],
		ClientSecret: vars["KCEE_SEED_CLIENT_SECRET"], PublicClientID: vars["KCEE_SEED_PUBLIC_CLIENT_ID"]}
	if s.Realm != realm || s.ClientID == "" || s.ClientSecret == "" || s.PublicClientID == "" {
		t.Fatalf("the seed's secret file lacks a value: realm %q, client %q, public client %q", s.Realm, s.ClientID, s.PublicClientID)
	}
	return s
}

// AtLeast reports whether the Keycloak is release major.minor or newer. The
// release is Version, else the one that last migrated its database
// (migration_model); the test fails when neither tells.
func (k Keycloak) AtLeast(t testing.TB, major, minor int) bool {
	t.Helper()
	maj, mnr := k.Release(t)
	return maj > major || maj == major && mnr >= minor
}

// Release returns the major and minor version of the Keycloak (see AtLeast).
func (k Keycloak) Release(t testing.TB) (major, minor int) {
	t.Helper()
	v := k.Version
	if v == "" {
		db, err := sql.Open("postgres", k.DBURL)
		if err != nil {
			t.Fatalf("open %s: %v", redact(k.DBURL), err)
		}
		defer db.Close()
		if err := db.QueryRow(`SELECT version FROM migration_model ORDER BY update_time DESC, id DESC LIMIT 1`).Scan(&v); err != nil {
			t.Fatalf("Keycloak's version from migration_model: %v", err)
		}
	}
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		t.Fatalf("Keycloak version %q: %v", v, err)
	}
	return major, minor
}

// HasColumn reports whether table has column in the Keycloak's database
// (e.g. event_entity.details_json_long_value from 23, admin_event_entity.details_json
// from 26.1).
func (k Keycloak) HasColumn(t testing.TB, table, column string) bool {
	t.Helper()
	db, err := sql.Open("postgres", k.DBURL)
	if err != nil {
		t.Fatalf("open %s: %v", redact(k.DBURL), err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM information_schema.columns
		WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2`, table, column).Scan(&n); err != nil {
		t.Fatalf("columns of %s: %v", table, err)
	}
	return n > 0
}
