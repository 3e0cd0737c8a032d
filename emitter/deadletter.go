package emitter

import (
	"time"
	"unicode/utf8"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/deadletter"
)

// deadLetterRecord is the dead-letter line of env: the target's status (0
// when it never reached it), the reason and the body.
func deadLetterRecord(env envelope, status int, reason error, now time.Time) deadletter.Record {
	rec := deadletter.Record{
		UID: env.UID, Kind: string(env.Kind), ID: env.ID, RealmID: env.RealmID, Type: env.Type, Time: env.Time,
		Realm: env.RealmName, Key: env.Key, Status: status, At: now.UTC(),
	}
	if reason != nil {
		rec.Reason = reason.Error()
	}
	if utf8.Valid(env.Body) {
		rec.Body = string(env.Body)
	} else {
		rec.BodyBase64 = env.Body
	}
	return rec
}

// replayEnvelope is the envelope of a dead letter, to send it again: the
// realm's name and the key of the record; a record of an older version
// has neither, and the key is taken from its payload (which does not hold
// the realm's name).
func replayEnvelope(rec deadletter.Record, n Numbering) envelope {
	env := envelope{Kind: Kind(rec.Kind), UID: rec.UID, ID: rec.ID, RealmID: rec.RealmID, Type: rec.Type, Time: rec.Time,
		Body: rec.Payload(), Key: rec.Key, RealmName: rec.Realm}
	if env.Key == "" && env.RealmName == "" {
		if r, _, err := DecodePayload(env.Body, n); err == nil {
			env.Key = r.Key()
		}
	}
	return env
}
