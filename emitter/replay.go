package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// ReplayDeadLetters sends the records of the dead-letter file
// cfg.DeadLetterPath (its rotated parts first) again to cfg's target, oldest
// first, one at a time, each with its uid (the webhook-id of a signed
// request), and removes each one once the target took it. A record the
// target refuses again (a DeadLetterStatuses answer) stays, and the replay
// goes on; a hold answer or a TLS failure (the target refuses every event)
// stops it with an error naming the answer. Other failures are retried with
// backoff until ctx ends. Only the target's part of cfg is used and
// checked. The emitter may run meanwhile: it appends to a new live file.
func ReplayDeadLetters(ctx context.Context, cfg Config, log *slog.Logger) (deadletter.Stats, error) {
	if isMailTarget(cfg.TargetURI) {
		return deadletter.Stats{}, &FieldError{Field: "targetUri", Value: redact.URL(cfg.TargetURI),
			Err: errors.New("dead letters of a mail target cannot be replayed yet: replay them to an http(s) target")}
	}
	if err := cfg.validateTarget(); err != nil {
		return deadletter.Stats{}, err
	}
	if s := cfg.flagSink(); s.Kafka != nil || s.NATS != nil {
		return deadletter.Stats{}, &FieldError{Field: "targetUri", Value: cfg.TargetURI,
			Err: errors.New("deadletters replay sends to an http or https target only, not yet to Kafka or NATS")}
	}
	if cfg.DeadLetterPath == "" {
		return deadletter.Stats{}, &FieldError{Field: "deadLetterFile", Err: errors.New("missing: the dead-letter file to replay")}
	}
	if log == nil {
		log = slog.Default()
	}
	sender, err := newSender(cfg, log)
	if err != nil {
		return deadletter.Stats{}, err
	}
	defer sender.CloseIdleConnections()
	answers := newAnswers(cfg.DeadLetterStatuses, cfg.HoldStatuses)
	return deadletter.Replay(ctx, cfg.DeadLetterPath, func(ctx context.Context, rec deadletter.Record) error {
		err := sender.Send(ctx, strconv.FormatInt(rec.UID, 10), rec.Payload())
		if err == nil {
			log.Debug("dead letter delivered", "uid", rec.UID, "kind", rec.Kind, "type", rec.Type)
			return nil
		}
		switch r := answers.classify(err); r.action {
		case deadLetterAnswer:
			log.Warn("the target refused a dead letter again: it stays in the file", "uid", rec.UID, "kind", rec.Kind,
				"type", rec.Type, "status", r.status, "error", err)
			return fmt.Errorf("uid %d: %w: %w", rec.UID, deadletter.ErrRefused, err)
		case holdAnswer:
			return fmt.Errorf("the target refuses every event (%s: %s): %w", r.answer(), r.hint(), err)
		}
		return err
	})
}
