package emitter

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/kafkasink"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/natssink"
)

// answerAction is what a route does with a failed delivery.
type answerAction int

// The actions of the answer table.
const (
	// retryAnswer: a passing failure (5xx, 429, a refused connection, a
	// timeout...): the sender tries again itself, with backoff.
	retryAnswer answerAction = iota
	// deadLetterAnswer: the target refused this event: it goes to the
	// dead-letter file and the route moves on to the next one.
	deadLetterAnswer
	// holdAnswer: the target is not set up to take any event: the route
	// keeps its position and tries the same event again until it is taken.
	holdAnswer
)

// String returns the action's name, as the README's table says it.
func (a answerAction) String() string {
	switch a {
	case retryAnswer:
		return "retry"
	case deadLetterAnswer:
		return "dead-letter"
	case holdAnswer:
		return "hold"
	}
	return fmt.Sprintf("answerAction(%d)", int(a))
}

// answerRow is one row of answerTable.
type answerRow struct {
	status int          // the HTTP status
	action answerAction // what the route does by default
	hint   string       // what to check, in the log line and /readyz
}

// answerTable is the split of the target's final answers: those about the
// event are dead-lettered, those about the target hold the route. It is the
// one place the split is written: DefaultConfig takes its default lists from
// it, the README shows it (TestREADMEShowsTheAnswerTable keeps them equal),
// and --deadLetterStatuses and --holdStatuses move a status from one side to
// the other. Statuses in neither list (5xx, 429, 408, 3xx...) are retried by
// the sender; TLS failures always hold (see tlsRefusal).
var answerTable = []answerRow{
	{http.StatusBadRequest, deadLetterAnswer, "the receiver cannot read this event"},
	{http.StatusUnauthorized, holdAnswer, "wrong or missing credentials: wrong secret (CT_KEYCLOAK_BRIDGE_SECRET_TOKEN, --secretFile), --username or signing secret?"},
	{http.StatusForbidden, holdAnswer, "credentials refused: wrong secret or user? (keycloak-bridge answers 403 to a password holding ':')"},
	{http.StatusNotFound, holdAnswer, "nothing at that URL: wrong path in --targetUri?"},
	{http.StatusGone, holdAnswer, "the endpoint is disabled or removed: check the receiver and --targetUri"},
	{http.StatusRequestEntityTooLarge, deadLetterAnswer, "the event is larger than the receiver accepts"},
	{http.StatusUnprocessableEntity, deadLetterAnswer, "the receiver cannot process this event"},
}

// defaultStatuses returns the statuses answerTable gives action, in order.
func defaultStatuses(action answerAction) []int {
	var s []int
	for _, r := range answerTable {
		if r.action == action {
			s = append(s, r.status)
		}
	}
	return s
}

// answers is the answer table of one route, after the configuration moved
// statuses between its sides.
type answers struct {
	deadLetter, hold []int
}

// newAnswers returns the table that dead-letters the deadLetter statuses and
// holds on the hold statuses (Config.Validate checks they do not overlap).
func newAnswers(deadLetter, hold []int) answers {
	return answers{deadLetter: slices.Clone(deadLetter), hold: slices.Clone(hold)}
}

// refusal is a failed delivery as the answer table sees it.
type refusal struct {
	action answerAction
	status int   // the HTTP status; 0 for a TLS failure or no answer
	err    error // the sink's error
	// retryAfter is the wait the target asked for; 0 when none.
	retryAfter time.Duration
}

// statusAnswer is implemented by the errors of a sink that carry the
// target's answer.
type statusAnswer interface {
	error
	// StatusCode is the target's answer (an HTTP status).
	StatusCode() int
}

// delayAnswer is implemented by the answers that carry the wait the
// target asked for (Retry-After).
type delayAnswer interface {
	error
	RetryAfterDelay() time.Duration
}

// permanentRefusal is implemented by the errors of a sink that knows
// whether the target refused the event for good (a Kafka record too large,
// a topic that does not exist, an authorization refusal...): Permanent
// true dead-letters the event with the error's message as the reason.
type permanentRefusal interface {
	error
	Permanent() bool
}

// classify returns what the route does with err, an error of Sink.Send.
func (a answers) classify(err error) refusal {
	r := refusal{err: err}
	if p, ok := errors.AsType[permanentRefusal](err); ok && p.Permanent() {
		r.action = deadLetterAnswer
		return r
	}
	if sa, ok := errors.AsType[statusAnswer](err); ok {
		r.status = sa.StatusCode()
		r.action = a.ofStatus(r.status)
		if da, ok := errors.AsType[delayAnswer](err); ok {
			r.retryAfter = da.RetryAfterDelay()
		}
		return r
	}
	if tlsRefusal(err) {
		r.action = holdAnswer
	}
	return r
}

// ofStatus returns the action for an HTTP status.
func (a answers) ofStatus(status int) answerAction {
	switch {
	case slices.Contains(a.deadLetter, status):
		return deadLetterAnswer
	case slices.Contains(a.hold, status):
		return holdAnswer
	}
	return retryAnswer
}

// retry is the sender's Retry policy: it retries what the table does not
// hand back to the route.
func (a answers) retry(status int, err error) bool {
	if status != 0 {
		return a.ofStatus(status) == retryAnswer
	}
	return !tlsRefusal(err)
}

// tlsRefusal tells whether err is a TLS failure that says the target and
// the emitter do not agree on TLS, which no retry mends: a certificate that
// does not verify (unknown authority, wrong host, expired), the target's
// alert refusing the handshake (our client certificate, the TLS version), or
// an answer that is not TLS at all (https to a plain HTTP port).
func tlsRefusal(err error) bool {
	if err == nil {
		return false
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	// An alert from the target comes as a net.OpError "remote error"
	// (crypto/tls keeps the alert's type unexported).
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "remote error" {
		return true
	}
	return false
}

// answer names what the target said, for logs and /readyz: "401
// Unauthorized", or "TLS" for a TLS failure.
func (r refusal) answer() string {
	if r.status != 0 {
		return fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	}
	if tlsRefusal(r.err) {
		return "TLS"
	}
	return "no answer"
}

// hint says what to check.
func (r refusal) hint() string {
	if r.status == 0 {
		switch {
		case tlsRefusal(r.err) && isType[*kafkasink.Error](r.err):
			return "the broker and the emitter do not agree on TLS (the error says which certificate): check --kafkaCaFile, --kafkaClientCertFile, --kafkaClientKeyFile"
		case tlsRefusal(r.err) && isType[*natssink.Error](r.err):
			return "the server and the emitter do not agree on TLS: check --natsCaFile, --natsClientCertFile, --natsClientKeyFile"
		case isType[tls.RecordHeaderError](r.err):
			return "the target does not speak TLS: http:// rather than https://, or the wrong port in --targetUri?"
		case isRemoteAlert(r.err):
			return "the target refused the TLS handshake: client certificate (--clientCertFile, --clientKeyFile) missing or not trusted?"
		case tlsRefusal(r.err):
			return "the target's certificate does not verify: its CA missing from --caFile, or the host in --targetUri not the certificate's name?"
		}
		return ""
	}
	for _, row := range answerTable {
		if row.status == r.status {
			return row.hint
		}
	}
	if r.action == holdAnswer {
		return "listed in --holdStatuses: check the target's setup"
	}
	return "listed in --deadLetterStatuses"
}

func isType[T error](err error) bool {
	_, ok := errors.AsType[T](err)
	return ok
}

func isRemoteAlert(err error) bool {
	oe, ok := errors.AsType[*net.OpError](err)
	return ok && oe.Op == "remote error"
}
