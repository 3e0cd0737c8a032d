package checkpoint

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// Snapshots and journal lines are written on the hot path (the window of a
// busy stream holds tens of thousands of entries, saved every second), so
// they are appended by hand, straight from the ledger's windows, without
// reflection, sorting map keys or an intermediate State; DecodeState and
// DecodeJournal read them back with encoding/json.

// appendSnapshot appends the ledger's streams as a snapshot. With flush
// set, whenever b holds snapshotChunk bytes or more it is handed to flush,
// which returns the buffer to go on with (and flush gets the rest at the
// end). The caller holds l.mu.
func (l *Ledger) appendSnapshot(b []byte, flush func([]byte) []byte) []byte {
	b = l.encodeSnapshot(b, flush)
	if flush != nil && len(b) > 0 {
		b = flush(b)
	}
	return b
}

func (l *Ledger) encodeSnapshot(b []byte, flush func([]byte) []byte) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, Version, 10)
	if l.maxUID > 0 {
		b = append(b, `,"maxUid":`...)
		b = strconv.AppendInt(b, l.maxUID, 10)
	}
	b = append(b, `,"streams":{`...)
	first := true
	for key, s := range l.streams {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, key)
		b = append(b, `:{"cursor":{"time":`...)
		b = strconv.AppendInt(b, s.cursor.Time, 10)
		b = append(b, `,"id":`...)
		b = appendString(b, s.cursor.ID)
		b = append(b, `},"floor":`...)
		b = strconv.AppendInt(b, s.floor, 10)
		b = append(b, `,"window":{`...)
		firstEntry := true
		s.window.all(func(name string, e *entry) {
			if !firstEntry {
				b = append(b, ',')
			}
			firstEntry = false
			if name == "" {
				b = append(b, '"')
				b = appendUUID(b, e.id)
				b = append(b, '"')
			} else {
				b = appendString(b, name)
			}
			b = append(b, `:{"t":`...)
			b = strconv.AppendInt(b, e.time, 10)
			b = append(b, `,"uid":`...)
			b = strconv.AppendInt(b, e.uid, 10)
			if e.acked {
				b = append(b, `,"acked":true`...)
			}
			b = append(b, '}')
			if flush != nil && len(b) >= snapshotChunk {
				b = flush(b)
			}
		})
		b = append(b, "}}"...)
	}
	return append(b, "}}"...)
}

// appendJournalLine appends one journal line.
func appendJournalLine(b []byte, stream, id string, time, uid int64) []byte {
	b = append(b, `{"s":`...)
	b = appendString(b, stream)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, time, 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendInt(b, uid, 10)
	return append(b, "}\n"...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			if c < utf8.RuneSelf || !utf8.ValidString(s) {
				q, _ := json.Marshal(s) // escapes; a string always marshals
				return append(b, q...)
			}
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
