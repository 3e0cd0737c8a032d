package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/envflag"
)

// targetFlags are the flags that reach the target, shared by run and
// deadletters replay (same names, same variables): its URL, the original's
// timeouts, the retry waits, the answer table, the dead-letter file,
// credentials, signing and TLS. addTargetFlags defines them; apply turns
// what was parsed into the Config.
type targetFlags struct {
	connectMs, requestMs, socketMs   int64
	secretFile, sigFile              string
	deadLetterStatuses, holdStatuses string
	oauth2SecretFile, oauth2Scopes   string
}

// targetFlagNames are the flags addTargetFlags defines, for the usage of
// deadletters replay.
var targetFlagNames = []string{"targetUri", "connectTimeoutMillis", "connectionRequestTimeoutMillis", "socketTimeoutMillis", "requestTimeout",
	"retryWaitMin", "retryWaitMax", "deadLetterFile", "deadLetterStatuses", "holdStatuses",
	"username", "secretFile", "oauth2TokenUrl", "oauth2ClientId", "oauth2ClientSecretFile", "oauth2Scopes",
	"signingSecretFile", "caFile", "clientCertFile", "clientKeyFile"}

// addTargetFlags defines the target's flags on fs, writing into c; def holds
// the defaults.
func addTargetFlags(fs *flag.FlagSet, c *emitter.Config, def emitter.Config, getenv func(string) string) *targetFlags {
	t := &targetFlags{}
	fs.StringVar(&c.TargetURI, "targetUri", "", "`URL` every event is POSTed to (http or https), or kafka://host:port[,host:port]/topic, or nats://host:port[,host:port]/subject")
	fs.Int64Var(&t.connectMs, "connectTimeoutMillis", def.ConnectTimeout.Milliseconds(), "longest time to connect (TCP and TLS), `ms`")
	fs.Int64Var(&t.requestMs, "connectionRequestTimeoutMillis", def.ConnectionRequestTimeout.Milliseconds(), "longest wait for a free connection of the pool, `ms`")
	fs.Int64Var(&t.socketMs, "socketTimeoutMillis", def.SocketTimeout.Milliseconds(), "longest silence while reading a response, `ms`")
	fs.DurationVar(&c.RequestTimeout, "requestTimeout", def.RequestTimeout, "longest `duration` of one whole attempt, however the target dribbles its answer; 0: no bound but the socket timeout")

	fs.DurationVar(&c.RetryWaitMin, "retryWaitMin", def.RetryWaitMin, "first wait before a retry")
	fs.DurationVar(&c.RetryWaitMax, "retryWaitMax", def.RetryWaitMax, "longest wait between retries (retries never stop), also while the target refuses every event")
	fs.StringVar(&c.DeadLetterPath, "deadLetterFile", def.DeadLetterPath, "JSON-lines `file` of the events the target refused (--deadLetterStatuses); rotated to file.1, file.2, ...")
	fs.StringVar(&t.deadLetterStatuses, "deadLetterStatuses", joinStatuses(def.DeadLetterStatuses),
		"comma-separated `statuses` that refuse the event: it is dead-lettered and the next one goes")
	fs.StringVar(&t.holdStatuses, "holdStatuses", joinStatuses(def.HoldStatuses),
		"comma-separated `statuses` that refuse every event (the target's setup): the route holds its position, retries,\nand /readyz says why; TLS failures always hold. A status in neither list is retried")

	fs.StringVar(&c.Username, "username", getenv("HOSTNAME"), "Basic auth user `name` (the original sends $HOSTNAME)")
	fs.StringVar(&t.secretFile, "secretFile", "", "`file` holding the Basic auth password (else "+envSecretToken+"); no password: no Basic auth")
	fs.StringVar(&c.OAuth2.TokenURL, "oauth2TokenUrl", "", "token endpoint `URL` of an OAuth2 client credentials grant: its bearer token goes with every request instead of Basic auth")
	fs.StringVar(&c.OAuth2.ClientID, "oauth2ClientId", "", "OAuth2 client `id`")
	fs.StringVar(&t.oauth2SecretFile, "oauth2ClientSecretFile", "", "`file` holding the OAuth2 client secret (else "+envOAuth2Secret+")")
	fs.StringVar(&t.oauth2Scopes, "oauth2Scopes", "", "comma-separated OAuth2 `scopes` to ask for")
	fs.StringVar(&t.sigFile, "signingSecretFile", "", "`file` of Standard Webhooks secrets (whsec_..., one per line) to sign requests with (else "+envSigningSecret+")")
	fs.StringVar(&c.CAFile, "caFile", "", "PEM `file` of CA certificates trusted for an https target")
	fs.StringVar(&c.ClientCertFile, "clientCertFile", "", "PEM `file` of a client certificate for mTLS")
	fs.StringVar(&c.ClientKeyFile, "clientKeyFile", "", "PEM `file` of the client certificate's key")
	return t
}

// apply sets the fields of c that need more than the flag's value: the
// durations in milliseconds, the status lists and the secrets.
func (t *targetFlags) apply(c *emitter.Config, getenv func(string) string) error {
	c.ConnectTimeout = time.Duration(t.connectMs) * time.Millisecond
	c.ConnectionRequestTimeout = time.Duration(t.requestMs) * time.Millisecond
	c.SocketTimeout = time.Duration(t.socketMs) * time.Millisecond
	var err error
	if c.DeadLetterStatuses, err = parseStatuses("deadLetterStatuses", t.deadLetterStatuses); err != nil {
		return err
	}
	if c.HoldStatuses, err = parseStatuses("holdStatuses", t.holdStatuses); err != nil {
		return err
	}
	if c.Password, err = envflag.Secret(getenv, t.secretFile, "secretFile", envSecretToken); err != nil {
		return err
	}
	if c.Password == "" {
		c.Username = "" // the original's Basic auth needs both; without a password none is sent
	}
	if c.OAuth2.ClientSecret, err = envflag.Secret(getenv, t.oauth2SecretFile, "oauth2ClientSecretFile", envOAuth2Secret); err != nil {
		return err
	}
	if c.OAuth2.TokenURL == "" && c.OAuth2.ClientID == "" {
		c.OAuth2.ClientSecret = "" // a secret in the environment alone asks for no grant
	}
	c.OAuth2.Scopes = list(t.oauth2Scopes)
	if c.OAuth2.TokenURL != "" && c.Password == "" {
		c.Username = "" // the token replaces Basic auth: the $HOSTNAME default is not a user
	}
	sigs, err := envflag.Secret(getenv, t.sigFile, "signingSecretFile", envSigningSecret)
	if err != nil {
		return err
	}
	c.SigningSecrets = strings.Fields(sigs)
	return nil
}

// parseStatuses reads a comma-separated list of HTTP statuses; empty is none.
func parseStatuses(name, s string) ([]int, error) {
	statuses := []int{}
	for _, item := range list(s) {
		n, err := strconv.Atoi(item)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %q is not a status: want comma-separated HTTP statuses such as 400,413,422", name, s, item)
		}
		statuses = append(statuses, n)
	}
	return statuses, nil
}

func joinStatuses(statuses []int) string {
	s := make([]string, len(statuses))
	for i, n := range statuses {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
