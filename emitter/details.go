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
// string) at a fraction of the cost, for it runs once per event read.
// What Keycloak writes, an object of strings, is checked and read in one
// pass (flatObject); other text is checked with json.Valid, then scanned
// once. Only a string holding an escape or bytes that are not UTF-8 is
// handed to json.Unmarshal.
func parseDetails(raw string) (map[string]string, error) {
	if out, ok := flatObject(raw); ok {
		return out, nil
	}
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

// flatObject reads raw when it is a JSON object whose values are strings
// or null, checking as it reads what json.Valid would. ok is false for any
// other text, valid JSON or not: parseDetails then reads it the long way.
func flatObject(raw string) (_ map[string]string, ok bool) {
	i := skipSpace(raw, 0)
	if i == len(raw) || raw[i] != '{' {
		return nil, false
	}
	out := make(map[string]string, 8)
	if i = skipSpace(raw, i+1); i < len(raw) && raw[i] == '}' {
		return out, skipSpace(raw, i+1) == len(raw)
	}
	for {
		key, end, ok := checkedString(raw, i)
		if !ok {
			return nil, false
		}
		if i = skipSpace(raw, end); i == len(raw) || raw[i] != ':' {
			return nil, false
		}
		i = skipSpace(raw, i+1)
		val := ""
		if strings.HasPrefix(raw[i:], "null") {
			end = i + len("null")
		} else if val, end, ok = checkedString(raw, i); !ok {
			return nil, false
		}
		out[key] = val
		if i = skipSpace(raw, end); i == len(raw) {
			return nil, false
		}
		switch raw[i] {
		case '}':
			return out, skipSpace(raw, i+1) == len(raw)
		case ',':
			i = skipSpace(raw, i+1)
		default:
			return nil, false
		}
	}
}

// checkedString reads the JSON string that starts at s[i]: its text and
// the index just past it; ok is false when no valid string starts there
// (a control character, a bad escape, no closing quote).
func checkedString(s string, i int) (_ string, end int, ok bool) {
	if i == len(s) || s[i] != '"' {
		return "", 0, false
	}
	escaped := false
	var high byte // the bits of every byte read: below 0x80, all ASCII (valid UTF-8)
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		high |= c
		switch {
		case c == '"':
			if body := s[i+1 : j]; !escaped && (high < utf8.RuneSelf || utf8.ValidString(body)) {
				return body, j + 1, true
			}
			return unquote(s[i : j+1]), j + 1, true
		case c < 0x20:
			return "", 0, false
		case c == '\\':
			escaped = true
			if j++; j == len(s) {
				return "", 0, false
			}
			switch s[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(s) || !isHex4(s[j+1:j+5]) {
					return "", 0, false
				}
				j += 4
			default:
				return "", 0, false
			}
		}
	}
	return "", 0, false
}

func isHex4(s string) bool {
	for i := range 4 {
		c := s[i] | 0x20 // lower case of a letter
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
