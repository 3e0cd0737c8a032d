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
		Status: status, At: now.UTC(),
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
