package emitter

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// parseDetails reads stored details JSON, an object, into a map: string
// values as they are, null as "", other values as their JSON text; a key
// given twice keeps its last value. It returns what encoding/json would
// (an object decoded to map[string]json.RawMessage, each value then to a
// string) at a fraction of the cost, for it runs once per event read:
// the text is checked with json.Valid, then scanned once, and only a
// string holding an escape or bytes that are not UTF-8 is handed to
// json.Unmarshal.
func parseDetails(raw string) (map[string]string, error) {
	if !json.Valid([]byte(raw)) {
		var v any
		return nil, json.Unmarshal([]byte(raw), &v) // the same error as the slow path
	}
	i := skipSpace(raw, 0)
	if raw[i] != '{' {
		return nil, errNotObject
	}
	out := make(map[string]string, 8)
	i = skipSpace(raw, i+1)
	if raw[i] == '}' {
		return out, nil
	}
	for {
		end := stringEnd(raw, i)
		key := unquote(raw[i:end])
		i = skipSpace(raw, skipSpace(raw, end)+1) // past the colon
		var val string
		switch raw[i] {
		case '"':
			end = stringEnd(raw, i)
			val = unquote(raw[i:end])
		case 'n': // null
			end = i + len("null")
		default:
			end = valueEnd(raw, i)
			val = raw[i:end]
		}
		out[key] = val
		i = skipSpace(raw, end)
		if raw[i] == '}' {
			return out, nil
		}
		i = skipSpace(raw, i+1) // past the comma
	}
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at s[i].
func stringEnd(s string, i int) int {
	for i++; ; i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// valueEnd returns the index just past the number, true, false, array or
// object that starts at s[i] (s is valid JSON).
func valueEnd(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			i = stringEnd(s, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return i
			}
		}
	}
	return i
}

// unquote returns the text of the quoted JSON string q.
func unquote(q string) string {
	if body := q[1 : len(q)-1]; strings.IndexByte(body, '\\') < 0 && utf8.ValidString(body) {
		return body
	}
	var s string
	_ = json.Unmarshal([]byte(q), &s) // escapes, and bytes that are not UTF-8 as U+FFFD
	return s
}
