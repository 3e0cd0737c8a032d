package emitter

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// newSender returns the HTTP sender to the target of the flags (see
// newHTTPSender).
func newSender(cfg Config, log *slog.Logger) (*httpsender.Sender, error) {
	return newHTTPSender(cfg.flagRoute(), log)
}

// httpSink is the sink of an HTTP route: one POST per envelope, its uid as
// the request's id.
type httpSink struct{ *httpsender.Sender }

func (h httpSink) Send(ctx context.Context, env envelope) error {
	return h.Sender.Send(ctx, strconv.FormatInt(env.UID, 10), env.Body)
}

// newHTTPSender returns the HTTP sender to r's target, retrying what the
// answer table of r does not hand back to the route. It warns about a
// Basic auth password that the original's receiver would refuse.
func newHTTPSender(r Route, log *slog.Logger) (*httpsender.Sender, error) {
	h := r.Sink.HTTP
	if strings.Contains(h.Password, ":") {
		log.Warn("the Basic auth password contains ':': keycloak-bridge, the original's receiver, splits the credentials " +
			"on every ':' and answers 403 to such a password (kc-event-receiver accepts it)")
	}
	answers := newAnswers(h.DeadLetterStatuses, h.HoldStatuses)
	o := h.senderOptions(r.RetryWaitMin, r.RetryWaitMax, r.Concurrency)
	o.Retry, o.Logger = answers.retry, log
	sender, err := httpsender.New(o)
	if err != nil {
		field := "targetUri"
		if r.Name != defaultRoute {
			field = "sink.http.url of route " + r.Name
		}
		return nil, &FieldError{Field: field, Value: redact.URL(h.URL), Err: redact.Error(err, h.URL)}
	}
	return sender, nil
}
