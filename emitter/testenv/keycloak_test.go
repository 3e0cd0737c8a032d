package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// TestSeedFillsBothEventTablesWithRealTraffic runs one round of
// scripts/seed and checks, in Keycloak's own database, that every kind of
// traffic it promises left its event rows, and that its confidential client
// may read the events through the admin API.
func TestSeedFillsBothEventTablesWithRealTraffic(t *testing.T) {
	k := KeycloakEnv(t)
	b := make([]byte, 4)
	rand.Read(b)
	s := SeedKeycloak(t, "kcee-seedtest-"+hex.EncodeToString(b), 1)
	db := openDB(t, k.DBURL)

	var types []string
	rows, err := db.Query(`SELECT DISTINCT e.type FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = $1 ORDER BY 1`, s.Realm)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			t.Fatal(err)
		}
		types = append(types, typ)
	}
	rows.Close()
	for _, want := range []string{"REGISTER", "LOGIN", "LOGIN_ERROR", "CODE_TO_TOKEN", "REFRESH_TOKEN", "LOGOUT", "CLIENT_LOGIN", "INTROSPECT_TOKEN"} {
		if !slices.Contains(types, want) {
			t.Errorf("no %s event in realm %s; types: %v", want, s.Realm, types)
		}
	}

	var ops []string
	rows, err = db.Query(`SELECT DISTINCT e.operation_type || ' ' || e.resource_type || ' ' || (e.representation IS NOT NULL)::text
		FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = $1 ORDER BY 1`, s.Realm)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var op string
		if err := rows.Scan(&op); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	rows.Close()
	for _, want := range []string{"CREATE USER true", "UPDATE USER true", "DELETE USER", "ACTION USER",
		"CREATE REALM_ROLE_MAPPING true", "DELETE REALM_ROLE_MAPPING", "UPDATE CLIENT true", "CREATE CLIENT true"} {
		if !slices.ContainsFunc(ops, func(op string) bool { return strings.HasPrefix(op, want) }) {
			t.Errorf("no admin event %q in realm %s; got %v", want, s.Realm, ops)
		}
	}

	// The confidential client's service account reads events and users.
	resp, err := http.PostForm(k.URL+"/realms/"+s.Realm+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("client credentials of %s: HTTP %d", s.ClientID, resp.StatusCode)
	}
	for _, path := range []string{"/events?max=5", "/admin-events?max=5", "/users?max=5"} {
		req, _ := http.NewRequest("GET", k.URL+"/admin/realms/"+s.Realm+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var items []json.RawMessage
		err = json.NewDecoder(resp.Body).Decode(&items)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || len(items) == 0 {
			t.Errorf("GET %s as %s: HTTP %d, %d items, %v", path, s.ClientID, resp.StatusCode, len(items), err)
		}
	}
}
