package e2e

import (
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// stored is an event as Keycloak stored it, reduced to the fields both wire
// formats carry.
type stored struct {
	Kind              emitter.Kind
	ID                string
	Time              int64
	Type              string // event type, or "<operation>:<resource>"
	UserID, ClientID  string
	SessionID, IP     string
	Error             string
	ResourcePath      string
	AuthUser, AuthCli string
}

// key identifies an event by what the FLATBUFFER format carries (it has no
// Keycloak id).
func (s stored) key() string {
	return fmt.Sprint(s.Kind, "|", s.Time, "|", s.UserID, "|", s.ClientID, "|", s.SessionID, "|", s.IP, "|",
		s.Error, "|", s.ResourcePath, "|", s.AuthUser, "|", s.AuthCli)
}

// keycloakRows reads every event of realm from Keycloak's database.
func keycloakRows(t testing.TB, dbURL, realm string) []stored {
	t.Helper()
	db, err := sql.Open("postgres", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var rows []stored
	q := func(kind emitter.Kind, query string) {
		rs, err := db.Query(query, realm)
		if err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		defer rs.Close()
		for rs.Next() {
			var s stored
			var f [8]sql.NullString
			if err := rs.Scan(&s.ID, &s.Time, &s.Type, &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7]); err != nil {
				t.Fatal(err)
			}
			s.Kind = kind
			s.UserID, s.ClientID, s.SessionID, s.IP, s.Error = f[0].String, f[1].String, f[2].String, f[3].String, f[4].String
			s.ResourcePath, s.AuthUser, s.AuthCli = f[5].String, f[6].String, f[7].String
			rows = append(rows, s)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
	}
	q(emitter.KindEvent, `SELECT e.id, e.event_time, e.type, e.user_id, e.client_id, e.session_id, e.ip_address, e.error,
		NULL, NULL, NULL FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = $1`)
	q(emitter.KindAdminEvent, `SELECT e.id, e.admin_event_time, e.operation_type || ':' || e.resource_type, NULL, NULL, NULL,
		e.ip_address, e.error, e.resource_path, e.auth_user_id, e.auth_client_id
		FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = $1`)
	return rows
}

// arrived decodes the receiver's store into the same shape.
func arrived(t testing.TB, store string) ([]stored, []received) {
	t.Helper()
	raw := readStore(t, store)
	out := make([]stored, 0, len(raw))
	for _, r := range raw {
		rec, _, err := emitter.DecodePayload(r.Payload, emitter.Numbering201)
		if err != nil {
			t.Fatalf("stored payload of uid %d: %v", r.UID, err)
		}
		s := stored{Kind: rec.Kind(), ID: rec.ID(), Time: rec.Time(), Type: rec.TypeName()}
		if e := rec.Event; e != nil {
			s.UserID, s.ClientID, s.SessionID, s.IP, s.Error = e.UserID, e.ClientID, e.SessionID, e.IPAddress, e.Error
		}
		if a := rec.Admin; a != nil {
			s.IP, s.Error, s.ResourcePath = a.AuthDetails.IPAddress, a.Error, a.ResourcePath
			s.AuthUser, s.AuthCli = a.AuthDetails.UserID, a.AuthDetails.ClientID
		}
		out = append(out, s)
	}
	return out, raw
}

// match says how compareOnceBy pairs an arrived event with a stored one.
type match struct {
	// byID pairs by Keycloak's id (JSON of the database source, and of the
	// API source on Keycloak 26.2+); otherwise by the fields (FLATBUFFER
	// has no id; the API before 26.2 gives synthetic ids).
	byID bool
	// unknownOK lets a type the FlatBuffer enum lacks arrive as UNKNOWN.
	unknownOK bool
}

func (m match) key(s stored) string {
	if m.byID {
		return string(s.Kind) + "|" + s.ID
	}
	return s.key()
}

// compareOnce is compareOnceBy pairing by id (byID, JSON) or by fields
// with UNKNOWN types allowed (FLATBUFFER).
func compareOnce(t testing.TB, want, got []stored, byID bool) {
	t.Helper()
	compareOnceBy(t, want, got, match{byID: byID, unknownOK: !byID})
}

// compareOnceBy checks that got holds every event of want exactly once,
// paired as m says, with every field both carry equal.
func compareOnceBy(t testing.TB, want, got []stored, m match) {
	t.Helper()
	have := map[string][]stored{}
	for _, g := range got {
		have[m.key(g)] = append(have[m.key(g)], g)
	}
	missing := 0
	for _, w := range want {
		k := m.key(w)
		gs := have[k]
		if len(gs) == 0 {
			if missing++; missing <= 10 {
				t.Errorf("%s %s %s at %d never arrived", w.Kind, w.ID, w.Type, w.Time)
			}
			continue
		}
		g := gs[0]
		have[k] = gs[1:]
		typeOK := g.Type == w.Type || (m.unknownOK && strings.Contains(g.Type, "UNKNOWN"))
		if g.key() != w.key() || !typeOK {
			t.Errorf("%s %s arrived as\n %+v\nwant\n %+v", w.Kind, w.ID, g, w)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events never arrived", missing, len(want))
	}
	for k, gs := range have {
		for _, g := range gs {
			t.Errorf("arrived but not stored once in Keycloak (a duplicate or a stranger): %s %+v", k, g)
		}
	}
}

// realmName is a fresh realm name for a test.
func realmName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rand.Uint32()) }

// TestEndToEndEveryKeycloakEventArrivesOnceWithItsFields seeds a realm of
// the real Keycloak with real traffic (registrations, logins, failures,
// refreshes, logouts, admin operations), runs the emitter with --once on
// Keycloak's database in each format, and checks that every row of
// event_entity and admin_event_entity of that realm arrived exactly once at
// the reference receiver, with its fields.
func TestEndToEndEveryKeycloakEventArrivesOnceWithItsFields(t *testing.T) {
	checkEveryEventArrivesOnce(t, testenv.KeycloakEnv(t))
}

// checkEveryEventArrivesOnce is the test above on the Keycloak kc.
func checkEveryEventArrivesOnce(t *testing.T, kc testenv.Keycloak) {
	realm := realmName("e2e-once")
	testenv.SeedKeycloak(t, realm, 2)
	want := keycloakRows(t, kc.DBURL, realm)
	if len(want) < 20 {
		t.Fatalf("the seed made only %d events", len(want))
	}
	for _, format := range []string{"JSON", "FLATBUFFER"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
			args := emitterArgs(rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t),
				"--once", "--realms", realm)
			args = with(args, "--format", format)
			em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+kc.DBURL)
			if code := em.wait(2 * time.Minute); code != 0 {
				t.Fatalf("emitter --once exit status %d, want 0", code)
			}
			got, raw := arrived(t, rcv.store)
			compareOnce(t, want, got, format == "JSON")
			for _, r := range raw {
				if k, dc := emitter.UIDNode(r.UID); k != 7 || dc != 1 {
					t.Errorf("uid %d has keycloakId %d datacenterId %d, want 7 and 1", r.UID, k, dc)
				}
			}
		})
	}
}

// TestEndToEndEmitterKilledWhileKeycloakWritesLosesNothing kills the
// emitter with SIGKILL twice while the seed makes traffic in Keycloak, and
// restarts it each time: every event arrives exactly once.
func TestEndToEndEmitterKilledWhileKeycloakWritesLosesNothing(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realm := realmName("e2e-kill")
	testenv.SeedKeycloak(t, realm, 0)
	dir := t.TempDir()
	rcv := startReceiver(t, "", filepath.Join(dir, "received.jsonl"))
	args := emitterArgs(rcv.url(), filepath.Join(dir, "checkpoint.json"), freeAddr(t), "--realms", realm)
	env := "KC_EMITTER_DB_URL=" + kc.DBURL
	em := start(t, "kc-event-emitter", args, env)
	traffic := seedTraffic(t, kc, realm, 4)
	for kills := 0; kills < 3; kills++ {
		time.Sleep(time.Duration(500+rand.IntN(2000)) * time.Millisecond)
		em = em.restart()
	}
	if code := traffic.wait(5 * time.Minute); code != 0 {
		t.Fatalf("seed traffic exit status %d", code)
	}
	want := keycloakRows(t, kc.DBURL, realm)
	waitFor(t, time.Minute, fmt.Sprintf("%d events at the receiver", len(want)), func() bool {
		return countLines(rcv.store) >= len(want)
	})
	time.Sleep(500 * time.Millisecond)
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	got, _ := arrived(t, rcv.store)
	compareOnce(t, want, got, true)
}

// seedTraffic runs rounds of the seed's traffic in realm in the background
// (extra: more flags of the seed, such as -workers).
func seedTraffic(t testing.TB, kc testenv.Keycloak, realm string, rounds int, extra ...string) *proc {
	t.Helper()
	return start(t, "seed", append([]string{"-realm", realm, "-rounds", fmt.Sprint(rounds),
		"-secret-file", filepath.Join(t.TempDir(), "seed.env")}, extra...),
		"KCEE_TEST_KEYCLOAK_URL="+kc.URL, "KCEE_TEST_KEYCLOAK_ADMIN="+kc.Admin,
		"KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD="+kc.AdminPassword)
}

// with returns args with the value of flag name replaced.
func with(args []string, name, value string) []string {
	out := slices.Clone(args)
	for i := range out {
		if out[i] == name {
			out[i+1] = value
		}
	}
	return out
}

// TestEndToEndReceiverDownLosesNothingWithBlock keeps the receiver down
// while Keycloak writes more events than the buffer holds: with --overflow
// block the emitter stops reading, and every event arrives once the
// receiver is up.
func TestEndToEndReceiverDownLosesNothingWithBlock(t *testing.T) {
	checkReceiverDown(t, "block")
}

// TestEndToEndReceiverDownDropsExactlyTheCountedOldestWithDropOldest is the
// same with --overflow drop-oldest: the events missing at the receiver are
// exactly those the emitter counted and logged as dropped, and they are the
// oldest (their uids, issued in reading order, are below every delivered one).
func TestEndToEndReceiverDownDropsExactlyTheCountedOldestWithDropOldest(t *testing.T) {
	checkReceiverDown(t, "drop-oldest")
}

func checkReceiverDown(t *testing.T, overflow string) {
	kc := testenv.KeycloakEnv(t)
	realm := realmName("e2e-down")
	testenv.SeedKeycloak(t, realm, 0)
	dir := t.TempDir()
	addr, listen := freeAddr(t), freeAddr(t)
	const capacity = 10
	args := emitterArgs("http://"+addr+"/event/receiver", filepath.Join(dir, "checkpoint.json"), listen,
		"--realms", realm, "--retryWaitMax", "200ms")
	args = with(with(args, "--overflow", overflow), "--bufferCapacity", fmt.Sprint(capacity))
	em := start(t, "kc-event-emitter", args, "KC_EMITTER_DB_URL="+kc.DBURL)
	if code := seedTraffic(t, kc, realm, 1).wait(5 * time.Minute); code != 0 {
		t.Fatalf("seed traffic exit status %d", code)
	}
	want := keycloakRows(t, kc.DBURL, realm)
	if len(want) <= 2*capacity {
		t.Fatalf("the seed made %d events, want more than %d", len(want), 2*capacity)
	}
	if overflow == "block" {
		// The buffer and the one event being sent are full: the emitter waits.
		waitFor(t, 30*time.Second, "a full buffer", func() bool {
			n, _ := metric(listen, "kc_event_emitter_buffer_depth")
			return n >= capacity
		})
	} else {
		waitFor(t, 30*time.Second, "every event read", func() bool {
			n, _ := metric(listen, "kc_event_emitter_events_read_total")
			return int(n) >= len(want)
		})
	}
	time.Sleep(time.Second) // the receiver stays down a while longer
	dropped, ok := metric(listen, "kc_event_emitter_events_dropped_total")
	if !ok {
		t.Fatal("no metrics")
	}
	rcv := startReceiver(t, addr, filepath.Join(dir, "received.jsonl"))
	waitFor(t, time.Minute, "the buffered events", func() bool {
		return countLines(rcv.store) >= len(want)-int(dropped)
	})
	time.Sleep(500 * time.Millisecond)
	if code := em.stop(30 * time.Second); code != 0 {
		t.Errorf("emitter exit status after SIGTERM = %d, want 0", code)
	}
	got, raw := arrived(t, rcv.store)
	if overflow == "block" {
		if dropped != 0 {
			t.Errorf("block mode dropped %v events", dropped)
		}
		compareOnce(t, want, got, true)
		return
	}
	// drop-oldest: missing == logged as dropped == counted, and the oldest.
	droppedIDs := map[string]int64{}
	for _, line := range strings.Split(em.output(), "\n") {
		if !strings.Contains(line, `msg="buffer full: event dropped"`) {
			continue
		}
		var uid int64
		var id string
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "uid="); ok {
				fmt.Sscan(v, &uid)
			}
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
		}
		droppedIDs[id] = uid
	}
	if dropped == 0 || len(droppedIDs) != int(dropped) {
		t.Errorf("%v events counted as dropped, %d logged", dropped, len(droppedIDs))
	}
	arrivedIDs := map[string]bool{}
	var uids []int64
	for _, r := range raw {
		arrivedIDs[r.ID] = true
		uids = append(uids, r.UID)
	}
	// The first event was being sent when the buffer filled: it is never
	// dropped. Every other delivered event is newer than every dropped one.
	slices.Sort(uids)
	minDelivered := int64(1<<63 - 1)
	if len(uids) > 1 {
		minDelivered = uids[1]
	}
	for _, w := range want {
		_, wasDropped := droppedIDs[w.ID]
		if arrivedIDs[w.ID] == wasDropped {
			t.Errorf("%s %s: arrived %v, logged as dropped %v: want exactly one", w.Kind, w.ID, arrivedIDs[w.ID], wasDropped)
		}
	}
	for id, uid := range droppedIDs {
		if uid >= minDelivered {
			t.Errorf("dropped %s (uid %d) is not older than every delivered event but the one in flight (uid %d)", id, uid, minDelivered)
		}
	}
	if len(raw) != len(want)-int(dropped) {
		t.Errorf("%d arrived, want %d - %v dropped", len(raw), len(want), dropped)
	}
}
