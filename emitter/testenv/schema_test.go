package testenv

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// eventTables are the tables the emitter reads; testdata/schema holds them as
// real Keycloak servers created them.
var eventTables = []string{"admin_event_entity", "event_entity", "realm", "user_entity"}

// TestLiveKeycloakSchemaMatchesTheDump compares the four tables of the
// running Keycloak's database with testdata/schema/keycloak-<its
// version>-events.sql loaded into a fresh database: columns (name, type,
// nullability, default, in order) and indexes. The version is the one
// scripts/keycloak.sh started (KCEE_TEST_KEYCLOAK_VERSION); the database
// must have been created by that version (migration_model), not upgraded
// from an older one.
func TestLiveKeycloakSchemaMatchesTheDump(t *testing.T) {
	k := KeycloakEnv(t)
	live := openDB(t, k.DBURL)
	var migrated string
	if err := live.QueryRow(`SELECT version FROM migration_model ORDER BY update_time DESC, id DESC LIMIT 1`).Scan(&migrated); err != nil {
		t.Fatalf("read Keycloak's version from migration_model: %v", err)
	}
	version := k.Version
	if version == "" {
		version = migrated
	}
	if migrated != version {
		t.Fatalf("KCEE_TEST_KEYCLOAK_VERSION is %s but its database was last migrated by %s", version, migrated)
	}
	var first string
	if err := live.QueryRow(`SELECT version FROM migration_model ORDER BY update_time, id LIMIT 1`).Scan(&first); err != nil {
		t.Fatalf("read Keycloak's first version from migration_model: %v", err)
	}
	if first != version {
		t.Fatalf("Keycloak %s's database was created by %s and upgraded: its schema is not what %s creates", version, first, version)
	}
	dump := filepath.Join(ModuleRoot(t), "testdata", "schema", "keycloak-"+version+"-events.sql")
	if _, err := os.Stat(dump); err != nil {
		t.Fatalf("the live Keycloak is %s but there is no dump of it (%v); make one with\n"+
			"  KC_VERSION=%s scripts/keycloak.sh start && scripts/keycloak.sh dump-schema", version, err, version)
	}
	fresh := NewDatabase(t)
	LoadSchema(t, fresh, version)
	if d := diffLines(schemaLines(t, openDB(t, fresh)), schemaLines(t, live)); d != "" {
		t.Errorf("Keycloak %s's live schema differs from %s (- dump, + live):\n%s", version, filepath.Base(dump), d)
	}
}

// TestSchemaDiffNamesAChangedColumnAndADroppedIndex pins that the comparison
// above can fail: a column's type changed and an index dropped on one side
// show up as - and + lines; identical sides give no diff.
func TestSchemaDiffNamesAChangedColumnAndADroppedIndex(t *testing.T) {
	a, b := NewDatabase(t), NewDatabase(t)
	LoadSchema(t, a, "26.5.6")
	LoadSchema(t, b, "26.5.6")
	da, db := openDB(t, a), openDB(t, b)
	if d := diffLines(schemaLines(t, da), schemaLines(t, db)); d != "" {
		t.Fatalf("the same dump loaded twice differs:\n%s", d)
	}
	for _, q := range []string{
		`ALTER TABLE event_entity ALTER COLUMN type TYPE varchar(100)`,
		`DROP INDEX idx_event_time`,
		`ALTER TABLE user_entity ADD COLUMN nickname text`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	d := diffLines(schemaLines(t, da), schemaLines(t, db))
	for _, want := range []string{
		"- column event_entity.type character varying(255) NULL",
		"+ column event_entity.type character varying(100) NULL",
		"- index event_entity CREATE INDEX idx_event_time ON public.event_entity USING btree (realm_id, event_time)",
		"+ column user_entity.nickname text NULL",
	} {
		if !strings.Contains(d, want+"\n") {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
}

// TestEverySchemaDumpLoadsWithTheEventIndexes loads each dump under
// testdata/schema and checks that it holds the four tables, the columns the
// emitter reads and the (realm_id, time) indexes.
func TestEverySchemaDumpLoadsWithTheEventIndexes(t *testing.T) {
	dumps, err := filepath.Glob(filepath.Join(ModuleRoot(t), "testdata", "schema", "keycloak-*-events.sql"))
	if err != nil || len(dumps) == 0 {
		t.Fatalf("no dumps under testdata/schema (%v)", err)
	}
	for _, dump := range dumps {
		version := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(dump), "keycloak-"), "-events.sql")
		t.Run(version, func(t *testing.T) {
			u := NewDatabase(t)
			LoadSchema(t, u, version)
			lines := strings.Join(schemaLines(t, openDB(t, u)), "\n") + "\n"
			for _, want := range []string{
				"column event_entity.id character varying(36) NOT NULL",
				"column event_entity.event_time bigint NULL",
				"column event_entity.realm_id character varying(255) NULL",
				"column admin_event_entity.admin_event_time bigint NULL",
				"column admin_event_entity.resource_path character varying(2550) NULL",
				"column realm.name character varying(255) NULL",
				"column user_entity.username character varying(255) NULL",
				"USING btree (realm_id, event_time)",
				"USING btree (realm_id, admin_event_time)",
			} {
				if !strings.Contains(lines, want) {
					t.Errorf("%s lacks %q; it has:\n%s", filepath.Base(dump), want, lines)
				}
			}
		})
	}
}

func openDB(t testing.TB, u string) *sql.DB {
	t.Helper()
	db, err := sql.Open("postgres", u)
	if err != nil {
		t.Fatalf("open %s: %v", redact(u), err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// schemaLines describes the event tables of db, one line per column (in
// table order) and per index.
func schemaLines(t testing.TB, db *sql.DB) []string {
	t.Helper()
	var lines []string
	rows, err := db.Query(`SELECT table_name, column_name, data_type, character_maximum_length, is_nullable, column_default
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY($1)
		ORDER BY table_name, ordinal_position`, pq.Array(eventTables))
	if err != nil {
		t.Fatalf("read columns: %v", err)
	}
	for rows.Next() {
		var table, column, typ, nullable string
		var length sql.NullInt64
		var def sql.NullString
		if err := rows.Scan(&table, &column, &typ, &length, &nullable, &def); err != nil {
			t.Fatalf("read columns: %v", err)
		}
		line := fmt.Sprintf("column %s.%s %s", table, column, typ)
		if length.Valid {
			line += fmt.Sprintf("(%d)", length.Int64)
		}
		if nullable == "YES" {
			line += " NULL"
		} else {
			line += " NOT NULL"
		}
		if def.Valid {
			line += " DEFAULT " + def.String
		}
		lines = append(lines, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read columns: %v", err)
	}
	rows.Close()
	rows, err = db.Query(`SELECT tablename, indexdef FROM pg_indexes
		WHERE schemaname = 'public' AND tablename = ANY($1) ORDER BY tablename, indexname`, pq.Array(eventTables))
	if err != nil {
		t.Fatalf("read indexes: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table, def string
		if err := rows.Scan(&table, &def); err != nil {
			t.Fatalf("read indexes: %v", err)
		}
		lines = append(lines, "index "+table+" "+def)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read indexes: %v", err)
	}
	for _, table := range eventTables {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "column "+table+".") }) {
			lines = append(lines, "table "+table+" is missing")
		}
	}
	return lines
}

// diffLines returns a line diff of a and b ("- " only in a, "+ " only in
// b), or "" when they are equal.
func diffLines(a, b []string) string {
	// lcs[i][j]: length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case j < len(b) && (i == len(a) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+ %s\n", b[j])
			j++
		default:
			fmt.Fprintf(&out, "- %s\n", a[i])
			i++
		}
	}
	return out.String()
}
