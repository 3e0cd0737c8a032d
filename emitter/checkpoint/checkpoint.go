// Package checkpoint keeps the tailer's durable position in one JSON file:
// per stream, the forward cursor, the floor below which rows count as done,
// and the window of recently read events with the uid each was given and
// whether the target has acknowledged it. The file is replaced atomically,
// so a crash leaves either the old or the new state, never a torn one.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Version is the format version written into every file. Load refuses files
// of another version rather than misreading them.
const Version = 1

// State is the content of a checkpoint file. The zero value (no streams) is
// what Load returns for a missing file.
type State struct {
	Version int `json:"version"`
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

// Cursor is a position in a stream ordered by (time, id).
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

// Load reads the state saved at path. A missing file yields an empty state
// and no error; a file that cannot be parsed is an error naming the path.
func Load(path string) (*State, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &State{Version: Version, Streams: map[string]*Stream{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %q: %w", path, err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("parse checkpoint %q: %w", path, err)
	}
	if st.Version != Version {
		return nil, fmt.Errorf("checkpoint %q: version %d, want %d", path, st.Version, Version)
	}
	if st.Streams == nil {
		st.Streams = map[string]*Stream{}
	}
	for key, s := range st.Streams {
		if s == nil {
			return nil, fmt.Errorf("checkpoint %q: stream %q is null", path, key)
		}
		if s.Window == nil {
			s.Window = map[string]Entry{}
		}
	}
	return &st, nil
}

// Save writes st to path atomically: it writes a temporary file in the same
// directory, syncs it, renames it over path and syncs the directory, so that
// after a crash path holds either the previous or the new state.
func Save(path string, st *State) error {
	st.Version = Version
	data := appendState(nil, st)
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for checkpoint %q: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write checkpoint %q: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync checkpoint %q: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close checkpoint %q: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace checkpoint %q: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open checkpoint directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint directory %q: %w", dir, err)
	}
	return nil
}
