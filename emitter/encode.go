package emitter

import (
	"errors"
	"fmt"
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

// MaxEventBytes bounds the text of one event (every string and detail
// together) that the FLATBUFFER encoder accepts: FlatBuffers address at most
// 2 GiB. Larger events are an error, never a panic.
const MaxEventBytes = 512 << 20

// eventSize returns the number of bytes of text r holds.
func eventSize(r Record) int {
	n := 0
	if e := r.Event; e != nil {
		n = len(e.ID) + len(e.Type) + len(e.RealmID) + len(e.ClientID) + len(e.UserID) +
			len(e.SessionID) + len(e.IPAddress) + len(e.Error)
		for k, v := range e.Details {
			n += len(k) + len(v) + 32
		}
		return n
	}
	a := r.Admin
	d := a.AuthDetails
	n = len(a.ID) + len(a.RealmID) + len(a.OperationType) + len(a.ResourceType) + len(a.ResourcePath) +
		len(a.Representation) + len(a.Error) +
		len(d.RealmID) + len(d.ClientID) + len(d.UserID) + len(d.IPAddress) + len(d.Username)
	for k, v := range a.Details {
		n += len(k) + len(v) + 32
	}
	return n
}

// checkRecord returns an error for a Record that cannot be encoded.
func checkRecord(r Record) error {
	if r.Event == nil && r.Admin == nil {
		return errNoEvent
	}
	if n := eventSize(r); n > MaxEventBytes {
		return fmt.Errorf("%s %s: %d bytes of text, more than the %d a payload may hold", r.Kind(), r.ID(), n, MaxEventBytes)
	}
	return nil
}

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
