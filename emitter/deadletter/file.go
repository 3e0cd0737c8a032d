// Package deadletter holds the dead-letter file: the JSON-lines file of the
// events a target refused, one Record per line, rotated at a size limit to
// PATH.1, PATH.2, ... (oldest first; the live file PATH is the newest). It
// appends records (File), reads what is there (Summarize) and sends it again
// (Replay), marking each line once it is delivered so that a crash repeats
// at most the line in flight.
//
// The emitter appends while a replay runs: both take an exclusive lock on
// the file's directory (flock) to rotate or append, and a replay works only
// on rotated parts, which nothing appends to.
package deadletter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Record is one line of a dead-letter file.
type Record struct {
	UID     int64  `json:"uid"`
	Kind    string `json:"kind"` // Event or AdminEvent
	ID      string `json:"id"`
	RealmID string `json:"realmId"`
	Type    string `json:"type"`
	Time    int64  `json:"time"` // event time, ms since the Unix epoch
	// Realm is the realm's name and Key the user the event is about (a
	// Kafka record's key): what a replay to Kafka or NATS needs besides
	// the body for the topic (subject) and the key. Empty when unknown.
	Realm string `json:"realm,omitempty"`
	Key   string `json:"key,omitempty"`
	// Status is the target's HTTP status; 0 when the event never reached it.
	Status int    `json:"status"`
	Reason string `json:"reason"`
	// At is when the record was written.
	At time.Time `json:"at"`
	// Body is the payload when it is UTF-8 text; BodyBase64 otherwise.
	Body       string `json:"body,omitempty"`
	BodyBase64 []byte `json:"bodyBase64,omitempty"`
}

// Payload returns the body the target was sent.
func (r Record) Payload() []byte {
	if r.Body != "" {
		return []byte(r.Body)
	}
	return r.BodyBase64
}

// File appends records to a dead-letter file. It is safe for concurrent use.
type File struct {
	path     string
	maxBytes int64
	mu       sync.Mutex
}

// Open returns the File at path, which rotates before a record would take
// it past maxBytes (a record larger than that gets a file of its own). It
// creates nothing: the file appears with the first record. It fails, naming
// path, when the file exists and cannot be appended to, or when it does not
// exist and its directory is not writable.
func Open(path string, maxBytes int64) (*File, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("dead-letter file %s: size limit %d, want > 0", path, maxBytes)
	}
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return nil, fmt.Errorf("dead-letter file %s: not a regular file (%s)", path, fi.Mode().Type())
	case err == nil:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return nil, fmt.Errorf("dead-letter file: %w", err)
		}
		f.Close()
	case errors.Is(err, fs.ErrNotExist):
		probe, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".probe-*")
		if err != nil {
			return nil, fmt.Errorf("dead-letter file %s: its directory is not writable: %w", path, err)
		}
		probe.Close()
		os.Remove(probe.Name())
	default:
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return &File{path: path, maxBytes: maxBytes}, nil
}

// Path returns the path of the live file.
func (f *File) Path() string { return f.path }

// Append writes rec as a line and makes it durable (fsync of the file, and
// of the directory when the file was created or rotated) before it returns.
// The file is created with mode 0600: bodies hold personal data.
func (f *File) Append(rec Record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("dead-letter record of uid %d: %w", rec.UID, err)
	}
	line = append(line, '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.append(line); err != nil {
		return fmt.Errorf("dead-letter file %s: %w", f.path, err)
	}
	return nil
}

func (f *File) append(line []byte) error {
	unlock, err := lockDir(filepath.Dir(f.path))
	if err != nil {
		return err
	}
	defer unlock()
	size, err := fileSize(f.path)
	if err != nil {
		return err
	}
	newFile := size == 0
	if size > 0 && size+int64(len(line)) > f.maxBytes {
		if _, err := rotate(f.path); err != nil {
			return err
		}
		size, newFile = 0, true
	}
	out, err := os.OpenFile(f.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if size > 0 {
		// A crash in the middle of an earlier append can leave a line
		// without its end: end it, so that this record stays readable.
		last := make([]byte, 1)
		if _, err := out.ReadAt(last, size-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	_, err = out.Write(line)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && newFile {
		err = syncDir(filepath.Dir(f.path))
	}
	return err
}

// fileSize returns the size of path, 0 when it does not exist.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// rotate renames the live file at path to the part after the newest one and
// returns that part's name ("" when there was no live file or it was
// empty). The caller holds the directory lock.
func rotate(path string) (string, error) {
	size, err := fileSize(path)
	if err != nil || size == 0 {
		return "", err
	}
	parts, err := Parts(path)
	if err != nil {
		return "", err
	}
	next := 1
	if len(parts) > 0 {
		next = partNumber(path, parts[len(parts)-1]) + 1
	}
	part := path + "." + strconv.Itoa(next)
	if err := os.Rename(path, part); err != nil {
		return "", err
	}
	return part, syncDir(filepath.Dir(path))
}

// Parts returns the rotated parts of the dead-letter file at path, oldest
// first (PATH.1 before PATH.2 ... before PATH.10); the live file, newer
// than all of them, is not in the list.
func Parts(path string) ([]string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dead-letter parts of %s: %w", path, err)
	}
	var parts []string
	for _, e := range entries {
		n, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || !e.Type().IsRegular() || n == "" || strings.Trim(n, "0123456789") != "" || n[0] == '0' {
			continue
		}
		parts = append(parts, filepath.Join(dir, e.Name()))
	}
	slices.SortFunc(parts, func(a, b string) int { return partNumber(path, a) - partNumber(path, b) })
	return parts, nil
}

func partNumber(path, part string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(part, path+"."))
	return n
}

// Files returns the parts and then the live file when it exists: every file
// of the dead-letter file at path, oldest first.
func Files(path string) ([]string, error) {
	files, err := Parts(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err == nil {
		files = append(files, path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return files, nil
}

// Size returns the bytes of the dead-letter file at path and its parts.
func Size(path string) (int64, error) {
	files, err := Files(path)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, f := range files {
		n, err := fileSize(f)
		if err != nil {
			return 0, fmt.Errorf("dead-letter file: %w", err)
		}
		total += n
	}
	return total, nil
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
