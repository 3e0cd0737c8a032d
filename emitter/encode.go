package emitter

import (
	"errors"
	"slices"
	"strings"
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

// detailsOnStack is how many details an encoder sorts in an array on its
// stack; more (Keycloak's events carry fewer) are sorted in the heap.
const detailsOnStack = 16

// sortDetails appends the entries of m to buf in key order (payloads are
// deterministic) and returns it. Sorted in a caller's array, the entries
// cost no allocation and no write barrier: in a pooled slice in the heap,
// the sort was 7% of a drain's CPU, a third of it the collector's write
// barriers.
func sortDetails(buf []detail, m map[string]string) []detail {
	for k, v := range m {
		buf = append(buf, detail{k, v})
	}
	slices.SortFunc(buf, func(a, b detail) int { return strings.Compare(a.key, b.key) })
	return buf
}
