package redact

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	_ "github.com/lib/pq"
)

func TestSecretNameMatchesSecretLookingNamesInAnyCase(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "PASSWORD": true, "sslpassword": true, "passwd": true, "db_pwd": true,
		"token": true, "access_token": true, "accessToken": true, "X-Amz-Security-Token": true,
		"secret": true, "client_secret": true, "credential": true, "X-Amz-Credential": true,
		"signature": true, "X-Amz-Signature": true, "sig": true, "Sig": true, "hmacsig": true,
		"auth": true, "authorization": true, "oauth": true,
		"key": true, "apikey": true, "apiKey": true, "x-api-key": true, "API_KEY": true, "sslkey": true,
		"keycloakId": false, "KEYCLOAK_ID": false, "sslmode": false, "realm": false, "user": false,
		"dbname": false, "application_name": false, "keyId": true, "author": true, "code": true, "statusCode": true, "zipcode": false, "codec": false, "design": false, "": false,
	} {
		if got := SecretName(name); got != want {
			t.Errorf("SecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestURLMasksThePasswordAndSecretParametersAndKeepsTheRest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://kc:s3cret@db.local:5432/keycloak?sslmode=disable",
			"postgres://kc:xxxxx@db.local:5432/keycloak?sslmode=disable"},
		{"postgres://kc@db.local/keycloak?password=s3cret&sslmode=disable",
			"postgres://kc@db.local/keycloak?password=xxxxx&sslmode=disable"},
		{"postgres://kc@db.local/keycloak?PassWord=s3cret", "postgres://kc@db.local/keycloak?PassWord=xxxxx"},
		{"https://hooks.local/in?realm=demo&token=abc&Sig=def&X-Amz-Signature=ghi&apiKey=jkl",
			"https://hooks.local/in?realm=demo&token=xxxxx&Sig=xxxxx&X-Amz-Signature=xxxxx&apiKey=xxxxx"},
		{"https://hooks.local/in?token=a&token=b", "https://hooks.local/in?token=xxxxx&token=xxxxx"},
		{"https://hooks.local/in?%74oken=abc", "https://hooks.local/in?%74oken=xxxxx"}, // percent-encoded name
		{"https://hooks.local/in?token=", "https://hooks.local/in?token="},
		{"https://hooks.local/in?token", "https://hooks.local/in?token"},
		{"https://hooks.local/cb#access_token=abc&state=1", "https://hooks.local/cb#access_token=xxxxx&state=1"},
		{"https://user@hooks.local/in", "https://user@hooks.local/in"}, // a user name alone is no secret
		{"https://u:p%40ss@hooks.local/in", "https://u:xxxxx@hooks.local/in"},
		{"http://127.0.0.1:8080/event/receiver?realm=a", "http://127.0.0.1:8080/event/receiver?realm=a"},
		// Unparsable: redacted as text.
		{"postgres://kc:s3cret@db.local:port/keycloak", "postgres://kc:xxxxx@db.local:port/keycloak"},
		{"http://h/%zz?token=abc", "http://h/%zz?token=xxxxx"},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestDSNMasksSecretSettingsQuotedOrNot(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"host=db.local password=s3cret dbname=keycloak", "host=db.local password=xxxxx dbname=keycloak"},
		{"host=db.local password = s3cret dbname=keycloak", "host=db.local password = xxxxx dbname=keycloak"},
		{"host=db.local password='s3 cr\\'et' dbname=keycloak", "host=db.local password=xxxxx dbname=keycloak"},
		{"password=s3\\ cret host=db", "password=xxxxx host=db"},
		{"PASSWORD=s3cret sslpassword=k sslmode=require", "PASSWORD=xxxxx sslpassword=xxxxx sslmode=require"},
		{"  host=db  ", "  host=db  "},
		{"host=db password=", "host=db password="},
		{"host=db password='unterminated", "host=db password=xxxxx"},
		{"host='db password=s3cret", "host=xxxxx"}, // the quote swallows the password
		// An unquoted password with a blank: lib/pq reads the rest as a
		// key without "=", and so does DSN: the stray word is masked.
		{"host=db password=two words dbname=kc", "host=db password=xxxxx xxxxx dbname=kc"},
		{"host=db", "host=db"},
		{"", ""},
	} {
		if got := DSN(tc.in); got != tc.want {
			t.Errorf("DSN(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestConnStringChoosesURLOrDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://kc:pw@db/kc", "postgres://kc:xxxxx@db/kc"},
		{"postgresql:///kc?host=/run/pg&password=pw", "postgresql:///kc?host=/run/pg&password=xxxxx"},
		{"host=db password=pw", "host=db password=xxxxx"},
	} {
		if got := ConnString(tc.in); got != tc.want {
			t.Errorf("ConnString(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTextMasksURLsAndSettingsInsideMessages(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`parse "postgres://kc:s3cret@db:x/kc": invalid port ":x" after host`,
			`parse "postgres://kc:xxxxx@db:x/kc": invalid port ":x" after host`},
		{`Post "https://hooks.local/in?token=abc&realm=r": dial tcp 127.0.0.1:1: connect: connection refused`,
			`Post "https://hooks.local/in?token=xxxxx&realm=r": dial tcp 127.0.0.1:1: connect: connection refused`},
		{`open postgres host=db password=s3cret: boom`, `open postgres host=db password=xxxxx boom`},
		{`database "host=db password='a b'" failed`, `database "host=db password=xxxxx" failed`},
		// A value runs to the next blank: punctuation after it is masked too.
		{`setting token = abc, then`, `setting token = xxxxx then`},
		// A quote inside a password, as Go's %q writes it.
		{`parse "postgres://kc:a\"b@db:x/kc": invalid port`, `parse "postgres://kc:xxxxx@db:x/kc": invalid port`},
		{`no secrets: sslmode=disable host=db`, `no secrets: sslmode=disable host=db`},
		{`dial tcp [::1]:5432: connect: connection refused`, `dial tcp [::1]:5432: connect: connection refused`},
	} {
		if got := Text(tc.in); got != tc.want {
			t.Errorf("Text(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestErrorMasksTheKnownSecretsOfTheConnectionWhereverTheyAppear(t *testing.T) {
	base := errors.New("base")
	for _, tc := range []struct {
		name  string
		err   error
		conns []string
		want  string
	}{
		{"password quoted alone", fmt.Errorf(`pq: password %q is too short: %w`, "s3cret", base),
			[]string{"postgres://kc:s3cret@db/kc"}, `pq: password "xxxxx" is too short: base`},
		{"percent-encoded password", fmt.Errorf(`bad "postgres://kc:p%%40ss@db:x": %w`, base),
			[]string{"postgres://kc:p%40ss@db:x"}, `bad "postgres://kc:xxxxx@db:x": base`},
		{"decoded query secret", fmt.Errorf(`token a b rejected: %w`, base),
			[]string{"https://h/?token=a%20b"}, `token xxxxx rejected: base`},
		{"dsn password", fmt.Errorf(`missing "=" after "s3cret" in connection info string: %w`, base),
			[]string{"host=db password= s3cret"}, `missing "=" after "xxxxx" in connection info string: base`},
		{"no connection", fmt.Errorf(`open "postgres://kc:pw@db/kc": %w`, base),
			nil, `open "postgres://kc:xxxxx@db/kc": base`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Error(tc.err, tc.conns...)
			if got.Error() != tc.want {
				t.Errorf("Error() = %q, want %q", got.Error(), tc.want)
			}
			if !errors.Is(got, base) {
				t.Error("the redacted error does not unwrap to the original")
			}
		})
	}
	if Error(nil, "postgres://kc:pw@db") != nil {
		t.Error("Error(nil) is not nil")
	}
}

// TestErrorHidesThePasswordsOfLibPQErrors opens connection strings that
// lib/pq and net/url refuse with an error quoting them, and checks that no
// password survives Error.
func TestErrorHidesThePasswordsOfLibPQErrors(t *testing.T) {
	const pw = "Pw-7f3a!x"
	for _, dsn := range []string{
		"postgres://kc:" + url.PathEscape(pw) + "@127.0.0.1:port/kc",          // invalid port
		"postgres://kc:" + pw + "@127.0.0.1:1/kc?sslmode=" + pw,               // bad sslmode
		"postgres://kc@127.0.0.1/kc?password=" + pw + "&sslmode=bogus",        // query password
		"host=127.0.0.1 password=" + pw + " sslmode=bogus",                    // key=value
		"host=127.0.0.1 password='" + pw + "' sslmode=" + pw,                  // quoted
		"host=127.0.0.1 password=" + pw + " oops",                             // a stray word
		"postgres://kc:" + url.PathEscape(pw) + "@127.0.0.1/kc?sslmode=bogus", // escaped in the URL
	} {
		db, err := sql.Open("postgres", dsn)
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			t.Fatalf("%q: no error", DSN(dsn))
		}
		got := Error(fmt.Errorf("open %s: %w", ConnString(dsn), err), dsn).Error()
		if strings.Contains(got, pw) || strings.Contains(got, url.PathEscape(pw)) || strings.Contains(got, url.QueryEscape(pw)) {
			t.Errorf("the password is in %q", got)
		}
	}
}
