package mailsink

import (
	"bytes"
	"cmp"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// message is one mail, ready for DATA.
type message struct {
	id   string // the Message-ID, without angle brackets
	data []byte // headers and body, CRLF line ends
}

// Bounds of what an event puts into a header: a field of an event may be
// as long as Keycloak lets it be, a header line may not (RFC 5322: 998).
const (
	maxSubjectValue = 100 // runes of each event value in a subject
	maxBodyValue    = 2000
	digestTypes     = 3 // types named in a digest's subject
)

// single returns the mail of one notification.
func (s *Sender) single(n Notification, now time.Time) message {
	subject := fmt.Sprintf("Keycloak %s: %s %s", short(orDash(realmOf(n))), short(orDash(n.Type)), short(orDash(n.Username)))
	var body strings.Builder
	body.WriteString("Keycloak recorded this event:\n\n")
	s.block(&body, n)
	body.WriteString("\n-- \nkc-event-emitter, mail notifications\n")
	id := strconv.FormatInt(n.UID, 10) + ".kc-event-emitter@" + s.msgIDDom
	return s.compose(id, subject, body.String(), now)
}

// digest returns the one mail of ns.
func (s *Sender) digest(ns []Notification, now time.Time) message {
	first := ns[0]
	for _, n := range ns[1:] {
		if n.Time.Before(first.Time) {
			first = n
		}
	}
	counts := map[string]int{}
	realms := map[string]bool{}
	for _, n := range ns {
		counts[orDash(n.Type)]++
		realms[realmOf(n)] = true
	}
	types := make([]string, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b string) int { return cmp.Or(counts[b]-counts[a], strings.Compare(a, b)) })
	var tally []string
	for _, t := range types {
		tally = append(tally, fmt.Sprintf("%s ×%d", t, counts[t]))
	}
	inSubject := tally
	if len(inSubject) > digestTypes {
		inSubject = append(slices.Clone(inSubject[:digestTypes]), "…")
	}
	where := "Keycloak"
	if len(realms) == 1 {
		where += " " + short(orDash(realmOf(first)))
	}
	since := first.Time.UTC().Format("2006-01-02 15:04:05 MST")
	subject := fmt.Sprintf("%s: %d events (%s) since %s", where, len(ns), short(strings.Join(inSubject, ", ")), since)

	var body strings.Builder
	fmt.Fprintf(&body, "%d Keycloak events since %s: more than %d arrived within %s, so they come in one mail.\n\n",
		len(ns), s.times(first.Time), s.o.DigestThreshold, s.o.DigestWindow)
	fmt.Fprintf(&body, "%s\n", strings.Join(tally, ", "))
	for i, n := range ns {
		fmt.Fprintf(&body, "\n--- %d of %d\n", i+1, len(ns))
		s.block(&body, n)
	}
	body.WriteString("\n-- \nkc-event-emitter, mail notifications\n")
	id := fmt.Sprintf("digest.%d.%d.kc-event-emitter@%s", first.UID, len(ns), s.msgIDDom)
	return s.compose(id, subject, body.String(), now)
}

// block writes the fields of n, one a line.
func (s *Sender) block(b *strings.Builder, n Notification) {
	line := func(name, value string) { fmt.Fprintf(b, "%-12s%s\n", name+":", value) }
	line("Time", s.times(n.Time))
	realm := orDash(clean(n.RealmName, maxBodyValue))
	if n.RealmID != "" && n.RealmID != n.RealmName {
		realm += " (id " + clean(n.RealmID, maxBodyValue) + ")"
	}
	line("Realm", realm)
	line("Type", orDash(clean(n.Type, maxBodyValue)))
	line("Username", orDash(clean(n.Username, maxBodyValue)))
	line("Email", orDash(clean(n.Email, maxBodyValue)))
	line("User ID", orDash(clean(n.UserID, maxBodyValue)))
	line("Client", orDash(clean(n.Client, maxBodyValue)))
	line("IP address", orDash(clean(n.IPAddress, maxBodyValue)))
	if n.Error != "" {
		line("Error", clean(n.Error, maxBodyValue))
	}
	line("Event", fmt.Sprintf("%s, uid %d", orDash(clean(n.Kind, maxBodyValue)), n.UID))
}

// times renders t in UTC and in the configured zone.
func (s *Sender) times(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	u := t.UTC().Format("2006-01-02 15:04:05 MST")
	if s.zone == time.UTC {
		return u
	}
	return u + " (" + t.In(s.zone).Format("2006-01-02 15:04:05 MST") + ", " + s.zone.String() + ")"
}

// compose writes the headers and the quoted-printable body of a mail.
func (s *Sender) compose(id, subject, body string, now time.Time) message {
	var b bytes.Buffer
	header := func(name, value string) { b.WriteString(name + ": " + value + "\r\n") }
	header("Date", now.Format(time.RFC1123Z))
	header("From", s.from.String())
	to := make([]string, len(s.to))
	for i, a := range s.to {
		to[i] = a.String()
	}
	header("To", strings.Join(to, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", clean(subject, 4*maxSubjectValue)))
	header("Message-ID", "<"+id+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated") // RFC 3834: no autoreplies
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	// Text line breaks are CRLF on the wire; quotedprintable keeps them
	// as line breaks.
	w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n")))
	w.Close()
	return message{id: id, data: b.Bytes()}
}

// clean makes an event's value safe for a header or a line of the body:
// every control character (CR and LF above all: header injection, forged
// lines) becomes a space, invalid UTF-8 becomes U+FFFD, and it is cut at
// max runes.
func clean(v string, max int) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, v)
	if r := []rune(v); len(r) > max {
		v = string(r[:max]) + "…"
	}
	return v
}

// short cleans v for a subject.
func short(v string) string { return clean(v, maxSubjectValue) }

func orDash(v string) string {
	if v == "" {
		return "-"
	}
	return v
}

// realmOf names n's realm: its name, else its id.
func realmOf(n Notification) string { return cmp.Or(n.RealmName, n.RealmID) }
