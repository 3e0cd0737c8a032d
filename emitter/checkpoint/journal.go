package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// A Journal is the write-ahead log of the uids assigned since the last Save:
// each uid is appended and synced before its event leaves the process, so
// that after a crash the event is sent again with the same uid although the
// checkpoint was saved before the uid was assigned. Once a Save holds every
// journaled uid, Reset empties the journal.
type Journal struct {
	path string
	f    *os.File
	buf  []byte
}

// JournalEntry is one assigned uid: the event id in its stream.
type JournalEntry struct {
	Stream string `json:"s"`
	ID     string `json:"id"`
	Time   int64  `json:"t"`
	UID    int64  `json:"uid"`
}

// JournalPath is the journal of the checkpoint at path.
func JournalPath(path string) string { return path + ".journal" }

// OpenJournal opens the journal at path for appending, creating it if needed.
func OpenJournal(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal %q: %w", path, err)
	}
	return &Journal{path: path, f: f}, nil
}

// Append writes entries as JSON lines and syncs them to disk.
func (j *Journal) Append(entries []JournalEntry) error {
	if len(entries) == 0 {
		return nil
	}
	j.buf = j.buf[:0]
	for _, e := range entries {
		j.buf = append(j.buf, `{"s":`...)
		j.buf = appendString(j.buf, e.Stream)
		j.buf = append(j.buf, `,"id":`...)
		j.buf = appendString(j.buf, e.ID)
		j.buf = append(j.buf, `,"t":`...)
		j.buf = strconv.AppendInt(j.buf, e.Time, 10)
		j.buf = append(j.buf, `,"uid":`...)
		j.buf = strconv.AppendInt(j.buf, e.UID, 10)
		j.buf = append(j.buf, "}\n"...)
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("append to journal %q: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %q: %w", j.path, err)
	}
	return nil
}

// Reset empties the journal; call it once a saved checkpoint holds every
// entry.
func (j *Journal) Reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate journal %q: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %q: %w", j.path, err)
	}
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error { return j.f.Close() }

// ReadJournal returns the entries of the journal at path; none when it does
// not exist. A last line cut short by a crash is ignored (its events had not
// left the process); any other bad line is an error naming it.
func ReadJournal(path string) ([]JournalEntry, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal %q: %w", path, err)
	}
	var out []JournalEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e JournalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if !bytes.HasSuffix(data, []byte("\n")) && len(out) == n-1 && !sc.Scan() {
				break // the torn last line
			}
			return nil, fmt.Errorf("journal %q line %d: %w", path, n, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
