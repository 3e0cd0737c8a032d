package emitter

import (
	"log/slog"
	"strings"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/httpsender"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// newSender returns the HTTP sender to cfg's target, retrying what the
// answer table of cfg does not hand back to the route. It warns about a
// Basic auth password that the original's receiver would refuse.
func newSender(cfg Config, log *slog.Logger) (*httpsender.Sender, error) {
	if strings.Contains(cfg.Password, ":") {
		log.Warn("the Basic auth password contains ':': keycloak-bridge, the original's receiver, splits the credentials " +
			"on every ':' and answers 403 to such a password (kc-event-receiver accepts it)")
	}
	answers := newAnswers(cfg.DeadLetterStatuses, cfg.HoldStatuses)
	sender, err := httpsender.New(httpsender.Options{
		URL:            cfg.TargetURI,
		ConnectTimeout: cfg.ConnectTimeout,
		RequestTimeout: cfg.ConnectionRequestTimeout,
		SocketTimeout:  cfg.SocketTimeout,
		AttemptTimeout: cfg.RequestTimeout,
		MaxConns:       cfg.Concurrency,
		Username:       cfg.Username,
		Password:       cfg.Password,
		CAFile:         cfg.CAFile,
		ClientCertFile: cfg.ClientCertFile,
		ClientKeyFile:  cfg.ClientKeyFile,
		SigningSecrets: cfg.SigningSecrets,
		RetryWaitMin:   cfg.RetryWaitMin,
		RetryWaitMax:   cfg.RetryWaitMax,
		Retry:          answers.retry,
		Logger:         log,
	})
	if err != nil {
		return nil, &FieldError{Field: "targetUri", Value: redact.URL(cfg.TargetURI), Err: redact.Error(err, cfg.TargetURI)}
	}
	return sender, nil
}
