package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
)

// Version is the format version written into every snapshot. A snapshot of
// another version is refused rather than misread.
const Version = 1

// State is a decoded snapshot, for inspection and for moving a checkpoint
// between stores. The Ledger itself never copies its windows into a State.
type State struct {
	Version int `json:"version"`
	// MaxUID is the largest uid ever issued for this state (the uid
	// high-water mark): new uids stay above it even when the entries that
	// carried it were pruned. Absent (0) in snapshots of older versions.
	MaxUID int64 `json:"maxUid,omitempty"`
	// Streams maps a stream key (kind + "/" + realm id) to its position.
	Streams map[string]*Stream `json:"streams"`
}

// Stream is the position of one stream: one kind of event in one realm.
type Stream struct {
	// Cursor is the highest (time, id) the forward scan has read.
	Cursor Cursor `json:"cursor"`
	// Floor is a time in ms: a row older than Floor that is not in Window
	// has been dealt with. Restart scans begin at Floor.
	Floor int64 `json:"floor"`
	// Window maps Keycloak event ids read at or after Floor to what became
	// of them.
	Window map[string]Entry `json:"window"`
}

// Cursor is a position in a stream ordered by (time, id). A cursor with an
// empty ID stands before every event of its time.
type Cursor struct {
	Time int64  `json:"time"`
	ID   string `json:"id"`
}

// Entry is one event of a stream's window.
type Entry struct {
	Time  int64 `json:"t"`
	UID   int64 `json:"uid"`
	Acked bool  `json:"acked,omitempty"`
}

// JournalEntry is one uid issued after the last snapshot: the event id in
// its stream.
type JournalEntry struct {
	Stream string `json:"s"`
	ID     string `json:"id"`
	Time   int64  `json:"t"`
	UID    int64  `json:"uid"`
}

// DecodeState parses a snapshot; empty input is the empty state.
func DecodeState(b []byte) (*State, error) {
	st := &State{Version: Version, Streams: map[string]*Stream{}}
	if len(bytes.TrimSpace(b)) == 0 {
		return st, nil
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("parse snapshot: %w", err)
	}
	if st.Version != Version {
		return nil, fmt.Errorf("snapshot version %d, want %d", st.Version, Version)
	}
	if st.Streams == nil {
		st.Streams = map[string]*Stream{}
	}
	for key, s := range st.Streams {
		if s == nil {
			return nil, fmt.Errorf("snapshot: stream %q is null", key)
		}
		if s.Window == nil {
			s.Window = map[string]Entry{}
		}
	}
	return st, nil
}

// DecodeJournal parses journal lines. A last line cut short by a crash is
// ignored (its events had not left the process); any other bad line is an
// error naming it.
func DecodeJournal(b []byte) ([]JournalEntry, error) {
	var out []JournalEntry
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var e JournalEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			if !bytes.HasSuffix(b, []byte("\n")) && len(out) == n-1 && !sc.Scan() {
				break // the torn last line
			}
			return nil, fmt.Errorf("journal line %d: %w", n, err)
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return out, nil
}
