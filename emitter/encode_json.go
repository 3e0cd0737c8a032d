package emitter

import (
	"strconv"
	"unicode/utf8"
)

// jsonEncoder writes the JSON format of the original: the Jackson
// serialization of Keycloak's Event (or of the extended AdminEvent, whose
// auth details are under "extAuthDetails") plus "uid". Every key is always
// present; an unset string is null; details is always an object. Unlike the
// original, "id" carries Keycloak's event id, and the text is UTF-8.
//
// It appends to dst without reflection or intermediate maps.
type jsonEncoder struct{}

func (jsonEncoder) Encode(dst []byte, r Record) ([]byte, error) {
	if r.Event == nil && r.Admin == nil {
		return dst, errNoEvent
	}
	if e := r.Event; r.Admin == nil {
		dst = append(dst, `{"id":`...)
		dst = appendJSONStringOrNull(dst, e.ID)
		dst = append(dst, `,"time":`...)
		dst = strconv.AppendInt(dst, e.Time, 10)
		dst = append(dst, `,"type":`...)
		dst = appendJSONStringOrNull(dst, e.Type)
		dst = append(dst, `,"realmId":`...)
		dst = appendJSONStringOrNull(dst, e.RealmID)
		dst = append(dst, `,"clientId":`...)
		dst = appendJSONStringOrNull(dst, e.ClientID)
		dst = append(dst, `,"userId":`...)
		dst = appendJSONStringOrNull(dst, e.UserID)
		dst = append(dst, `,"sessionId":`...)
		dst = appendJSONStringOrNull(dst, e.SessionID)
		dst = append(dst, `,"ipAddress":`...)
		dst = appendJSONStringOrNull(dst, e.IPAddress)
		dst = append(dst, `,"error":`...)
		dst = appendJSONStringOrNull(dst, e.Error)
		dst = append(dst, `,"details":`...)
		dst = appendJSONDetails(dst, e.Details)
		dst = append(dst, `,"uid":`...)
		dst = strconv.AppendInt(dst, e.UID, 10)
		return append(dst, '}'), nil
	}
	a := r.Admin
	dst = append(dst, `{"id":`...)
	dst = appendJSONStringOrNull(dst, a.ID)
	dst = append(dst, `,"time":`...)
	dst = strconv.AppendInt(dst, a.Time, 10)
	dst = append(dst, `,"realmId":`...)
	dst = appendJSONStringOrNull(dst, a.RealmID)
	d := a.AuthDetails
	dst = append(dst, `,"extAuthDetails":{"realmId":`...)
	dst = appendJSONStringOrNull(dst, d.RealmID)
	dst = append(dst, `,"clientId":`...)
	dst = appendJSONStringOrNull(dst, d.ClientID)
	dst = append(dst, `,"userId":`...)
	dst = appendJSONStringOrNull(dst, d.UserID)
	dst = append(dst, `,"ipAddress":`...)
	dst = appendJSONStringOrNull(dst, d.IPAddress)
	dst = append(dst, `,"username":`...)
	dst = appendJSONStringOrNull(dst, d.Username)
	dst = append(dst, `},"operationType":`...)
	dst = appendJSONStringOrNull(dst, a.OperationType)
	dst = append(dst, `,"resourceType":`...)
	dst = appendJSONStringOrNull(dst, a.ResourceType)
	dst = append(dst, `,"resourcePath":`...)
	dst = appendJSONStringOrNull(dst, a.ResourcePath)
	dst = append(dst, `,"representation":`...)
	dst = appendJSONStringOrNull(dst, a.Representation)
	dst = append(dst, `,"error":`...)
	dst = appendJSONStringOrNull(dst, a.Error)
	dst = append(dst, `,"details":`...)
	dst = appendJSONDetails(dst, a.Details)
	dst = append(dst, `,"uid":`...)
	dst = strconv.AppendInt(dst, a.UID, 10)
	return append(dst, '}'), nil
}

// appendJSONDetails appends m as a JSON object with sorted keys ({} for nil).
func appendJSONDetails(dst []byte, m map[string]string) []byte {
	dst = append(dst, '{')
	if len(m) > 0 {
		var buf [detailsOnStack]detail
		for i, d := range sortDetails(buf[:0], m) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, d.key)
			dst = append(dst, ':')
			dst = appendJSONString(dst, d.value)
		}
	}
	return append(dst, '}')
}

// appendJSONStringOrNull appends s as a JSON string, or null when s is empty
// (the model's unset value).
func appendJSONStringOrNull(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return appendJSONString(dst, s)
}

const hexDigits = "0123456789abcdef"

// needsEscape tells the ASCII bytes a JSON string must escape.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// appendJSONString appends s as a quoted JSON string: quotes, backslashes
// and control characters escaped, invalid UTF-8 replaced by U+FFFD, and
// U+2028/U+2029 escaped as encoding/json does so that the text is also valid
// JavaScript. HTML characters are not escaped (Jackson does not either).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
