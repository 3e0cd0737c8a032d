package emitter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"
)

// deadLetters is the append-only JSON-lines file of the envelopes the
// target rejected. Each record is written and fsync'ed before the envelope
// is acknowledged. The file is opened for each record (dead letters are
// rare), so that it can be rotated or moved away while the emitter runs.
type deadLetters struct {
	path string
	mu   sync.Mutex
}

// DeadLetterRecord is one line of the dead-letter file.
type DeadLetterRecord struct {
	UID     int64  `json:"uid"`
	Kind    Kind   `json:"kind"`
	ID      string `json:"id"`
	RealmID string `json:"realmId"`
	Type    string `json:"type"`
	Time    int64  `json:"time"` // event time, ms since the Unix epoch
	// Status is the target's HTTP status; 0 when the event never reached it.
	Status int    `json:"status"`
	Reason string `json:"reason"`
	// At is when the record was written (RFC 3339).
	At time.Time `json:"at"`
	// Body is the payload when it is UTF-8 text; BodyBase64 otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"bodyBase64,omitempty"`
}

// openDeadLetters checks that path can be appended to, creating it (and
// making its directory entry durable) if needed, so that a bad path stops
// the emitter at start rather than at the first rejection.
func openDeadLetters(path string) (*deadLetters, error) {
	d := &deadLetters{path: path}
	f, created, err := d.open()
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("dead-letter file %s: %w", path, err)
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("dead-letter file %s: %w", path, err)
		}
	}
	return d, nil
}

func (d *deadLetters) open() (*os.File, bool, error) {
	_, err := os.Stat(d.path)
	created := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("dead-letter file: %w", err)
	}
	return f, created, nil
}

// write appends the record of env and fsyncs the file.
func (d *deadLetters) write(env envelope, status int, reason error, now time.Time) error {
	rec := DeadLetterRecord{
		UID: env.UID, Kind: env.Kind, ID: env.ID, RealmID: env.RealmID, Type: env.Type, Time: env.Time,
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
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dead-letter record of uid %d: %w", env.UID, err)
	}
	line = append(line, '\n')

	d.mu.Lock()
	defer d.mu.Unlock()
	f, created, err := d.open()
	if err != nil {
		return err
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		err = syncDir(filepath.Dir(d.path))
	}
	if err != nil {
		return fmt.Errorf("dead-letter file %s: %w", d.path, err)
	}
	return nil
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
