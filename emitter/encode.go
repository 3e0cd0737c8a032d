package emitter

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Encoder turns a Record, stamped with its uid, into the wire payload the
// target receives. Implementations are safe for concurrent use.
type Encoder interface {
	// Encode appends the payload of r to dst and returns the extended
	// slice, so that callers can reuse one buffer.
	Encode(dst []byte, r Record) ([]byte, error)
}

// NewEncoder returns the Encoder of format f. The numbering n selects the
// enum values of FLATBUFFER payloads; JSON payloads carry names and do not
// depend on it. An empty n is the default, Numbering201.
func NewEncoder(f Format, n Numbering) (Encoder, error) {
	if n == "" {
		n = Numbering201
	}
	enums, err := enumsOf(n)
	if err != nil {
		return nil, err
	}
	switch f {
	case FormatJSON:
		return jsonEncoder{}, nil
	case FormatFlatBuffer:
		return &flatBufferEncoder{enums: enums}, nil
	}
	_, err = ParseFormat(string(f))
	return nil, err
}

// errNoEvent is returned for a Record that holds neither kind.
var errNoEvent = errors.New("record holds no event")

// maxEventBytes bounds the FlatBuffer of one event: FlatBuffers address at
// most 2 GiB. A larger event is an error, never a panic.
const maxEventBytes = 1 << 30

// validUTF8 returns s with each byte that is not part of valid UTF-8
// replaced by U+FFFD (as encoding/json does), so that both formats carry
// the same, valid, text.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for _, r := range s {
		b.WriteRune(r) // range yields utf8.RuneError for each invalid byte
	}
	return b.String()
}

// detail is one entry of an event's details.
type detail struct{ key, value string }

// detailsPool holds the slices sortedDetails sorts details in.
var detailsPool = sync.Pool{New: func() any { return new([]detail) }}

// sortedDetails returns the entries of m in key order (payloads are
// deterministic) in a pooled slice; give it back with releaseDetails.
func sortedDetails(m map[string]string) *[]detail {
	p := detailsPool.Get().(*[]detail)
	d := (*p)[:0]
	for k, v := range m {
		d = append(d, detail{k, v})
	}
	slices.SortFunc(d, func(a, b detail) int { return strings.Compare(a.key, b.key) })
	*p = d
	return p
}

// releaseDetails returns p to the pool unless it grew large.
func releaseDetails(p *[]detail) {
	if cap(*p) > 1024 {
		return
	}
	clear(*p)
	detailsPool.Put(p)
}
