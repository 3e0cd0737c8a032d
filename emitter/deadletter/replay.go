package deadletter

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// delivered is the first byte of a line whose record was delivered by a
// replay: it replaces the line's opening '{' in place, one byte written and
// synced, so that a crash at any point repeats at most the record in
// flight. The line stays valid JSON; Summarize and Replay skip it, and the
// replay's compaction removes it.
const delivered = ' '

// ErrRefused, wrapped in the error of a SendFunc, says that the target
// refused the record again: it stays in the file and the replay goes on.
var ErrRefused = errors.New("refused again")

// SendFunc sends one record again. It returns nil once the target took it,
// an error wrapping ErrRefused when the target refused it again, and any
// other error to stop the replay (the record stays).
type SendFunc func(ctx context.Context, rec Record) error

// Stats count what a replay did.
type Stats struct {
	Delivered  int // sent and removed
	Refused    int // refused again, kept
	Unsendable int // lines that are not a record with a body, kept
	Left       int // every record still in the files, refused ones included
}

// Replay sends every record of the dead-letter file at path again, oldest
// first, through send, and removes each one once it is delivered. It first
// rotates the live file into a part (the emitter goes on appending to a new
// live file), then works on the parts in order; a part left empty is
// removed, one with lines left is rewritten without the delivered ones.
//
// It returns at the end, or at the first error of send that is not a
// refusal (or when ctx ends) with that error. A crash or a kill at any
// point loses nothing and, at the next Replay, repeats at most the record
// that was being sent.
func Replay(ctx context.Context, path string, send SendFunc) (Stats, error) {
	var st Stats
	unlock, err := lockDir(filepath.Dir(path))
	if err != nil {
		return st, fmt.Errorf("dead-letter file %s: %w", path, err)
	}
	_, err = rotate(path)
	unlock()
	if err != nil {
		return st, fmt.Errorf("dead-letter file %s: rotating before the replay: %w", path, err)
	}
	parts, err := Parts(path)
	if err != nil {
		return st, err
	}
	var stop error
	for _, part := range parts {
		if stop != nil {
			left, err := count(part)
			if err != nil {
				return st, err
			}
			st.Left += left
			continue
		}
		if stop, err = replayPart(ctx, part, send, &st); err != nil {
			return st, err
		}
	}
	return st, stop
}

// replayPart replays one part and compacts it. It returns the error of send
// that stopped it (stop), or an error of the file (err).
func replayPart(ctx context.Context, part string, send SendFunc, st *Stats) (stop, err error) {
	f, err := openPart(part)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		r      = bufio.NewReaderSize(f, 64<<10)
		off    int64
		marked int // delivered lines, by this replay or an earlier one
		left   int // lines that stay
	)
	for {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, fmt.Errorf("dead-letter file %s: %w", part, rerr)
		}
		at := off
		off += int64(len(line))
		switch rec, ok := parse(line); {
		case len(line) == 0:
		case isBlank(line) || line[0] == delivered:
			marked++
		case stop != nil:
			left++ // not sent: the replay stopped before it
		case !ok:
			st.Unsendable++
			left++
		default:
			switch serr := send(ctx, rec); {
			case serr == nil:
				if err := markDelivered(f, at); err != nil {
					return nil, fmt.Errorf("dead-letter file %s: marking uid %d delivered: %w", part, rec.UID, err)
				}
				st.Delivered++
				marked++
			case errors.Is(serr, ErrRefused):
				st.Refused++
				left++
			default:
				stop = serr
				left++
			}
		}
		if rerr == io.EOF {
			break
		}
	}
	st.Left += left
	return stop, compact(f, part, marked, left)
}

// openPart opens part for reading and marking, with the lock that keeps a
// second replay off it.
func openPart(part string) (*os.File, error) {
	f, err := os.OpenFile(part, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("dead-letter file %s: another replay is working on it: %w", part, err)
	}
	// A replay that compacted the part while this one waited for it
	// replaced the file: this handle would be the old one.
	held, err1 := f.Stat()
	now, err2 := os.Stat(part)
	if err := errors.Join(err1, err2); err != nil || !os.SameFile(held, now) {
		f.Close()
		return nil, fmt.Errorf("dead-letter file %s: replaced by another replay meanwhile", part)
	}
	return f, nil
}

// markDelivered overwrites the first byte of the line at off and syncs.
func markDelivered(f *os.File, off int64) error {
	if _, err := f.WriteAt([]byte{delivered}, off); err != nil {
		return err
	}
	return f.Sync()
}

// compact removes part when nothing is left in it, or rewrites it without
// the delivered lines (a new file renamed over it) when some were marked.
func compact(f *os.File, part string, marked, left int) error {
	switch {
	case left == 0:
		if err := os.Remove(part); err != nil {
			return fmt.Errorf("dead-letter file: %w", err)
		}
		return syncDir(filepath.Dir(part))
	case marked == 0:
		return nil
	}
	tmp := part + ".compact"
	if err := writeCompacted(f, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dead-letter file %s: compacting: %w", part, err)
	}
	if err := os.Rename(tmp, part); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("dead-letter file %s: compacting: %w", part, err)
	}
	return syncDir(filepath.Dir(part))
}

// writeCompacted writes the lines of f that are not delivered to tmp, synced.
func writeCompacted(f *os.File, tmp string) error {
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(out, 64<<10)
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), 64<<10)
	for {
		line, rerr := r.ReadBytes('\n')
		if len(line) > 0 && !isBlank(line) && line[0] != delivered {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			if _, err := w.Write(line); err != nil {
				out.Close()
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	err = w.Flush()
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// count returns the records of part not yet delivered.
func count(part string) (int, error) {
	n := 0
	err := scan(part, func(Record, bool) { n++ })
	return n, err
}

// scan calls fn for every line of file that is not delivered: the record
// and true, or false for a line that is not a record with a body.
func scan(file string, fn func(rec Record, ok bool)) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && !isBlank(line) && line[0] != delivered {
			rec, ok := parse(line)
			fn(rec, ok)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("dead-letter file %s: %w", file, err)
		}
	}
}

// parse decodes a line; false when it is not a whole record with a body.
func parse(line []byte) (Record, bool) {
	var rec Record
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return rec, false // cut short by a crash while it was appended
	}
	if err := json.Unmarshal(line, &rec); err != nil || len(rec.Payload()) == 0 {
		return rec, false
	}
	return rec, true
}

func isBlank(line []byte) bool { return len(line) == 1 && line[0] == '\n' }
