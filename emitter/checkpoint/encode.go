package checkpoint

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The checkpoint and the journal are written on the hot path (the window of
// a busy stream holds tens of thousands of entries, saved every second), so
// they are appended by hand, without reflection or sorting map keys; Load
// and ReadJournal read them back with encoding/json.

// appendState appends st as JSON.
func appendState(b []byte, st *State) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(st.Version), 10)
	b = append(b, `,"streams":{`...)
	first := true
	for key, s := range st.Streams {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, key)
		b = append(b, `:{"cursor":{"time":`...)
		b = strconv.AppendInt(b, s.Cursor.Time, 10)
		b = append(b, `,"id":`...)
		b = appendString(b, s.Cursor.ID)
		b = append(b, `},"floor":`...)
		b = strconv.AppendInt(b, s.Floor, 10)
		b = append(b, `,"window":{`...)
		firstEntry := true
		for id, e := range s.Window {
			if !firstEntry {
				b = append(b, ',')
			}
			firstEntry = false
			b = appendString(b, id)
			b = append(b, `:{"t":`...)
			b = strconv.AppendInt(b, e.Time, 10)
			b = append(b, `,"uid":`...)
			b = strconv.AppendInt(b, e.UID, 10)
			if e.Acked {
				b = append(b, `,"acked":true`...)
			}
			b = append(b, '}')
		}
		b = append(b, "}}"...)
	}
	return append(b, "}}"...)
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
