package emitter

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"testing"

	_ "github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/apisource"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// kcAdminDelete sends DELETE path to the test Keycloak as its bootstrap
// admin; a status other than 2xx fails the test.
func kcAdminDelete(t *testing.T, kc testenv.Keycloak, path string) {
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
	req, _ := http.NewRequest(http.MethodDelete, kc.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("DELETE %s: %d", path, resp.StatusCode)
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
	kcAdminDelete(t, kc, "/admin/realms/"+realmName+"/events")
	kcAdminDelete(t, kc, "/admin/realms/"+realmName+"/admin-events")
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
