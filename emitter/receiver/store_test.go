package receiver

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// store is what both stores offer; the tests run against each.
type store interface {
	Put(ctx context.Context, row Row) (bool, error)
	Close() error
}

func row(uid int64) Row {
	return Row{
		UID: uid, Kind: "Event", ID: fmt.Sprintf("id-%d", uid), Time: 1_760_000_000_000 + uid,
		Type: "LOGIN", RealmID: "realm-1",
		Payload: fmt.Appendf(nil, `{"uid":%d,"type":"LOGIN","details":{"username":"alice"}}`, uid),
	}
}

// storeKinds opens each kind of store on fresh storage; reopen opens the same
// storage again (after Close), as a restart does.
type storeKind struct {
	name string
	open func(t *testing.T) (s store, reopen func() store, count func() map[int64]int)
}

func storeKinds() []storeKind {
	var kinds []storeKind
	for _, opts := range []StoreOptions{{Logger: quiet}, {Logger: quiet, NoSync: true}} {
		suffix := ""
		if opts.NoSync {
			suffix = "-nosync"
		}
		kinds = append(kinds,
			storeKind{"jsonl" + suffix, func(t *testing.T) (store, func() store, func() map[int64]int) {
				path := filepath.Join(t.TempDir(), "events.jsonl")
				open := func() store {
					s, err := OpenJSONL(path, opts)
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				return open(), open, func() map[int64]int { return jsonlUIDs(t, path) }
			}},
			storeKind{"postgres" + suffix, func(t *testing.T) (store, func() store, func() map[int64]int) {
				dsn := testenv.NewDatabase(t)
				open := func() store {
					s, err := OpenPostgres(t.Context(), dsn, opts)
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
				return open(), open, func() map[int64]int { return postgresUIDs(t, dsn) }
			}})
	}
	return kinds
}

func jsonlUIDs(t *testing.T, path string) map[int64]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[int64]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l jsonlLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		counts[l.UID]++
	}
	return counts
}

func postgresUIDs(t *testing.T, dsn string) map[int64]int {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT uid FROM " + PostgresTable)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	counts := map[int64]int{}
	for rows.Next() {
		var uid int64
		if err := rows.Scan(&uid); err != nil {
			t.Fatal(err)
		}
		counts[uid]++
	}
	return counts
}

func TestStoreKeepsDuplicateUIDOnce(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			ctx := t.Context()
			s, reopen, count := k.open(t)
			for i, want := range []bool{true, false} {
				fresh, err := s.Put(ctx, row(1))
				if err != nil || fresh != want {
					t.Fatalf("Put #%d of uid 1 = %v, %v; want %v, nil", i+1, fresh, err, want)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// After a restart the store still knows uid 1.
			s = reopen()
			defer s.Close()
			if fresh, err := s.Put(ctx, row(1)); err != nil || fresh {
				t.Fatalf("Put of uid 1 after reopening = %v, %v; want false, nil", fresh, err)
			}
			if fresh, err := s.Put(ctx, row(2)); err != nil || !fresh {
				t.Fatalf("Put of uid 2 after reopening = %v, %v; want true, nil", fresh, err)
			}
			if got := count(); len(got) != 2 || got[1] != 1 || got[2] != 1 {
				t.Fatalf("stored uids = %v, want 1 and 2 once each", got)
			}
		})
	}
}

// TestStoreConcurrentPutsStoreEachUIDOnce sends many uids, each twice, from
// concurrent goroutines, so that duplicates land in the same batch.
func TestStoreConcurrentPutsStoreEachUIDOnce(t *testing.T) {
	const n = 500
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			ctx := t.Context()
			s, _, count := k.open(t)
			var wg sync.WaitGroup
			var mu sync.Mutex
			freshCount := map[int64]int{}
			for w := range 16 {
				wg.Go(func() {
					for i := range n {
						uid := int64(i/2*16+w%8) + 1 // workers w and w+8 send the same uids
						fresh, err := s.Put(ctx, row(uid))
						if err != nil {
							t.Error(err)
							return
						}
						if fresh {
							mu.Lock()
							freshCount[uid]++
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			got := count()
			for uid, c := range got {
				if c != 1 {
					t.Errorf("uid %d stored %d times", uid, c)
				}
				if freshCount[uid] != 1 {
					t.Errorf("uid %d reported new %d times, want once", uid, freshCount[uid])
				}
			}
			if len(got) != len(freshCount) || len(got) == 0 {
				t.Errorf("stored %d uids, reported %d new", len(got), len(freshCount))
			}
		})
	}
}

func TestStorePutAfterCloseFails(t *testing.T) {
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			s, _, _ := k.open(t)
			s.Close()
			if _, err := s.Put(t.Context(), row(1)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Put after Close: err = %v, want ErrClosed", err)
			}
		})
	}
}

// TestStoreRejectsBadRowAndKeepsTheOthers pins that a row the store can never
// hold is refused with ErrRejected while the rows batched with it are stored.
func TestStoreRejectsBadRowAndKeepsTheOthers(t *testing.T) {
	bad := map[string]Row{
		"jsonl":    {UID: 99, Kind: "Event", Payload: []byte(`{"uid":99`)},                     // not JSON
		"postgres": {UID: 99, Kind: "Event", RealmID: "a\x00b", Payload: []byte(`{"uid":99}`)}, // NUL in text
	}
	bad["jsonl-nosync"], bad["postgres-nosync"] = bad["jsonl"], bad["postgres"]
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			s, _, count := k.open(t)
			defer s.Close()
			// Batch the bad row with good ones through the batcher directly.
			var b *batcher
			switch s := s.(type) {
			case *JSONLStore:
				b = s.b
			case *PostgresStore:
				b = s.b
			}
			fresh, err := b.write(t.Context(), []Row{row(1), bad[k.name], row(2)})
			var rowErrs rowErrors
			if !errors.As(err, &rowErrs) || len(rowErrs) != 3 {
				t.Fatalf("write err = %v, want one error per row", err)
			}
			if rowErrs[0] != nil || rowErrs[2] != nil || !fresh[0] || !fresh[2] {
				t.Errorf("good rows: errs %v, %v; fresh %v, %v; want stored", rowErrs[0], rowErrs[2], fresh[0], fresh[2])
			}
			if !errors.Is(rowErrs[1], ErrRejected) || !strings.Contains(rowErrs[1].Error(), "uid 99") {
				t.Errorf("bad row: err = %v, want ErrRejected naming uid 99", rowErrs[1])
			}
			if got := count(); len(got) != 2 || got[1] != 1 || got[2] != 1 {
				t.Errorf("stored uids = %v, want 1 and 2", got)
			}
		})
	}
}

func TestOpenJSONLCutsAnIncompleteLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	complete := `{"uid":1,"kind":"Event","id":"a","time":1,"type":"LOGIN","realmId":"r","payload":{}}` + "\n"
	if err := os.WriteFile(path, []byte(complete+`{"uid":2,"kind":"Ev`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenJSONL(path, StoreOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Errorf("loaded %d uids, want 1", s.Len())
	}
	if fresh, err := s.Put(t.Context(), row(2)); err != nil || !fresh {
		t.Fatalf("Put uid 2 = %v, %v; want true", fresh, err)
	}
	s.Close()
	if got := jsonlUIDs(t, path); len(got) != 2 || got[1] != 1 || got[2] != 1 {
		t.Fatalf("uids in file = %v, want 1 and 2 once", got)
	}
}

func TestOpenJSONLRefusesACorruptLine(t *testing.T) {
	cases := map[string]struct{ content, want string }{
		"not json":   {"{\"uid\":1}\nnot json\n{\"uid\":3}\n", "line 2"},
		"no uid":     {"{\"uid\":1}\n{\"id\":\"x\"}\n", "line 2: no uid"},
		"uid string": {"{\"uid\":\"1\"}\n", "line 1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := OpenJSONL(path, StoreOptions{Logger: quiet})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("err = %v, want one naming %s and %q", err, path, tc.want)
			}
		})
	}
}

func TestPostgresStoreRowColumns(t *testing.T) {
	dsn := testenv.NewDatabase(t)
	s, err := OpenPostgres(t.Context(), dsn, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := Row{UID: 123, Kind: "AdminEvent", ID: "kc-id", Time: 1_760_000_000_123, Type: "CREATE:USER",
		RealmID: "realm-x", Payload: []byte(`{"uid":123,"resourcePath":"users/1","details":{"é":"ü"}}`)}
	if _, err := s.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got Row
	var path string
	err = db.QueryRow(`SELECT uid, kind, keycloak_id, event_time, type, realm_id, payload->>'resourcePath' FROM `+PostgresTable).
		Scan(&got.UID, &got.Kind, &got.ID, &got.Time, &got.Type, &got.RealmID, &path)
	if err != nil {
		t.Fatal(err)
	}
	got.Payload = r.Payload
	if fmt.Sprint(got) != fmt.Sprint(r) || path != "users/1" {
		t.Fatalf("stored %+v (path %q), want %+v", got, path, r)
	}
}

func TestPostgresNoSyncCommitsAsynchronously(t *testing.T) {
	for _, tc := range []struct {
		dsn  func(string) string
		opts StoreOptions
		want string
	}{
		{func(u string) string { return u }, StoreOptions{}, "on"},
		{func(u string) string { return u }, StoreOptions{NoSync: true}, "off"},
		{keyValueDSN, StoreOptions{NoSync: true}, "off"},
	} {
		s, err := OpenPostgres(t.Context(), tc.dsn(testenv.NewDatabase(t)), tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		if err := s.db.QueryRow("SHOW synchronous_commit").Scan(&got); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got != tc.want {
			t.Errorf("NoSync %v: synchronous_commit = %s, want %s", tc.opts.NoSync, got, tc.want)
		}
	}
}

// keyValueDSN turns a postgres:// URL into lib/pq's key=value form.
func keyValueDSN(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable",
		p.Hostname(), p.Port(), p.User.Username(), strings.TrimPrefix(p.Path, "/"))
}

// TestPostgresStoreNeverShowsThePassword opens the store with connection
// strings holding a password in each place lib/pq reads one, some that fail
// (and whose errors from lib/pq and net/url quote the string) and some that
// work (the test cluster trusts every password): neither the error nor the
// store's String shows it.
func TestPostgresStoreNeverShowsThePassword(t *testing.T) {
	const pw = "Pw-7f3a!x"
	good, err := url.Parse(testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	withPassword := *good
	withPassword.User = url.UserPassword(good.User.Username(), pw)
	inQuery := *good
	inQuery.RawQuery += "&password=" + url.QueryEscape(pw)
	for _, tc := range []struct {
		name, dsn string
		opts      StoreOptions
		wantErr   bool
	}{
		{"userinfo, bad port", "postgres://kc:" + url.PathEscape(pw) + "@127.0.0.1:port/kc", StoreOptions{}, true},
		{"userinfo, bad sslmode", "postgres://kc:" + url.PathEscape(pw) + "@127.0.0.1:1/kc?sslmode=" + pw, StoreOptions{}, true},
		{"query, bad sslmode, nosync", "postgres://kc@127.0.0.1:1/kc?password=" + pw + "&sslmode=bogus", StoreOptions{NoSync: true}, true},
		{"key=value, stray word", "host=127.0.0.1 port=1 password=" + pw + " oops", StoreOptions{}, true},
		{"key=value, quoted, bad sslmode", "host=127.0.0.1 port=1 password='" + pw + "' sslmode=" + pw, StoreOptions{NoSync: true}, true},
		{"userinfo, no such database", strings.Replace(withPassword.String(), good.Path, "/no_such_db", 1), StoreOptions{}, true},
		{"userinfo, works", withPassword.String(), StoreOptions{}, false},
		{"query, works", inQuery.String(), StoreOptions{NoSync: true}, false},
		{"key=value, works", keyValueDSN(good.String()) + " password=" + pw, StoreOptions{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := OpenPostgres(t.Context(), tc.dsn, tc.opts)
			var text string
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("OpenPostgres succeeded, want an error")
				}
				text = err.Error()
			} else {
				if err != nil {
					t.Fatal(err)
				}
				text = s.String()
				s.Close()
				if !strings.HasPrefix(text, "postgres:") || !strings.Contains(text, "xxxxx") {
					t.Errorf("String() = %q, want postgres: and the URL with its password masked", text)
				}
			}
			for _, form := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw)} {
				if strings.Contains(text, form) {
					t.Errorf("the password (as %q) is in %q", form, text)
				}
			}
		})
	}
}

// hostileRows are rows whose text a store may mishandle, with whether both
// stores take them.
func hostileRows() []struct {
	name   string
	row    Row
	ok     bool
	dbTook bool // refused, though PostgreSQL alone would take it
} {
	withPayload := func(p string) Row {
		r := row(0)
		r.Payload = []byte(p)
		return r
	}
	withType := func(ty string) Row {
		r := row(0)
		r.Type = ty
		return r
	}
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}` }
	return []struct {
		name   string
		row    Row
		ok     bool
		dbTook bool
	}{
		{"plain", row(0), true, false},
		{"newline and control escapes in the payload", withPayload(`{"a":"x\ny\u0001\u001f"}`), true, false},
		{"raw U+2028 and non-ASCII", withPayload("{\"a\":\"\u2028é😀\"}"), true, false},
		{"surrogate pair escape", withPayload(`{"a":"\ud83d\ude00"}`), true, false},
		{"U+FFFD", withPayload("{\"a\":\"\uFFFD\"}"), true, false},
		{"duplicate keys", withPayload(`{"a":1,"a":2}`), true, false},
		{"invalid UTF-8 byte in a payload string", withPayload("{\"a\":\"\xff\"}"), false, false},
		{"surrogate as raw bytes (CESU-8)", withPayload("{\"a\":\"\xed\xa0\x80\"}"), false, false},
		{"unpaired high surrogate escape", withPayload(`{"a":"\ud800"}`), false, false},
		{"high surrogate then a letter", withPayload(`{"a":"\ud83d\u0041"}`), false, false},
		{"high surrogate at the end of the string", withPayload(`{"a":"x\ud83d"}`), false, false},
		{"unpaired low surrogate escape", withPayload(`{"a":"\udc00"}`), false, false},
		{"two high surrogates", withPayload(`{"a":"\ud83d\ud83d"}`), false, false},
		{"NUL escape", withPayload(`{"a":"\u0000"}`), false, false},
		{"NUL escape in a key", withPayload(`{"\u0000":1}`), false, false},
		{"raw control character in a string (not JSON)", withPayload("{\"a\":\"\t\"}"), false, false},
		{"not JSON", withPayload(`{"a":`), false, false},
		{"empty payload", withPayload(``), false, false},
		{"number with 131072 digits before the point", withPayload(`{"a":1e131071}`), true, false},
		{"number with 131073 digits before the point", withPayload(`{"a":1e131072}`), false, false},
		{"number shifted to 131072 digits", withPayload(`{"a":0.001e131074}`), true, false},
		{"number shifted to 131073 digits", withPayload(`{"a":-0.001e131075}`), false, false},
		{"number with 16383 digits after the point", withPayload(`{"a":1e-16383}`), true, false},
		{"number with 16384 digits after the point", withPayload(`{"a":1.5e-16383}`), false, false},
		{"zero with a huge exponent", withPayload(`{"a":0e1073741822}`), true, false},
		{"zero with a too huge exponent", withPayload(`{"a":0E+1073741823}`), false, false},
		{"zero with 16384 digits after the point", withPayload(`{"a":0e-16384}`), false, false},
		{"long integer", withPayload(`{"a":-123456789012345678901234567890.5e3}`), true, false},
		// A JSON-lines line nests the payload one level deeper, and must be
		// read back (encoding/json: 10000 levels at most).
		{"nested 9999 deep", withPayload(deep(9999)), true, false},
		{"nested 10000 deep", withPayload(deep(10000)), false, true},
		{"newline in the type", withType("LOGIN\n2025-01-01 Event FORGED stored"), true, false},
		{"NUL in the type", withType("LOG\x00IN"), false, false},
		{"invalid UTF-8 in the type", withType("LOG\xffIN"), false, false},
		{"invalid UTF-8 in the realm", func() Row { r := row(0); r.RealmID = "r\xc3"; return r }(), false, false},
		{"NUL in the id", func() Row { r := row(0); r.ID = "\x00"; return r }(), false, false},
	}
}

// TestStoresTakeOrRefuseTheSameRows puts the same hostile rows into each
// store: each takes or refuses (with ErrRejected) the same ones, and every
// line the JSON-lines store wrote is valid JSON in valid UTF-8 without an
// unpaired surrogate.
func TestStoresTakeOrRefuseTheSameRows(t *testing.T) {
	cases := hostileRows()
	for _, k := range storeKinds() {
		t.Run(k.name, func(t *testing.T) {
			s, _, _ := k.open(t)
			for i, tc := range cases {
				r := tc.row
				r.UID = int64(1000 + i)
				_, err := s.Put(t.Context(), r)
				switch {
				case tc.ok && err != nil:
					t.Errorf("%s: %v, want stored", tc.name, err)
				case !tc.ok && !errors.Is(err, ErrRejected):
					t.Errorf("%s: err = %v, want ErrRejected", tc.name, err)
				case !tc.ok && !strings.Contains(err.Error(), fmt.Sprintf("uid %d", r.UID)):
					t.Errorf("%s: err = %v, want it to name uid %d", tc.name, err, r.UID)
				}
			}
			if js, ok := s.(*JSONLStore); ok {
				s.Close()
				data, err := os.ReadFile(js.path)
				if err != nil {
					t.Fatal(err)
				}
				lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
				want := 0
				for _, tc := range cases {
					if tc.ok {
						want++
					}
				}
				if len(lines) != want {
					t.Errorf("%d lines, want %d", len(lines), want)
				}
				for n, line := range lines {
					if !utf8.ValidString(line) || !json.Valid([]byte(line)) {
						t.Errorf("line %d is not valid JSON in valid UTF-8: %.80q", n+1, line)
					}
					var l struct{ Type, Payload json.RawMessage }
					if err := json.Unmarshal([]byte(line), &l); err != nil {
						t.Fatalf("line %d: %v", n+1, err)
					}
					for _, v := range []json.RawMessage{l.Type, l.Payload} {
						if err := checkPayload(v); err != nil { // no \u0000, no unpaired surrogate
							t.Errorf("line %d: %v: %.80q", n+1, err, line)
						}
					}
				}
				// And the store reads its own lines back.
				again, err := OpenJSONL(js.path, StoreOptions{Logger: quiet})
				if err != nil {
					t.Fatalf("reopening: %v", err)
				}
				defer again.Close()
				if again.Len() != want {
					t.Errorf("reopened with %d uids, want %d", again.Len(), want)
				}
				return
			}
			s.Close()
		})
	}
}

// TestPostgresRefusesWhatCheckRowRefuses sends the refused rows to
// PostgreSQL itself, past the check: it must refuse each too (with a data
// exception), so that the rule is no stricter than the database.
func TestPostgresRefusesWhatCheckRowRefuses(t *testing.T) {
	s, err := OpenPostgres(t.Context(), testenv.NewDatabase(t), StoreOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, tc := range hostileRows() {
		r := tc.row
		r.UID = int64(2000 + i)
		_, err := s.insert(t.Context(), []Row{r})
		if tc.ok && err != nil {
			t.Errorf("%s: PostgreSQL refused it: %v", tc.name, err)
		}
		if !tc.ok && !tc.dbTook && !errors.Is(err, ErrRejected) {
			t.Errorf("%s: PostgreSQL answered %v, want a data exception (ErrRejected)", tc.name, err)
		}
		if tc.dbTook && err != nil {
			t.Errorf("%s: PostgreSQL refused it (%v): the rule's reason to refuse it is gone", tc.name, err)
		}
	}
}
