package receiver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// checkRow is the one rule both stores apply before they keep a row, so
// that they take or refuse the same rows: the text fields are valid UTF-8
// without NUL characters (PostgreSQL's text cannot hold either), and the
// payload is valid UTF-8 and valid JSON that PostgreSQL's jsonb accepts as
// well (no \u0000, no unpaired surrogate escape, numbers within the range of
// its numeric type), nested at most maxPayloadDepth levels. A row breaking
// it can never be stored: the error wraps ErrRejected. What the JSON-lines
// store writes is thus always valid JSON in valid UTF-8, which it can read
// back.
func checkRow(r Row) error {
	for _, f := range [...]struct{ name, v string }{{"kind", r.Kind}, {"id", r.ID}, {"type", r.Type}, {"realmId", r.RealmID}} {
		if err := checkText(f.v); err != nil {
			return fmt.Errorf("uid %d: %w: %s %w", r.UID, ErrRejected, f.name, err)
		}
	}
	if err := checkPayload(r.Payload); err != nil {
		return fmt.Errorf("uid %d: %w: payload %w", r.UID, ErrRejected, err)
	}
	return nil
}

// checkText reports invalid UTF-8 or a NUL character in s.
func checkText(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("holds invalid UTF-8 at byte %d", invalidAt([]byte(s)))
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		return fmt.Errorf("holds a NUL character at byte %d", i)
	}
	return nil
}

// invalidAt returns the offset of the first invalid UTF-8 sequence in b.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// The limits of PostgreSQL's numeric type, which jsonb keeps numbers in:
// at most 131072 decimal digits before the decimal point (a weight of
// 32767 base-10000 digits), 16383 after it, and an exponent below 2^30-1
// in magnitude.
const (
	numericMaxWeightDigits = 131072
	numericMaxScale        = 16383
	numericMaxExponent     = 1<<30 - 1
)

// maxPayloadDepth is how deep a payload may nest: a JSON-lines store's line
// puts it one level deeper, and encoding/json reads at most 10000 levels
// (PostgreSQL takes more: this limit is the JSON-lines store's).
const maxPayloadDepth = 9999

// checkPayload reports what makes p something other than valid JSON in
// valid UTF-8 that jsonb accepts, nested at most maxPayloadDepth levels.
func checkPayload(p []byte) error {
	if !utf8.Valid(p) {
		return fmt.Errorf("holds invalid UTF-8 at byte %d", invalidAt(p))
	}
	if !json.Valid(p) {
		var v any
		err := json.Unmarshal(p, &v)
		if err == nil {
			err = errors.New("invalid")
		}
		return fmt.Errorf("is not valid JSON: %w", err)
	}
	// p is valid JSON: a string starts at a quote outside a string, a
	// number at a '-' or digit outside a string.
	depth := 0
	for i := 0; i < len(p); {
		switch c := p[i]; {
		case c == '{' || c == '[':
			if depth++; depth > maxPayloadDepth {
				return fmt.Errorf("nests deeper than %d levels at byte %d", maxPayloadDepth, i)
			}
			i++
		case c == '}' || c == ']':
			depth--
			i++
		case c == '"':
			end, err := checkString(p, i)
			if err != nil {
				return err
			}
			i = end
		case c == '-' || ('0' <= c && c <= '9'):
			end, err := checkNumber(p, i)
			if err != nil {
				return err
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// checkString checks the escapes of the valid JSON string starting at
// p[start] (its quote) and returns the offset after its closing quote.
func checkString(p []byte, start int) (int, error) {
	for i := start + 1; i < len(p); i++ {
		switch p[i] {
		case '"':
			return i + 1, nil
		case '\\':
			i++
			if p[i] != 'u' {
				continue
			}
			u := hex4(p[i+1:])
			switch {
			case u == 0:
				return 0, fmt.Errorf("holds \\u0000 at byte %d, which jsonb refuses", i-1)
			case 0xDC00 <= u && u <= 0xDFFF:
				return 0, fmt.Errorf("holds the unpaired low surrogate \\u%04x at byte %d", u, i-1)
			case 0xD800 <= u && u <= 0xDBFF:
				if i+10 >= len(p) || p[i+5] != '\\' || p[i+6] != 'u' {
					return 0, fmt.Errorf("holds the unpaired high surrogate \\u%04x at byte %d", u, i-1)
				}
				if low := hex4(p[i+7:]); low < 0xDC00 || low > 0xDFFF {
					return 0, fmt.Errorf("holds the unpaired high surrogate \\u%04x at byte %d", u, i-1)
				}
				i += 6 // the low half is checked; skip it
			}
			i += 4
		}
	}
	return len(p), nil // unreachable for valid JSON
}

// hex4 decodes the four hexadecimal digits that valid JSON puts after \u.
func hex4(b []byte) int {
	v := 0
	for _, c := range b[:4] {
		v <<= 4
		switch {
		case c <= '9':
			v |= int(c - '0')
		case c <= 'F':
			v |= int(c-'A') + 10
		default:
			v |= int(c-'a') + 10
		}
	}
	return v
}

// checkNumber checks that the valid JSON number starting at p[start] fits
// PostgreSQL's numeric type and returns the offset after it.
func checkNumber(p []byte, start int) (int, error) {
	i := start
	if p[i] == '-' {
		i++
	}
	digitsStart := i
	for i < len(p) && '0' <= p[i] && p[i] <= '9' {
		i++
	}
	intLen := i - digitsStart
	firstNonZero := -1 // index among all mantissa digits
	for k := digitsStart; k < i; k++ {
		if p[k] != '0' {
			firstNonZero = k - digitsStart
			break
		}
	}
	fracLen := 0
	if i < len(p) && p[i] == '.' {
		i++
		fracStart := i
		for i < len(p) && '0' <= p[i] && p[i] <= '9' {
			if firstNonZero < 0 && p[i] != '0' {
				firstNonZero = intLen + i - fracStart
			}
			i++
		}
		fracLen = i - fracStart
	}
	var exp int64
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		neg := false
		if p[i] == '+' || p[i] == '-' {
			neg = p[i] == '-'
			i++
		}
		for i < len(p) && '0' <= p[i] && p[i] <= '9' {
			if exp < numericMaxExponent {
				exp = exp*10 + int64(p[i]-'0')
			}
			i++
		}
		if neg {
			exp = -exp
		}
	}
	text := p[start:i]
	if exp >= numericMaxExponent || exp <= -numericMaxExponent {
		return 0, fmt.Errorf("number %.40s at byte %d has an exponent beyond PostgreSQL's numeric", text, start)
	}
	if scale := int64(fracLen) - exp; scale > numericMaxScale {
		return 0, fmt.Errorf("number %.40s at byte %d has %d digits after the point, more than PostgreSQL's numeric holds (%d)", text, start, scale, numericMaxScale)
	}
	if firstNonZero >= 0 {
		// The power of ten of the leading digit.
		if weight := int64(intLen) + exp - int64(firstNonZero) - 1; weight >= numericMaxWeightDigits {
			return 0, fmt.Errorf("number %.40s at byte %d has %d digits before the point, more than PostgreSQL's numeric holds (%d)", text, start, weight+1, numericMaxWeightDigits)
		}
	}
	return i, nil
}
