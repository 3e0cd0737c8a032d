package receiver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// jsonlLine is one line of a JSON-lines store.
type jsonlLine struct {
	UID     int64           `json:"uid"`
	Kind    string          `json:"kind"`
	ID      string          `json:"id"`
	Time    int64           `json:"time"`
	Type    string          `json:"type"`
	RealmID string          `json:"realmId"`
	Payload json.RawMessage `json:"payload"`
}

// JSONLStore appends rows to a file, one JSON object per line, and keeps each
// uid once: the uids already in the file are loaded when it opens, and a
// row whose uid was seen is acknowledged without being written again.
// Concurrent Puts share one write and one fsync.
type JSONLStore struct {
	path   string
	f      *os.File
	w      *bufio.Writer
	seen   map[int64]struct{}
	b      *batcher
	buf    bytes.Buffer
	enc    *json.Encoder
	size   int64 // bytes of complete, synced lines
	noSync bool
}

// OpenJSONL opens (or creates) the JSON-lines store at path. A last line
// without its newline is the trace of a write cut short by a crash, never
// acknowledged: it is cut off and logged. Any other unreadable line is an
// error naming its number.
func OpenJSONL(path string, opts StoreOptions) (*JSONLStore, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open jsonl store: %w", err)
	}
	seen, end, err := loadUIDs(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	if st, err := f.Stat(); err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", path, err)
	} else if st.Size() > end {
		log.Warn("cutting off an incomplete last line (a write cut short, never acknowledged)",
			"path", path, "bytes", st.Size()-end)
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate %s to %d bytes: %w", path, end, err)
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("seek %s: %w", path, err)
	}
	s := &JSONLStore{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16), seen: seen, size: end, noSync: opts.NoSync}
	s.enc = json.NewEncoder(&s.buf)
	s.enc.SetEscapeHTML(false)
	s.b = newBatcher(s.write, 1024)
	return s, nil
}

// loadUIDs reads every complete line of f and returns the uids and the
// offset just after the last complete line.
func loadUIDs(f *os.File, path string) (map[int64]struct{}, int64, error) {
	seen := make(map[int64]struct{})
	r := bufio.NewReaderSize(f, 1<<16)
	var end int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return seen, end, nil // a rest without newline is cut off by the caller
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", path, err)
		}
		var l struct {
			UID *int64 `json:"uid"`
		}
		if err := json.Unmarshal(line, &l); err != nil {
			return nil, 0, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if l.UID == nil {
			return nil, 0, fmt.Errorf("%s line %d: no uid", path, n)
		}
		seen[*l.UID] = struct{}{}
		end += int64(len(line))
	}
}

// Put stores row unless its uid is already stored, and returns whether it
// was new. It returns once the line is on disk (written and synced; only
// written with StoreOptions.NoSync).
func (s *JSONLStore) Put(ctx context.Context, row Row) (bool, error) {
	return s.b.put(ctx, row)
}

// Len returns how many uids the store holds. It is safe only when no Put runs.
func (s *JSONLStore) Len() int { return len(s.seen) }

func (s *JSONLStore) write(_ context.Context, rows []Row) ([]bool, error) {
	fresh := make([]bool, len(rows))
	var added []int64
	var n int64
	var rowErrs rowErrors // nil unless a row could not be encoded
	for i, row := range rows {
		if _, dup := s.seen[row.UID]; dup {
			continue
		}
		s.buf.Reset()
		if err := s.enc.Encode(jsonlLine{row.UID, row.Kind, row.ID, row.Time, row.Type, row.RealmID, row.Payload}); err != nil {
			if rowErrs == nil {
				rowErrs = make(rowErrors, len(rows))
			}
			rowErrs[i] = fmt.Errorf("encode uid %d: %w: %w", row.UID, ErrRejected, err)
			continue
		}
		s.w.Write(s.buf.Bytes()) // errors surface at Flush
		n += int64(s.buf.Len())
		s.seen[row.UID] = struct{}{}
		added = append(added, row.UID)
		fresh[i] = true
	}
	if len(added) == 0 {
		return fresh, errOrNil(rowErrs)
	}
	if err := s.w.Flush(); err != nil {
		s.forget(added)
		return nil, fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.noSync {
		s.size += n
		return fresh, errOrNil(rowErrs)
	}
	if err := s.f.Sync(); err != nil {
		s.forget(added)
		return nil, fmt.Errorf("sync %s: %w", s.path, err)
	}
	s.size += n
	return fresh, errOrNil(rowErrs)
}

// forget undoes a failed write: it drops the uids, so that a redelivery
// writes them again, and cuts the file back to its last synced line, so that
// no half line stays in the middle of it.
func (s *JSONLStore) forget(uids []int64) {
	for _, u := range uids {
		delete(s.seen, u)
	}
	s.w.Reset(s.f)
	if err := s.f.Truncate(s.size); err == nil {
		s.f.Seek(s.size, io.SeekStart)
	}
}

// String returns "jsonl:" and the file's path, for logs.
func (s *JSONLStore) String() string { return "jsonl:" + s.path }

// Close writes what was handed over and closes the file.
func (s *JSONLStore) Close() error {
	s.b.close()
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}

// errOrNil returns e, or nil when e is nil: a nil rowErrors in an error
// interface would not be a nil error.
func errOrNil(e rowErrors) error {
	if e == nil {
		return nil
	}
	return e
}
