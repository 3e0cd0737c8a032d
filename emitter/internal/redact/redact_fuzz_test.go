package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// marked wraps a fuzzed secret in a marker that nothing else in the input
// holds, so that finding it in an output can only be a leak.
func marked(s string) string {
	return "Zq8" + strings.ReplaceAll(s, "Zq8", "") + "Zq8"
}

// leaks reports whether out shows secret in a form an error may quote it.
func leaks(out, secret string) bool {
	for _, f := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), url.UserPassword("", secret).String()[1:]} {
		if strings.Contains(out, f) {
			return true
		}
	}
	return false
}

// FuzzURL puts a fuzzed password in a URL's user information and a fuzzed
// secret in a secret-named query parameter, with a fuzzed rest: neither may
// survive URL, ConnString or Text.
func FuzzURL(f *testing.F) {
	f.Add("kc", "s3cret", "token", "abc", "sslmode=disable")
	f.Add("", "p@ss:w/rd?#", "X-Amz-Signature", "a b&c=d", "")
	f.Add("u%", "'\"\\", "apiKey", "%zz", "a=1&b")
	f.Fuzz(func(t *testing.T, user, pass, name, value, rest string) {
		if !SecretName(name) || strings.ContainsAny(name, "&=#") {
			name = "password"
		}
		pass, value = marked(pass), marked(value)
		rest = strings.ReplaceAll(rest, "Zq8", "")
		u := url.URL{Scheme: "postgres", User: url.UserPassword(user, pass), Host: "127.0.0.1:5432", Path: "/kc",
			RawQuery: url.QueryEscape(name) + "=" + url.QueryEscape(value) + "&" + url.QueryEscape(rest)}
		s := u.String()
		for fn, out := range map[string]string{"URL": URL(s), "ConnString": ConnString(s), "Text": Text(fmt.Sprintf("open %q: failed", s))} {
			if leaks(out, pass) || leaks(out, value) {
				t.Fatalf("%s(%q) = %q shows a secret", fn, s, out)
			}
		}
	})
}

// FuzzDSN puts a fuzzed password in a key=value connection string, quoted
// as lib/pq reads it, among fuzzed other settings: DSN must not show it.
func FuzzDSN(f *testing.F) {
	f.Add("s3cret", "host=db")
	f.Add("a b'c\\d", "sslmode=require dbname='x y'")
	f.Add("", "=")
	f.Fuzz(func(t *testing.T, pass, rest string) {
		pass = marked(pass)
		rest = strings.ReplaceAll(rest, "Zq8", "")
		quoted := "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pass) + "'"
		for _, dsn := range []string{
			"host=db password=" + quoted + " " + rest,
			"password = " + quoted + rest,
		} {
			if out := DSN(dsn); strings.Contains(out, pass) {
				t.Fatalf("DSN(%q) = %q shows the password", dsn, out)
			}
			if out := Error(errors.New("pq: "+pass+" "+dsn), dsn).Error(); strings.Contains(out, pass) {
				t.Fatalf("Error(.., %q) = %q shows the password", dsn, out)
			}
		}
	})
}

// FuzzText runs Text, DSN and Error on arbitrary text: none may panic, and
// each keeps text without "=" or "://" as it is.
func FuzzText(f *testing.F) {
	f.Add(`parse "postgres://kc:pw@db:x/kc": invalid port`)
	f.Add(`host=db password='a\'b' x`)
	f.Add("token = 'unterminated")
	f.Add("\xff://\x00:@")
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		DSN(s)
		URL(s)
		Error(errors.New(s), s)
		if !strings.Contains(s, "=") && !strings.Contains(s, "://") && out != s {
			t.Fatalf("Text(%q) = %q changed text without settings or URLs", s, out)
		}
	})
}
