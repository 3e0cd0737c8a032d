package deadletter

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Summary is what a dead-letter file holds, its parts included.
type Summary struct {
	Files []FileCount // oldest first, the live file last
	Count int         // records waiting for a replay
	// First and Last are the records written first and last (by At).
	First, Last Record
	// Statuses counts the records by the target's answer (0: never sent).
	Statuses map[int]int
	// Unsendable counts the lines that are not a record with a body.
	Unsendable int
}

// FileCount is one file of a Summary.
type FileCount struct {
	Path    string
	Records int
	Bytes   int64
}

// Summarize reads the dead-letter file at path and its parts. A file that
// does not exist holds nothing.
func Summarize(path string) (Summary, error) {
	s := Summary{Statuses: map[int]int{}}
	files, err := Files(path)
	if err != nil {
		return s, err
	}
	for _, file := range files {
		fc := FileCount{Path: file}
		if fc.Bytes, err = fileSize(file); err != nil {
			return s, fmt.Errorf("dead-letter file: %w", err)
		}
		err := scan(file, func(rec Record, ok bool) {
			if !ok {
				s.Unsendable++
				return
			}
			fc.Records++
			s.Count++
			s.Statuses[rec.Status]++
			if s.Count == 1 || rec.At.Before(s.First.At) {
				s.First = rec
			}
			if s.Count == 1 || !rec.At.Before(s.Last.At) {
				s.Last = rec
			}
		})
		if err != nil {
			return s, err
		}
		s.Files = append(s.Files, fc)
	}
	return s, nil
}

// Write prints s for a person: the files, the count, the first and last
// record and the statuses.
func (s Summary) Write(w io.Writer) error {
	var b strings.Builder
	if len(s.Files) == 0 {
		b.WriteString("no dead letters\n")
	}
	for _, f := range s.Files {
		fmt.Fprintf(&b, "%-10s %s: %d records, %d bytes\n", "file", f.Path, f.Records, f.Bytes)
	}
	fmt.Fprintf(&b, "%-10s %d\n", "count", s.Count)
	if s.Count > 0 {
		for _, r := range []struct {
			name string
			rec  Record
		}{{"first", s.First}, {"last", s.Last}} {
			fmt.Fprintf(&b, "%-10s %s  uid %d  %s %s  event time %s  status %d\n", r.name,
				r.rec.At.UTC().Format(time.RFC3339), r.rec.UID, r.rec.Kind, r.rec.Type,
				time.UnixMilli(r.rec.Time).UTC().Format(time.RFC3339Nano), r.rec.Status)
		}
		var st []string
		for _, code := range slices.Sorted(maps.Keys(s.Statuses)) {
			st = append(st, fmt.Sprintf("%d: %d", code, s.Statuses[code]))
		}
		fmt.Fprintf(&b, "%-10s %s\n", "statuses", strings.Join(st, ", "))
	}
	if s.Unsendable > 0 {
		fmt.Fprintf(&b, "%-10s %d lines are not a record with a body (kept, never sent)\n", "unsendable", s.Unsendable)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
