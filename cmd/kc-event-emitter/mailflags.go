package main

import (
	"flag"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/mailsink"
)

// envMailPassword is the SMTP AUTH password's variable.
const envMailPassword = envPrefix + "MAIL_PASSWORD"

// mailFlagNames are the mail sink's flags, for --help.
var mailFlagNames = []string{"mailFrom", "mailTo", "mailTypes", "mailZone", "mailDigestThreshold", "mailDigestWindow",
	"mailTls", "mailCaFile", "mailUsername", "mailPasswordFile", "mailAuth", "mailTimeout"}

// mailFlags are the flags of the mail sink (--targetUri smtp://host:port or
// smtps://host:port) that need more than the flag's value.
type mailFlags struct {
	to, types, tls, passwordFile string
}

// addMailFlags defines the mail sink's flags on fs, writing into c.Mail.
func addMailFlags(fs *flag.FlagSet, c *emitter.Config, def emitter.Config) *mailFlags {
	m := &mailFlags{}
	fs.StringVar(&c.Mail.From, "mailFrom", "", "sender `address` of the mails, e.g. \"Keycloak <keycloak@example.com>\"")
	fs.StringVar(&m.to, "mailTo", "", "comma-separated recipient `addresses`")
	fs.StringVar(&m.types, "mailTypes", strings.Join(def.Mail.Types, ","), "comma-separated `types` to mail: Event types and admin RESOURCE:OPERATION (USER:CREATE), globs (USER:*)")
	fs.StringVar(&c.Mail.Zone, "mailZone", "", "IANA time `zone` shown next to UTC, e.g. Europe/Berlin")
	fs.IntVar(&c.Mail.DigestThreshold, "mailDigestThreshold", def.Mail.DigestThreshold, "more than this many `events` within --mailDigestWindow: one digest mail per batch; -1: never")
	fs.DurationVar(&c.Mail.DigestWindow, "mailDigestWindow", def.Mail.DigestWindow, "sliding window of --mailDigestThreshold")
	fs.StringVar(&m.tls, "mailTls", "", "starttls (smtp://, required), tls (smtps://) or none (smtp:// to a loopback address only)")
	fs.StringVar(&c.Mail.CAFile, "mailCaFile", "", "PEM `file` of CA certificates trusted for the mail server")
	fs.StringVar(&c.Mail.Username, "mailUsername", "", "SMTP AUTH user `name`; empty: no AUTH")
	fs.StringVar(&m.passwordFile, "mailPasswordFile", "", "`file` holding the SMTP AUTH password (else "+envMailPassword+")")
	fs.StringVar(&c.Mail.Auth, "mailAuth", def.Mail.Auth, "SMTP AUTH mechanism: PLAIN or LOGIN")
	fs.DurationVar(&c.Mail.Timeout, "mailTimeout", def.Mail.Timeout, "longest wait to connect, for TLS and for each SMTP answer")
	return m
}

// apply sets the fields of c.Mail that need more than the flag's value.
func (m *mailFlags) apply(c *emitter.Config, getenv func(string) string) error {
	c.Mail.To = list(m.to)
	c.Mail.Types = list(m.types)
	if m.tls != "" {
		c.Mail.TLS = mailsink.TLSMode(m.tls)
	} else {
		c.Mail.TLS = ""
	}
	var err error
	c.Mail.Password, err = envflag.Secret(getenv, m.passwordFile, "mailPasswordFile", envMailPassword)
	return err
}

// isMailURI tells whether --targetUri names an SMTP server: then --format
// is not needed (mails are text).
func isMailURI(s string) bool {
	return strings.HasPrefix(s, "smtp://") || strings.HasPrefix(s, "smtps://")
}
