package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo"
)

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	passFile := filepath.Join(dir, "password")
	os.WriteFile(passFile, []byte("from-file\n"), 0o600)
	sigFile := filepath.Join(dir, "secrets")
	os.WriteFile(sigFile, []byte("whsec_c2VjcmV0LW9uZQ==\nwhsec_c2VjcmV0LXR3bw==\n"), 0o600)
	urlFile := filepath.Join(dir, "store-url")
	os.WriteFile(urlFile, []byte("postgres://u:from-file@127.0.0.1/db\n"), 0o600)
	badSigFile := filepath.Join(dir, "bad-secrets")
	os.WriteFile(badSigFile, []byte("whsec_c2VjcmV0LW9uZQ==\nwhsec_%%%\n"), 0o600)

	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(t *testing.T, c config)
		wantErr string
		hidden  string // must not be in the error
	}{
		{name: "defaults", check: func(t *testing.T, c config) {
			if c.Listen != "127.0.0.1:8080" || c.Path != "/event/receiver" || c.Numbering != "20.1" ||
				c.Store.Kind != "" || c.Password != "" || c.NoSync || len(c.Secrets) != 0 || c.Tolerance != 5*time.Minute {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "environment sets a flag", env: map[string]string{"KC_RECEIVER_LISTEN": "127.0.0.1:9999", "KC_RECEIVER_STORE": "jsonl:/tmp/x"},
			check: func(t *testing.T, c config) {
				if c.Listen != "127.0.0.1:9999" || c.Store != (storeSpec{"jsonl", "/tmp/x"}) {
					t.Errorf("listen %q store %v", c.Listen, c.Store)
				}
			}},
		{name: "flag wins over the environment", args: []string{"--listen", "127.0.0.1:7000"},
			env: map[string]string{"KC_RECEIVER_LISTEN": "127.0.0.1:9999"},
			check: func(t *testing.T, c config) {
				if c.Listen != "127.0.0.1:7000" {
					t.Errorf("listen = %q, want the flag's", c.Listen)
				}
			}},
		{name: "dashed flag from the environment", env: map[string]string{"KC_RECEIVER_MAX_BODY_BYTES": "1000"},
			check: func(t *testing.T, c config) {
				if c.MaxBodyBytes != 1000 {
					t.Errorf("max body = %d", c.MaxBodyBytes)
				}
			}},
		{name: "password from the environment", args: []string{"--username", "kc"}, env: map[string]string{"KC_RECEIVER_PASSWORD": "pw"},
			check: func(t *testing.T, c config) {
				if c.Username != "kc" || c.Password != "pw" {
					t.Errorf("user %q password %q", c.Username, c.Password)
				}
			}},
		{name: "password file wins over the environment, newline trimmed", args: []string{"--password-file", passFile},
			env: map[string]string{"KC_RECEIVER_PASSWORD": "pw"},
			check: func(t *testing.T, c config) {
				if c.Password != "from-file" {
					t.Errorf("password %q, want from-file", c.Password)
				}
			}},
		{name: "signing secrets from a file, one per line", args: []string{"--signing-secret-file", sigFile},
			check: func(t *testing.T, c config) {
				if len(c.Secrets) != 2 || string(c.Secrets[0]) != "secret-one" || string(c.Secrets[1]) != "secret-two" {
					t.Errorf("secrets = %q", c.Secrets)
				}
			}},
		{name: "signing secrets from the environment", env: map[string]string{"KC_RECEIVER_SIGNING_SECRET": "whsec_c2VjcmV0LW9uZQ=="},
			check: func(t *testing.T, c config) {
				if len(c.Secrets) != 1 || string(c.Secrets[0]) != "secret-one" {
					t.Errorf("secrets = %q", c.Secrets)
				}
			}},
		{name: "postgres store with its URL from the environment", args: []string{"--store", "postgres"},
			env: map[string]string{"KC_RECEIVER_STORE_URL": "postgres://u:pw@127.0.0.1/db"},
			check: func(t *testing.T, c config) {
				if c.Store.Kind != "postgres" || c.Store.Arg != "postgres://u:pw@127.0.0.1/db" || strings.Contains(c.Store.String(), "pw") {
					t.Errorf("store = %+v, shown as %s", c.Store, c.Store)
				}
			}},
		{name: "postgres store with its URL from a file, which wins", args: []string{"--store", "postgres", "--store-url-file", urlFile},
			env: map[string]string{"KC_RECEIVER_STORE_URL": "postgres://u:pw@127.0.0.1/db"},
			check: func(t *testing.T, c config) {
				if c.Store.Arg != "postgres://u:from-file@127.0.0.1/db" {
					t.Errorf("store URL = %q, want the file's without its newline", c.Store.Arg)
				}
			}},
		{name: "postgres store from the environment alone", env: map[string]string{"KC_RECEIVER_STORE": "postgres", "KC_RECEIVER_STORE_URL": "host=127.0.0.1 password=pw"},
			check: func(t *testing.T, c config) {
				if c.Store.Kind != "postgres" || c.Store.Arg != "host=127.0.0.1 password=pw" {
					t.Errorf("store = %+v", c.Store)
				}
			}},
		{name: "a jsonl path with = and :// in it", args: []string{"--store", "jsonl:/data/a=b://c.jsonl"},
			check: func(t *testing.T, c config) {
				if c.Store != (storeSpec{"jsonl", "/data/a=b://c.jsonl"}) {
					t.Errorf("store = %+v", c.Store)
				}
			}},
		{name: "unauthenticated budget", args: []string{"--max-body-bytes", "100", "--max-unauthenticated-bytes", "1000"},
			check: func(t *testing.T, c config) {
				if c.MaxUnauth != 1000 {
					t.Errorf("max unauthenticated bytes = %d", c.MaxUnauth)
				}
			}},
		{name: "sync is on by default, off from the environment", env: map[string]string{"KC_RECEIVER_SYNC": "false"},
			check: func(t *testing.T, c config) {
				if !c.NoSync {
					t.Error("KC_RECEIVER_SYNC=false left sync on")
				}
			}},
		{name: "a password is no flag", args: []string{"--password", "pw"}, wantErr: "flag provided but not defined: -password"},
		{name: "stray argument", args: []string{"pw"}, wantErr: `unexpected argument "pw"`},
		{name: "user name without password", args: []string{"--username", "kc"}, wantErr: `--username is "kc" but no password`},
		{name: "unknown store kind", args: []string{"--store", "kafka:x"}, wantErr: `--store kind is "kafka"`},
		{name: "store without argument", args: []string{"--store", "jsonl:"}, wantErr: `--store is "jsonl:"`},
		{name: "a postgres URL on the command line is refused and not shown", args: []string{"--store", "postgres:postgres://u:s3cret@127.0.0.1/db"},
			wantErr: "use --store postgres and put the URL in KC_RECEIVER_STORE_URL or in a file named by --store-url-file", hidden: "s3cret"},
		{name: "a postgresql URL on the command line is refused", args: []string{"--store", "postgresql://u:s3cret@127.0.0.1/db"},
			wantErr: "KC_RECEIVER_STORE_URL", hidden: "s3cret"},
		{name: "a key=value string on the command line is refused", args: []string{"--store", "host=127.0.0.1 password=s3cret"},
			wantErr: "KC_RECEIVER_STORE_URL", hidden: "s3cret"},
		{name: "a postgres URL in KC_RECEIVER_STORE is refused too", env: map[string]string{"KC_RECEIVER_STORE": "postgres:postgres://u:s3cret@127.0.0.1/db"},
			wantErr: "KC_RECEIVER_STORE_URL", hidden: "s3cret"},
		{name: "postgres store without a URL", args: []string{"--store", "postgres"}, wantErr: "--store postgres needs the connection URL in KC_RECEIVER_STORE_URL"},
		{name: "a URL without the postgres store", args: []string{"--store", "jsonl:/tmp/x"}, env: map[string]string{"KC_RECEIVER_STORE_URL": "postgres://u:s3cret@h/db"},
			wantErr: `--store is "jsonl:/tmp/x", not postgres`, hidden: "s3cret"},
		{name: "missing store URL file", args: []string{"--store", "postgres", "--store-url-file", filepath.Join(dir, "nope")}, wantErr: "--store-url-file \""},
		{name: "unauthenticated budget below the body limit", args: []string{"--max-body-bytes", "100", "--max-unauthenticated-bytes", "99"},
			wantErr: "--max-unauthenticated-bytes is 99, want 0 or at least --max-body-bytes (100)"},
		{name: "unknown numbering", args: []string{"--numbering", "21"}, wantErr: `--numbering is "21"`},
		{name: "relative path", args: []string{"--path", "event"}, wantErr: `--path is "event"`},
		{name: "path with a method", args: []string{"--path", "/x /y"}, wantErr: "without blanks"},
		{name: "path of the health check", args: []string{"--path", "/healthz"}, wantErr: "health check"},
		{name: "bad signing secret names its line", args: []string{"--signing-secret-file", badSigFile}, wantErr: "signing secret #2"},
		{name: "missing password file", args: []string{"--password-file", filepath.Join(dir, "nope")}, wantErr: "--password-file \""},
		{name: "bad value from the environment names the variable", env: map[string]string{"KC_RECEIVER_TOLERANCE": "soon"},
			wantErr: `KC_RECEIVER_TOLERANCE="soon"`},
		{name: "zero body limit", args: []string{"--max-body-bytes", "0"}, wantErr: "--max-body-bytes is 0"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantErr: `--log-level is "loud"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.hidden != "" && strings.Contains(err.Error(), tc.hidden) {
					t.Errorf("the error shows %q: %v", tc.hidden, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

// TestVersionPrintsTheStampedBuild: `version`, `--version` and `-version`
// print the stamped version, the commit and the Go version, before any flag
// is read; an argument after them is a usage error (exit 2).
func TestVersionPrintsTheStampedBuild(t *testing.T) {
	defer func(v, c string) { buildinfo.Version, buildinfo.Commit = v, c }(buildinfo.Version, buildinfo.Commit)
	buildinfo.Version, buildinfo.Commit = "v9.8.7-1-gabc1234", "abc1234def"
	want := buildinfo.Read().Text("kc-event-receiver")
	if !strings.HasPrefix(want, "kc-event-receiver v9.8.7-1-gabc1234\ncommit abc1234def\ngo     go") {
		t.Fatalf("Text is %q", want)
	}
	for _, c := range []struct {
		args         []string
		code         int
		stdout, errs string
	}{
		{[]string{"version"}, 0, want, ""},
		{[]string{"--version"}, 0, want, ""},
		{[]string{"-version"}, 0, want, ""},
		{[]string{"version", "--listen", "x"}, 2, "", `unexpected argument "--listen"`},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), c.args, func(string) string { return "" }, &out, &errOut)
		if code != c.code || out.String() != c.stdout || !strings.Contains(errOut.String(), c.errs) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d, %q, %q", c.args, code, out.String(), errOut.String(), c.code, c.stdout, c.errs)
		}
	}
}
