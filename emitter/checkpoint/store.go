package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// A Store keeps a Ledger's state durably: a snapshot, replaced as a whole,
// and a journal of lines appended after it. The Ledger owns the format;
// a Store only keeps bytes. Calls are made one at a time.
type Store interface {
	// Load returns the last snapshot saved and the journal appended since;
	// both are empty when nothing was ever saved.
	Load(ctx context.Context) (snapshot, journal []byte, err error)
	// Append adds lines to the journal and returns once they are durable.
	Append(ctx context.Context, lines []byte) error
	// Save replaces the snapshot with snap and empties the journal (snap
	// covers every line appended before the call), durably: after a crash
	// the store holds the old snapshot and journal or the new snapshot.
	Save(ctx context.Context, snap []byte) error
	// Close releases the store.
	Close() error
}

// File is the Store of one instance: the snapshot in a file replaced
// atomically (a temporary file, fsync, rename, fsync of the directory),
// the journal beside it in path + ".journal", appended and fsynced.
type File struct {
	path    string
	journal *os.File // opened on the first Append
}

// NewFile returns the file store at path; nothing is opened yet.
func NewFile(path string) *File { return &File{path: path} }

// String names the store in messages.
func (f *File) String() string { return f.path }

// JournalPath is the journal of the snapshot file at path.
func JournalPath(path string) string { return path + ".journal" }

// Load reads the snapshot and the journal; missing files are empty.
func (f *File) Load(context.Context) ([]byte, []byte, error) {
	snap, err := readIfExists(f.path)
	if err != nil {
		return nil, nil, err
	}
	journal, err := readIfExists(JournalPath(f.path))
	if err != nil {
		return nil, nil, err
	}
	return snap, journal, nil
}

func readIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", path, err)
	}
	return b, nil
}

// Append writes lines to the journal and syncs it.
func (f *File) Append(_ context.Context, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	if f.journal == nil {
		j, err := os.OpenFile(JournalPath(f.path), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("open journal: %w", err)
		}
		f.journal = j
	}
	if _, err := f.journal.Write(lines); err != nil {
		return fmt.Errorf("append to journal %q: %w", f.journal.Name(), err)
	}
	if err := f.journal.Sync(); err != nil {
		return fmt.Errorf("sync journal %q: %w", f.journal.Name(), err)
	}
	return nil
}

// Save writes snap atomically, then empties the journal.
func (f *File) Save(ctx context.Context, snap []byte) error {
	return f.SaveStream(ctx, func(w io.Writer) error {
		_, err := w.Write(snap)
		return err
	})
}

// SaveStream is Save of what write writes, written to the temporary file
// as it comes.
func (f *File) SaveStream(_ context.Context, write func(w io.Writer) error) error {
	if err := writeAtomic(f.path, write); err != nil {
		return err
	}
	if f.journal == nil {
		if err := os.Truncate(JournalPath(f.path), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("truncate journal: %w", err) // the entries are in the snapshot: replaying them is harmless
		}
		return nil
	}
	if err := f.journal.Truncate(0); err != nil {
		return fmt.Errorf("truncate journal %q: %w", f.journal.Name(), err)
	}
	if err := f.journal.Sync(); err != nil {
		return fmt.Errorf("sync journal %q: %w", f.journal.Name(), err)
	}
	return nil
}

// Close closes the journal.
func (f *File) Close() error {
	if f.journal == nil {
		return nil
	}
	err := f.journal.Close()
	f.journal = nil
	return err
}

// writeAtomic replaces path with what write writes: after a crash path
// holds either the previous or the new content.
func writeAtomic(path string, write func(w io.Writer) error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %q: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %q: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %q: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %q: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %q: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %q: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// Load returns the snapshot saved in the file store at path, decoded (the
// journal beside it is not applied): for inspection and tests.
func Load(path string) (*State, error) {
	snap, err := readIfExists(path)
	if err != nil {
		return nil, err
	}
	st, err := DecodeState(snap)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %q: %w", path, err)
	}
	return st, nil
}

// Memory is a Store in memory, for tests: a Ledger opened again on the
// same Memory sees what a restarted process would find on disk. Fail, when
// set, is called before each operation ("load", "append", "save") and its
// error returned instead.
type Memory struct {
	mu       sync.Mutex
	snapshot []byte
	journal  []byte
	Fail     func(op string) error
}

func (m *Memory) fail(op string) error {
	if m.Fail == nil {
		return nil
	}
	return m.Fail(op)
}

// Load returns copies of what was saved and appended.
func (m *Memory) Load(context.Context) ([]byte, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("load"); err != nil {
		return nil, nil, err
	}
	return append([]byte(nil), m.snapshot...), append([]byte(nil), m.journal...), nil
}

// Append adds lines to the journal.
func (m *Memory) Append(_ context.Context, lines []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("append"); err != nil {
		return err
	}
	m.journal = append(m.journal, lines...)
	return nil
}

// Save replaces the snapshot and empties the journal.
func (m *Memory) Save(_ context.Context, snap []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.fail("save"); err != nil {
		return err
	}
	m.snapshot, m.journal = append([]byte(nil), snap...), nil
	return nil
}

// Close does nothing.
func (m *Memory) Close() error { return nil }

// State decodes the saved snapshot, for assertions.
func (m *Memory) State() (*State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return DecodeState(m.snapshot)
}
