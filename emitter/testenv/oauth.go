package testenv

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// TokenEndpoint is an OAuth2 token endpoint of the client credentials
// grant on 127.0.0.1, serving RS256 JWTs signed with the broker's OAUTH
// key (Kafka.OAuthKeyFile), for one client id and secret; other
// credentials get a 401.
type TokenEndpoint struct {
	URL string
	// Issued counts the tokens given out, Refused the requests answered 401.
	Issued, Refused atomic.Int64
	// Stale is how many of the next tokens are for another audience, which
	// the broker refuses (as after a rotation of keys).
	Stale atomic.Int64
}

// StartTokenEndpoint starts the token endpoint of clientID and secret,
// stopped with the test. Its tokens are of k's issuer for audience (empty:
// k's audience, the one the broker takes), with the client id as subject,
// valid for lifetime.
func (k Kafka) StartTokenEndpoint(t testing.TB, clientID, secret, audience string, lifetime time.Duration) *TokenEndpoint {
	t.Helper()
	k.NeedOAuth(t)
	raw, err := os.ReadFile(k.OAuthKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatalf("%s: no PEM key", k.OAuthKeyFile)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", k.OAuthKeyFile, err)
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("%s: not an RSA key", k.OAuthKeyFile)
	}
	if audience == "" {
		audience = k.OAuthAudience
	}
	te := &TokenEndpoint{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, sec, basic := r.BasicAuth()
		if !basic { // client_secret_post
			_ = r.ParseForm()
			id, sec = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if r.Method != http.MethodPost || r.FormValue("grant_type") != "client_credentials" || id != clientID || sec != secret {
			te.Refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
			return
		}
		now := time.Now()
		aud := audience
		if te.Stale.Add(-1) >= 0 {
			aud = "stale-" + audience
		} else {
			te.Stale.Store(0)
		}
		tok, err := signJWT(key, map[string]any{
			"iss": k.OAuthIssuer, "aud": aud, "sub": clientID, "scope": "kafka",
			"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(lifetime).Unix(),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		te.Issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(lifetime.Seconds())})
	}))
	t.Cleanup(srv.Close)
	te.URL = srv.URL + "/token"
	return te
}

// signJWT returns the compact RS256 JWS of claims, with the key id of the
// script's JWKS.
func signJWT(key *rsa.PrivateKey, claims map[string]any) (string, error) {
	enc := base64.RawURLEncoding
	head, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kcee-test"})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signed := enc.EncodeToString(head) + "." + enc.EncodeToString(body)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return signed + "." + enc.EncodeToString(sig), nil
}
