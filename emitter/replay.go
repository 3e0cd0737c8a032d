package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/twmb/franz-go/pkg/kerr"
	"golang.org/x/oauth2"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/nametmpl"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/redact"
)

// ReplayDeadLetters sends the records of the dead-letter file
// cfg.DeadLetterPath (its rotated parts first) again to cfg's target, oldest
// first, one at a time, each with its uid (the webhook-id of a signed
// request; a Kafka record's uid header, a NATS message's Nats-Msg-Id), and
// removes each one once the target took it. A record the target refuses
// again (a DeadLetterStatuses answer; a refusal for good of Kafka or NATS)
// stays, and the replay goes on; a hold answer, a TLS failure or refused
// credentials (the target refuses every event) stop it with an error naming
// the answer. Other failures are retried with backoff until ctx ends. Only
// the target's part of cfg is used and checked. The emitter may run
// meanwhile: it appends to a new live file.
func ReplayDeadLetters(ctx context.Context, cfg Config, log *slog.Logger) (deadletter.Stats, error) {
	if isMailTarget(cfg.TargetURI) {
		return deadletter.Stats{}, &FieldError{Field: "targetUri", Value: redact.URL(cfg.TargetURI),
			Err: errors.New("dead letters of a mail target cannot be replayed yet: replay them to an http(s), Kafka or NATS target")}
	}
	if err := cfg.validateTarget(); err != nil {
		return deadletter.Stats{}, err
	}
	if cfg.DeadLetterPath == "" {
		return deadletter.Stats{}, &FieldError{Field: "deadLetterFile", Err: errors.New("missing: the dead-letter file to replay")}
	}
	if log == nil {
		log = slog.Default()
	}
	if s := cfg.flagSink(); s.Kafka != nil || s.NATS != nil {
		return replayToStream(ctx, cfg, s, log)
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

// replayToStream replays the dead letters to the Kafka or NATS target of
// s, each as the record (message) the run would have produced: its topic
// (subject) from the realm's name and kind, its key, its headers.
func replayToStream(ctx context.Context, cfg Config, s SinkConfig, log *slog.Logger) (deadletter.Stats, error) {
	var (
		bs  batchSink
		err error
	)
	if s.Kafka != nil {
		bs, err = newKafkaSink(*s.Kafka, log)
	} else {
		bs, err = newNATSSink(*s.NATS, log)
	}
	if err != nil {
		return deadletter.Stats{}, err
	}
	defer closeSink(bs)
	var name string // the topic or subject
	if s.Kafka != nil {
		name = s.Kafka.Topic
	} else {
		name = s.NATS.Subject
	}
	tmpl, err := nametmpl.Parse(name, "topic")
	if err != nil {
		return deadletter.Stats{}, err // validated: not reached
	}
	byRealm := tmpl.Has("realm")
	answers := newAnswers(nil, nil)
	return deadletter.Replay(ctx, cfg.DeadLetterPath, func(ctx context.Context, rec deadletter.Record) error {
		env := replayEnvelope(rec, cfg.Numbering)
		if byRealm && env.RealmName == "" {
			// A dead letter of an older version: its topic is not known.
			log.Warn("a dead letter without its realm's name cannot go to a topic of {{realm}}: it stays in the file", "uid", rec.UID, "realm_id", rec.RealmID)
			return fmt.Errorf("uid %d: %w: the dead letter does not name its realm (written by an older version): replay it to a fixed topic or subject", rec.UID, deadletter.ErrRefused)
		}
		for wait := cfg.RetryWaitMin; ; wait = min(2*wait, cfg.RetryWaitMax) {
			err := bs.Send(ctx, env)
			if err == nil {
				log.Debug("dead letter delivered", "uid", rec.UID, "kind", rec.Kind, "type", rec.Type)
				return nil
			}
			r := answers.classify(err)
			switch {
			case r.action == deadLetterAnswer:
				log.Warn("the target refused a dead letter again: it stays in the file", "uid", rec.UID, "kind", rec.Kind,
					"type", rec.Type, "error", err)
				return fmt.Errorf("uid %d: %w: %w", rec.UID, deadletter.ErrRefused, err)
			case r.action == holdAnswer:
				return fmt.Errorf("the target refuses every event (%s: %s): %w", r.answer(), r.hint(), err)
			case credentialsRefused(err):
				return fmt.Errorf("the target refuses the credentials: %w", err)
			}
			log.Warn("a dead letter was not taken: trying again", "uid", rec.UID, "retry_in", wait, "error", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("uid %d: %w (the last error: %w)", rec.UID, ctx.Err(), err)
			case <-time.After(wait):
			}
		}
	})
}

// credentialsRefused tells whether err says that a Kafka broker or a NATS
// server refused the emitter's credentials: no retry mends that.
func credentialsRefused(err error) bool {
	var re *oauth2.RetrieveError // the OAUTHBEARER token endpoint refused the client
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) || errors.As(err, &re)
}
