// Package redact hides secrets in the text that the emitter and the receiver
// log or put in errors: the password of a URL, the values of URL query
// parameters and lib/pq connection settings whose names look like secrets,
// and such URLs or settings quoted inside an error's text.
//
// Every function replaces a secret by Mask and keeps the rest of the text,
// so that a message still names the host, the database and the parameter
// at fault.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mask replaces every secret (the same as url.URL.Redacted uses).
const Mask = "xxxxx"

// SecretName reports whether a parameter name looks like it holds a
// secret, whatever its case: it contains password, passwd, pwd, token,
// secret, credential, signature or auth, or one of its words (split at
// anything but letters and digits, and where a lower-case letter meets an
// upper-case one) is or ends with key or sig, or is code (Azure Functions'
// key, OAuth's authorization code). So access_token, PassWord,
// X-Amz-Signature, apiKey, apikey, sslpassword, sig and code are secret
// names; keycloakId and sslmode are not. A few harmless names are masked
// too (author, keyId, statusCode): a hidden value costs less than a leaked
// one.
func SecretName(name string) bool {
	lower := strings.ToLower(name)
	for _, stem := range [...]string{"password", "passwd", "pwd", "token", "secret", "credential", "signature", "auth"} {
		if strings.Contains(lower, stem) {
			return true
		}
	}
	for _, w := range words(name) {
		w = strings.ToLower(w)
		if strings.HasSuffix(w, "key") || strings.HasSuffix(w, "sig") || w == "code" {
			return true
		}
	}
	return false
}

// words splits name into runs of letters and digits, also where a
// lower-case letter is followed by an upper-case one (apiKey: api, Key).
func words(name string) []string {
	var out []string
	start := -1
	prevLower := false
	for i, r := range name {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		switch {
		case !alnum:
			if start >= 0 {
				out = append(out, name[start:i])
			}
			start = -1
		case start < 0:
			start = i
		case prevLower && unicode.IsUpper(r):
			out = append(out, name[start:i])
			start = i
		}
		prevLower = alnum && unicode.IsLower(r)
	}
	if start >= 0 {
		out = append(out, name[start:])
	}
	return out
}

// URL returns s, a URL, with the password of its user information and the
// values of the query parameters (and fragment parameters) with a secret
// name (see SecretName) replaced by Mask. The user name, host, path and the
// other parameters stay. A string that does not parse as a URL is redacted
// as Text does.
func URL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return Text(s)
	}
	return maskURL(u)
}

// maskURL returns u with its password and secret parameters masked.
func maskURL(u *url.URL) string {
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	u.RawQuery = params(u.RawQuery)
	if u.Fragment != "" {
		f := params(u.EscapedFragment())
		u.RawFragment = f
		if frag, err := url.PathUnescape(f); err == nil {
			u.Fragment = frag
		} else {
			u.Fragment = f
		}
	}
	return u.String()
}

// params masks the values of the secret parameters of a raw query.
func params(raw string) string {
	if raw == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	changed := false
	for i, p := range parts {
		name, value, ok := strings.Cut(p, "=")
		if !ok || value == "" || value == Mask {
			continue
		}
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if SecretName(name) {
			parts[i] = p[:len(p)-len(value)] + Mask
			changed = true
		}
	}
	if !changed {
		return raw
	}
	return strings.Join(parts, "&")
}

// DSN returns s, a lib/pq key=value connection string (host=... password=...),
// with the values of its settings with a secret name (password,
// sslpassword, ...; see SecretName) replaced by Mask, quoted or not. The
// words that follow a secret value without a key of their own (an unquoted
// password with a blank in it) are masked too, and so is a quoted value
// without its closing quote (it swallows the settings after it).
func DSN(s string) string {
	var b strings.Builder
	afterSecret := false
	for _, t := range dsnTokens(s) {
		b.WriteString(s[t.start:t.valStart])
		switch {
		case t.valStart == t.end:
		case t.bare && afterSecret, !t.bare && SecretName(t.key), t.unterminated:
			b.WriteString(Mask)
			afterSecret = true
		default:
			b.WriteString(s[t.valStart:t.end])
			afterSecret = false
		}
	}
	return b.String()
}

// dsnToken is one key=value setting of a connection string, or a bare word.
type dsnToken struct {
	start    int    // where the token (with the blanks before it) starts
	valStart int    // where its value starts (a bare word: where the word starts)
	end      int    // where it ends
	key      string // the key; "" for a bare word
	bare     bool   // a word without "="
	value    string // the value without quotes and backslash escapes

	unterminated bool // a quote without its end: the value runs to the end
}

// dsnTokens splits a connection string the way lib/pq reads it: blanks
// between settings, blanks allowed around "=", a value either unquoted
// (backslash escapes the next character) or in single quotes (backslash
// escapes). A word not followed by "=" is a bare token; an unterminated
// quote runs to the end.
func dsnTokens(s string) []dsnToken {
	var out []dsnToken
	i := 0
	skip := func() {
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if !unicode.IsSpace(r) {
				return
			}
			i += n
		}
	}
	word := func() string {
		var v strings.Builder
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if unicode.IsSpace(r) || r == '=' {
				break
			}
			v.WriteString(s[i : i+n])
			i += n
		}
		return v.String()
	}
	for {
		t := dsnToken{start: i}
		skip()
		if i >= len(s) {
			if t.start < len(s) {
				out = append(out, dsnToken{start: t.start, valStart: len(s), end: len(s), bare: true})
			}
			return out
		}
		wordStart := i
		t.key = word()
		j := i
		skip()
		if i >= len(s) || s[i] != '=' {
			// A bare word: keep the blanks after it for the next token.
			i = j
			out = append(out, dsnToken{start: t.start, valStart: wordStart, end: i, bare: true, value: t.key})
			continue
		}
		i++ // '='
		skip()
		t.valStart = i
		var v strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for i < len(s) && s[i] != '\'' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
				i++
			}
			if i < len(s) {
				i++ // closing quote
			} else {
				t.unterminated = true
			}
		} else {
			for i < len(s) {
				r, n := utf8.DecodeRuneInString(s[i:])
				if unicode.IsSpace(r) {
					break
				}
				if r == '\\' && i+1 < len(s) {
					i++
					r, n = utf8.DecodeRuneInString(s[i:])
				}
				v.WriteRune(r)
				i += n
			}
		}
		t.end, t.value = i, v.String()
		out = append(out, t)
	}
}

// ConnString redacts a database connection string: as URL when it holds
// "://", else as DSN.
func ConnString(s string) string {
	if strings.Contains(s, "://") {
		return URL(s)
	}
	return DSN(s)
}

var (
	// userinfo is the "user:password@" of a URL in text; the password may
	// hold quotes and backslashes (Go's %q of it) but no blank, '/', '?',
	// '#' or '@'.
	userinfo = regexp.MustCompile(`(://[^\s/?#@:"]*):[^\s/?#@]*@`)
	// urlInText is a URL in text, up to a blank or a quote.
	urlInText = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'<>`]+")
	// pair is a name=value (or name = 'value') in text, after a character
	// that cannot be part of the name.
	pair = regexp.MustCompile(`(^|[^A-Za-z0-9_.%-])([A-Za-z0-9_.-]+)(\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:\\.|[^\s&'"\\])+)`)
)

// Text returns s, free text such as an error's message, with the secrets
// of the URLs in it (see URL) and of its name=value settings with a secret
// name (see SecretName, DSN) replaced by Mask.
func Text(s string) string {
	s = userinfo.ReplaceAllString(s, "${1}:"+Mask+"@")
	s = urlInText.ReplaceAllStringFunc(s, func(m string) string {
		if u, err := url.Parse(m); err == nil {
			return maskURL(u)
		}
		return m // its password is masked already, its pairs are next
	})
	return pair.ReplaceAllStringFunc(s, func(m string) string {
		sub := pair.FindStringSubmatch(m)
		if !SecretName(sub[2]) || sub[4] == Mask {
			return m
		}
		return sub[1] + sub[2] + sub[3] + Mask
	})
}

// Error returns err with its text redacted as Text does and, first, every
// secret of conns (connection strings or URLs: their passwords and secret
// parameters, also as percent-encoded or quoted) replaced by Mask wherever
// it appears, so that a library's error that quotes a part of one (lib/pq,
// net/url) gives nothing away. The result unwraps to err, for errors.Is and
// errors.As. It returns nil for a nil err.
func Error(err error, conns ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	var secrets []string
	for _, c := range conns {
		secrets = append(secrets, secretsOf(c)...)
	}
	// Longest first, so that a secret holding another is masked whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, Mask)
	}
	return &redactedError{msg: Text(msg), err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// secretsOf returns the secret values of a connection string or URL in
// the forms an error may quote them: as written, decoded, percent-encoded
// and Go-quoted.
func secretsOf(conn string) []string {
	var vals []string
	if strings.Contains(conn, "://") {
		if u, err := url.Parse(conn); err == nil {
			if p, ok := u.User.Password(); ok {
				vals = append(vals, p)
			}
			for _, raw := range []string{u.RawQuery, u.EscapedFragment()} {
				for p := range strings.SplitSeq(raw, "&") {
					name, value, _ := strings.Cut(p, "=")
					if n, err := url.QueryUnescape(name); err == nil {
						name = n
					}
					if value != "" && SecretName(name) {
						vals = append(vals, value)
						if v, err := url.QueryUnescape(value); err == nil {
							vals = append(vals, v)
						}
					}
				}
			}
		}
		// The password as written, even when the URL does not parse.
		if m := userinfo.FindString(conn); m != "" {
			_, pw, _ := strings.Cut(strings.TrimPrefix(m, "://"), ":")
			vals = append(vals, strings.TrimSuffix(pw, "@"))
		}
	} else {
		afterSecret := false
		for _, t := range dsnTokens(conn) {
			if (t.bare && afterSecret) || (!t.bare && SecretName(t.key)) {
				vals = append(vals, t.value, conn[t.valStart:t.end])
				afterSecret = true
			} else {
				afterSecret = false
			}
		}
	}
	var out []string
	for _, v := range vals {
		for _, f := range []string{v, url.QueryEscape(v), url.PathEscape(v), url.UserPassword("", v).String()[1:], quoted(v)} {
			if f != "" && f != Mask && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// quoted is v as it appears inside Go's %q of a text holding it.
func quoted(v string) string {
	q := strconv.Quote(v)
	return q[1 : len(q)-1]
}
