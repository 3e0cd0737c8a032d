package emitter

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

// replayTarget records the webhook-id of each request it took, checks it is
// the uid in the body, and answers answer(uid) (200 when nil).
type replayTarget struct {
	mu     sync.Mutex
	ids    []int64
	bad    []string
	answer func(uid int64) int
}

func (tg *replayTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ UID int64 }
	b, _ := io.ReadAll(r.Body)
	json.Unmarshal(b, &body)
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if id := r.Header.Get("webhook-id"); id != strconv.FormatInt(body.UID, 10) {
		tg.bad = append(tg.bad, "webhook-id "+id+" for the body "+string(b))
	}
	if tg.answer != nil {
		if status := tg.answer(body.UID); status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
	}
	tg.ids = append(tg.ids, body.UID)
}

func (tg *replayTarget) got() []int64 {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return slices.Clone(tg.ids)
}

// deadLetterFile writes the dead letters of uids 0..n-1 at path.
func deadLetterFile(t *testing.T, path string, n int, maxBytes int64) {
	t.Helper()
	f, err := deadletter.Open(path, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := f.Append(deadLetterRecord(testEnvelope(i), 401, errors.New("target answered 401"), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
}

func replayConfig(t *testing.T, url string) Config {
	cfg := validConfig()
	cfg.TargetURI = url
	cfg.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
	cfg.SigningSecrets = []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	cfg.RetryWaitMin, cfg.RetryWaitMax = time.Millisecond, 10*time.Millisecond
	return cfg
}

func TestReplayDeadLettersSendsEachWithItsUIDInOrderAndRemovesIt(t *testing.T) {
	tg := &replayTarget{}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	cfg := replayConfig(t, srv.URL)
	deadLetterFile(t, cfg.DeadLetterPath, 50, 2048)
	st, err := ReplayDeadLetters(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got := tg.got(); !slices.Equal(got, uidRange(0, 49)) || len(tg.bad) > 0 {
		t.Errorf("the target took %v (%v), want 0..49 in order, each with its uid as webhook-id", got, tg.bad)
	}
	if st != (deadletter.Stats{Delivered: 50}) {
		t.Errorf("stats %+v", st)
	}
	if files, _ := deadletter.Files(cfg.DeadLetterPath); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestReplayDeadLettersKeepsWhatIsRefusedAgainAndStopsWhenTheTargetRefusesEverything(t *testing.T) {
	tg := &replayTarget{answer: func(uid int64) int {
		switch {
		case uid == 2:
			return http.StatusUnprocessableEntity
		case uid >= 5:
			return http.StatusForbidden
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	cfg := replayConfig(t, srv.URL)
	deadLetterFile(t, cfg.DeadLetterPath, 8, 1<<20)
	st, err := ReplayDeadLetters(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || !strings.Contains(err.Error(), "wrong secret or user") {
		t.Errorf("Replay = %v, want an error naming the 403 and the hint", err)
	}
	if got := tg.got(); !slices.Equal(got, []int64{0, 1, 3, 4}) {
		t.Errorf("delivered %v, want [0 1 3 4]", got)
	}
	if st != (deadletter.Stats{Delivered: 4, Refused: 1, Left: 4}) {
		t.Errorf("stats %+v", st)
	}
	s, _ := deadletter.Summarize(cfg.DeadLetterPath)
	if s.Count != 4 || s.First.UID != 2 || s.Last.UID != 7 {
		t.Errorf("left %+v, want uids 2, 5, 6, 7", s)
	}
}

func TestReplayDeadLettersRefusesABadTargetConfigurationWithAFieldError(t *testing.T) {
	cfg := replayConfig(t, "ftp://127.0.0.1/")
	var fe *FieldError
	if _, err := ReplayDeadLetters(context.Background(), cfg, nil); !errors.As(err, &fe) || fe.Field != "targetUri" {
		t.Errorf("Replay = %v, want a FieldError naming targetUri", err)
	}
}

func TestDeadLetterBytesMetricFollowsTheFileAndItsReplay(t *testing.T) {
	tg := &recordingTarget{answer: func(uid int64, _ int) int {
		if uid < 3 {
			return http.StatusRequestEntityTooLarge
		}
		return http.StatusOK
	}}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	f := newDeliveryFixture(t, srv.URL, nil)
	wait := f.run(t, context.Background())
	f.put(t, testEnvelope(0), testEnvelope(1), testEnvelope(2), testEnvelope(3))
	f.d.close()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(f.dlPath)
	if err != nil {
		t.Fatal(err)
	}
	bytes := func() float64 {
		t.Helper()
		mfs, err := f.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "kc_event_emitter_dead_letter_bytes" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no kc_event_emitter_dead_letter_bytes")
		return 0
	}
	if got := bytes(); got != float64(fi.Size()) {
		t.Errorf("dead_letter_bytes = %v, want the file's %d bytes", got, fi.Size())
	}
	if _, err := deadletter.Replay(context.Background(), f.dlPath, func(context.Context, deadletter.Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got := bytes(); got != 0 {
		t.Errorf("dead_letter_bytes after a replay = %v, want 0", got)
	}
}

func TestAReplayedDeadLetterKeepsItsRealmAndKeyOrTakesTheKeyFromItsPayload(t *testing.T) {
	rec := Record{Event: &Event{ID: "e1", UID: 42, Time: 1763900000123, Type: "LOGIN", RealmID: "r-acme", RealmName: "acme", UserID: "u-7"}}
	for _, f := range []Format{FormatJSON, FormatFlatBuffer} {
		enc, err := NewEncoder(f, "")
		if err != nil {
			t.Fatal(err)
		}
		body, err := enc.Encode(nil, rec)
		if err != nil {
			t.Fatal(err)
		}
		env := envelope{Kind: KindEvent, UID: 42, ID: "e1", RealmID: "r-acme", Type: "LOGIN", Body: body, Key: "u-7", RealmName: "acme"}
		written := deadLetterRecord(env, 0, errors.New("no such topic"), time.Now())
		older := written
		older.Realm, older.Key = "", "" // a dead letter of a version that did not keep them
		// The payload has no realm name (the wire format is the
		// original's): an older dead letter comes without it.
		for name, tc := range map[string]struct {
			dl    deadletter.Record
			realm string
		}{"as written": {written, "acme"}, "of an older version": {older, ""}} {
			got := replayEnvelope(tc.dl, "")
			if got.RealmName != tc.realm || got.Key != "u-7" || got.UID != 42 || got.Kind != KindEvent || string(got.Body) != string(body) {
				t.Errorf("%s, %s: replayed as %+v, want realm %q, key u-7, uid 42 and the body as it was", f, name, got, tc.realm)
			}
		}
	}
}

func TestAReplayToATopicOfTheRealmKeepsADeadLetterThatDoesNotNameItsRealm(t *testing.T) {
	for _, uri := range []string{"kafka://127.0.0.1:9/kc.{{realm}}", "nats://127.0.0.1:9/kc.{{ realm }}.{{kind}}"} {
		cfg := replayConfig(t, uri)
		deadLetterFile(t, cfg.DeadLetterPath, 2, 1<<20) // testEnvelope: no realm name
		st, err := ReplayDeadLetters(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil || st.Refused != 2 || st.Left != 2 || st.Delivered != 0 {
			t.Errorf("%s: %+v, %v; want both refused again and left in the file", uri, st, err)
		}
	}
}
