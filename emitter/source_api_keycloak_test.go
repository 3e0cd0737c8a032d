package emitter

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// kcAdmin sends method path (with body as JSON, when not nil) to the test
// Keycloak as its bootstrap admin; a status other than 2xx fails the test.
func kcAdmin(t testing.TB, kc testenv.Keycloak, method, path string, body any) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {kc.Admin}, "password": {kc.AdminPassword}}
	resp, err := http.PostForm(kc.URL+"/realms/master/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("admin token: status %d, %v", resp.StatusCode, err)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, kc.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// TestAPIPagerOnKeycloakGivesRealmsTheirDatabaseIDWithoutViewRealm lists
// the realms of a real Keycloak as the seed's service account, which holds
// view-events and view-users but not view-realm, so Keycloak does not show
// it realm ids: the pager still gives the realm its internal id (the key of
// its streams in the checkpoint, as with the database source), taken from
// an event. A realm without any event is left out (no error) until its
// first event is written.
func TestAPISourceOnKeycloakGivesRealmsTheirDatabaseIDWithoutViewRealm(t *testing.T) {
	kc := testenv.KeycloakEnv(t)
	realmName := fmt.Sprintf("kcee-apipager-%d", rand.Uint32())
	seeded := testenv.SeedKeycloak(t, realmName, 0)
	db, err := sql.Open("postgres", kc.DBURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var dbID string
	if err := db.QueryRow(`SELECT id FROM realm WHERE name = $1`, realmName).Scan(&dbID); err != nil {
		t.Fatal(err)
	}
	newClient := func() *apisource.Client {
		c, err := apisource.New(apisource.Config{BaseURL: kc.URL, AuthRealm: realmName, ClientID: seeded.ClientID,
			ClientSecret: seeded.ClientSecret, Realms: []string{realmName}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	newPager := func(c *apisource.Client) *apiSource {
		return newAPISource(c, Filters{}, slog.New(slog.DiscardHandler))
	}
	ctx := context.Background()
	listed, err := newClient().Realms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != "" {
		t.Fatalf("GET /admin/realms as the service account: %+v; the test wants Keycloak to hide the realm id", listed)
	}
	want := []realm{{ID: dbID, Name: realmName}}
	if got, err := newPager(newClient()).realms(ctx); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Realms after the seed's setup = %v, %v; want %v", got, err, want)
	}

	// A client that has its token already (a token request is an event of
	// the realm, CLIENT_LOGIN), then a realm emptied of events.
	c := newClient()
	if _, err := c.Realms(ctx); err != nil {
		t.Fatal(err)
	}
	kcAdmin(t, kc, http.MethodDelete, "/admin/realms/"+realmName+"/events", nil)
	kcAdmin(t, kc, http.MethodDelete, "/admin/realms/"+realmName+"/admin-events", nil)
	p := newPager(c)
	if got, err := p.realms(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Realms of a realm without events = %v, %v; want none and no error", got, err)
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {seeded.PublicClientID}, "username": {"nobody-at-all"}, "password": {"wrong"}}
	resp, err := http.PostForm(kc.URL+"/realms/"+realmName+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, err := p.realms(ctx); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Realms after a failed login = %v, %v; want %v", got, err, want)
	}
}

// BenchmarkAPISourceIdleOnKeycloak measures what an idle emitter reading
// the admin API (as the master realm's admin) costs the real Keycloak: the
// requests it sends a second, counted by a proxy in front of Keycloak,
// and Keycloak's CPU, over 60 s after 75 s of settling (the quiet streams
// back off to their longest wait), with 1, 20 and 60 realms that have
// events enabled and none stored. Past ten realms the total should stay
// flat (quietReads).
//
//	go test -run '^$' -bench BenchmarkAPISourceIdleOnKeycloak -benchtime 1x ./emitter/
func BenchmarkAPISourceIdleOnKeycloak(b *testing.B) {
	kc := testenv.KeycloakEnv(b)
	jvm := keycloakPID(b)
	for _, n := range []int{1, 20, 60} {
		b.Run(fmt.Sprint("realms=", n), func(b *testing.B) {
			var names []string
			for i := range n {
				name := fmt.Sprintf("kcee-idle-%d-%d", rand.Uint32(), i)
				kcAdmin(b, kc, http.MethodPost, "/admin/realms", map[string]any{"realm": name, "enabled": true,
					"eventsEnabled": true, "adminEventsEnabled": true})
				b.Cleanup(func() { kcAdmin(b, kc, http.MethodDelete, "/admin/realms/"+name, nil) })
				names = append(names, name)
			}
			upstream, err := url.Parse(kc.URL)
			if err != nil {
				b.Fatal(err)
			}
			var requests atomic.Int64
			proxy := httputil.NewSingleHostReverseProxy(upstream)
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				proxy.ServeHTTP(w, r)
			}))
			defer front.Close()
			_, target := newEventTarget(b)
			cfg := validConfig()
			cfg.Source, cfg.DatabaseURL, cfg.TargetURI, cfg.ListenAddr = SourceAPI, "", target.URL, ""
			cfg.API = APIConfig{URL: front.URL, AuthRealm: "master", ClientID: "admin-cli", Username: kc.Admin,
				Password: kc.AdminPassword, Timeout: 30 * time.Second}
			cfg.Realms, cfg.CheckpointPath = names, filepath.Join(b.TempDir(), "cp.json")
			ctx, cancel := context.WithCancel(context.Background())
			ran := make(chan error, 1)
			go func() {
				ran <- Run(ctx, cfg, RunOptions{Logger: slog.New(slog.DiscardHandler), Registry: prometheus.NewRegistry()})
			}()
			time.Sleep(75 * time.Second) // started, token fetched, quiet streams backed off
			b.ResetTimer()
			var perSec, cpu float64
			for range b.N {
				req, ticks, start := requests.Load(), cpuTicks(b, jvm), time.Now()
				time.Sleep(60 * time.Second)
				secs := time.Since(start).Seconds()
				perSec = float64(requests.Load()-req) / secs
				cpu = float64(cpuTicks(b, jvm)-ticks) * 10 / secs // ticks of 10 ms: ms of CPU a second
			}
			b.StopTimer()
			cancel()
			if err := <-ran; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(perSec, "requests/s")
			b.ReportMetric(perSec/float64(n), "requests/s/realm")
			b.ReportMetric(cpu, "keycloak-cpu-ms/s")
		})
	}
}

// keycloakPID finds the JVM of the test Keycloak (its command line names
// kc.home.dir).
func keycloakPID(t testing.TB) int {
	t.Helper()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if bytes.Contains(cmd, []byte("kc.home.dir")) {
			return pid
		}
	}
	t.Skip("no Keycloak JVM found in /proc")
	return 0
}

// cpuTicks returns the user and system CPU time of pid, in clock ticks.
func cpuTicks(t testing.TB, pid int) int64 {
	t.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command (in parentheses, which may hold spaces).
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}
