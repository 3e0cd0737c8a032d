package emitter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/smtptest"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/pgsource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestMailSinkDigestsABurstOfKeycloakRegistrations registers users through
// a real Keycloak's registration form, four at once, reads the realm's
// events from Keycloak's database as the pipeline does (the source's
// filter, the mail types, usernames), encodes them for mail and hands them
// to the mail sink as one batch, as the batch delivery does with what
// waits: past the threshold they arrive as one digest naming every
// registered user with the email Keycloak stored.
func TestMailSinkDigestsABurstOfKeycloakRegistrations(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realmName := fmt.Sprintf("kcee-mail-burst-%d", rand.Uint32())
	testenv.SeedKeycloak(t, realmName, 0)
	seed := exec.Command("go", "run", "./scripts/seed", "-realm", realmName, "-rounds", "4", "-workers", "4",
		"-secret-file", filepath.Join(t.TempDir(), "seed.env"))
	seed.Dir = testenv.ModuleRoot(t)
	seed.Env = append(os.Environ(), "KCEE_TEST_KEYCLOAK_URL="+kc.URL, "KCEE_TEST_KEYCLOAK_ADMIN="+kc.Admin,
		"KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD="+kc.AdminPassword)
	if out, err := seed.CombinedOutput(); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}

	db, err := pgsource.Open(context.Background(), kc.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cfg := mailConfig()
	src := newDBSource(db, cfg.Filters, slog.New(slog.DiscardHandler))
	realms, err := src.realms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var r realm
	for _, x := range realms {
		if x.Name == realmName {
			r = x
		}
	}
	recs := enrichedPage(t, src, r, KindEvent, 1000)
	var envs []envelope
	users := map[string]string{} // username -> email, as Keycloak stored them
	for _, rec := range recs {
		if !cfg.Mail.keeps(rec) {
			continue
		}
		users[rec.Event.Details["username"]] = rec.Event.Details["email"]
		rec.SetUID(int64(len(envs) + 1))
		envs = append(envs, mailEnvelopes(t, rec)...)
	}
	if len(envs) != 4 || len(users) != 4 {
		t.Fatalf("%d REGISTER events of %d users among %d events, want 4 of 4", len(envs), len(users), len(recs))
	}

	srv := smtptest.Start(t, "", false)
	cfg.TargetURI = "smtp://" + srv.Addr
	cfg.Mail.CAFile, cfg.Mail.Username, cfg.Mail.Password = srv.CAFile, smtptest.User, smtptest.Password
	cfg.Mail.DigestThreshold, cfg.Mail.DigestWindow = 3, time.Minute
	s, err := newMailSink(cfg.mail(), time.Millisecond, time.Millisecond, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range s.SendBatch(context.Background(), envs) {
		if err != nil {
			t.Fatalf("registration %d: %v", i, err)
		}
	}
	got := srv.Messages()
	if len(got) != 1 {
		t.Fatalf("%d mails for a burst of 4 over a threshold of 3, want 1 digest", len(got))
	}
	m, err := mail.ReadMessage(bytes.NewReader(got[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if want := "Keycloak " + realmName + ": 4 events (REGISTER ×4) since "; !strings.HasPrefix(subject, want) {
		t.Errorf("digest subject %q, want it to start with %q", subject, want)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	body := strings.ReplaceAll(string(b), "\r\n", "\n")
	for user, email := range users {
		if !strings.Contains(body, "\nUsername:   "+user+"\nEmail:      "+email+"\n") {
			t.Errorf("digest lacks %s <%s>:\n%s", user, email, body)
		}
	}

}
