package checkpoint

import (
	"cmp"
	"encoding/binary"
	"hash/fnv"
	"slices"
)

// window is a stream's events read at or after its floor, kept compact: no
// pointer and no string per event. An id in the canonical form of a UUID
// (lowercase 8-4-4-4-12 hex, what Keycloak gives every event) is kept as
// its 16 bytes, in an entry of 40 bytes in a slice sorted by (time, id);
// rows are read in time order, so entries are appended, and the pruned
// ones are cut from the front. Any other id (the API source's paired
// events before Keycloak 26.2, tests) is kept by its string in a map.
type window struct {
	es    []entry
	named map[string]entry // ids that are not canonical UUIDs; nil while empty
	// last is where search last found an entry: a stream's events are
	// acknowledged in the order they were read, so the next one found is
	// most often the entry after it. Only a guess: es changes under it.
	last int
}

// entry is one event of a window.
type entry struct {
	time    int64
	uid     int64
	id      uuid // zero for a named entry
	acked   bool
	emitted bool // handed on by this process
}

// uuid is an id in the canonical UUID form, as its 16 bytes.
type uuid [16]byte

// parseUUID returns the bytes of id when id is a UUID in canonical form,
// the one form that formats back to the same string.
func parseUUID(id string) (uuid, bool) {
	var u uuid
	if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return u, false
	}
	var bad byte
	for j, i := range uuidDigits {
		hi, lo := hexValue[id[i]], hexValue[id[i+1]]
		bad |= hi | lo
		u[j] = hi<<4 | lo
	}
	if bad > 0xf {
		return uuid{}, false
	}
	return u, true
}

// uuidDigits are the places of the 16 pairs of hex digits in a UUID.
var uuidDigits = [16]int{0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34}

// hexValue is the value of each lowercase hex digit, 0xff for any other byte.
var hexValue = func() (t [256]byte) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = byte(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// appendUUID appends u in canonical form.
func appendUUID(b []byte, u uuid) []byte {
	const digits = "0123456789abcdef"
	for i, c := range u {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b = append(b, '-')
		}
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return b
}

func (u uuid) String() string { return string(appendUUID(make([]byte, 0, 36), u)) }

// idHash is the trail's 64-bit hash of an event id: of its 16 bytes for a
// UUID, of its string otherwise.
func idHash(id string) uint64 {
	h := fnv.New64a()
	if u, ok := parseUUID(id); ok {
		h.Write(u[:])
	} else {
		h.Write([]byte(id))
	}
	return h.Sum64()
}

// hash is idHash of the entry's id, which is name for a named entry.
func (e *entry) hash(name string) uint64 {
	h := fnv.New64a()
	if name == "" {
		h.Write(e.id[:])
	} else {
		h.Write([]byte(name))
	}
	return h.Sum64()
}

func cmpEntry(e entry, t int64, u uuid) int {
	if c := cmp.Compare(e.time, t); c != 0 {
		return c
	}
	// Big-endian halves order as the bytes do.
	a, b := binary.BigEndian.Uint64(e.id[:8]), binary.BigEndian.Uint64(u[:8])
	if a == b {
		a, b = binary.BigEndian.Uint64(e.id[8:]), binary.BigEndian.Uint64(u[8:])
	}
	return cmp.Compare(a, b)
}

// place is where the entry of an event is, or goes, in a window.
type place struct {
	named bool
	name  string // the id of a named entry
	u     uuid
	i     int // the index in es, for a UUID
	found bool
}

// find returns the entry of the event id with time t and its place, where
// add puts it when the window does not hold it (nil, at.found false).
func (w *window) find(id string, t int64) (*entry, place) {
	u, ok := parseUUID(id)
	if !ok {
		e, found := w.named[id]
		if !found {
			return nil, place{named: true, name: id}
		}
		return &e, place{named: true, name: id, found: true} // a copy: changes go through set
	}
	i, found := w.search(t, u)
	if !found {
		return nil, place{u: u, i: i}
	}
	return &w.es[i], place{u: u, i: i, found: true}
}

func (w *window) search(t int64, u uuid) (int, bool) {
	n := len(w.es)
	if n > 0 && cmpEntry(w.es[n-1], t, u) < 0 {
		return n, false // the common case when reading: newer than every entry
	}
	if next := w.last + 1; next < n && cmpEntry(w.es[next], t, u) == 0 {
		w.last = next // the common case when acknowledging
		return next, true
	}
	i, found := slices.BinarySearchFunc(w.es, struct {
		t int64
		u uuid
	}{t, u}, func(e entry, k struct {
		t int64
		u uuid
	}) int {
		return cmpEntry(e, k.t, k.u)
	})
	if found {
		w.last = i
	}
	return i, found
}

// set adds or replaces the entry of the event id; e.time is its time.
func (w *window) set(id string, e entry) {
	_, at := w.find(id, e.time)
	w.add(at, e)
}

// add puts e at the place find returned for the event, the window unchanged
// since; e.time is the event's time.
func (w *window) add(at place, e entry) {
	if at.named {
		if w.named == nil {
			w.named = map[string]entry{}
		}
		e.id = uuid{}
		w.named[at.name] = e
		return
	}
	e.id = at.u
	if at.found {
		w.es[at.i] = e
		return
	}
	w.es = slices.Insert(w.es, at.i, e)
}

// update changes the entry of the event id with time t through f, if the
// window holds it, and tells whether it does.
func (w *window) update(id string, t int64, f func(*entry)) bool {
	u, ok := parseUUID(id)
	if !ok {
		e, found := w.named[id]
		if found {
			f(&e)
			w.named[id] = e
		}
		return found
	}
	i, found := w.search(t, u)
	if found {
		f(&w.es[i])
	}
	return found
}

// remove deletes the entry of the event id with time t.
func (w *window) remove(id string, t int64) {
	u, ok := parseUUID(id)
	if !ok {
		delete(w.named, id)
		return
	}
	if i, found := w.search(t, u); found {
		w.es = slices.Delete(w.es, i, i+1)
	}
}

// len returns how many events the window holds.
func (w *window) len() int { return len(w.es) + len(w.named) }

// all calls f for every entry with its id (name is "" for a UUID entry,
// whose id is e.id); f may change the entry.
func (w *window) all(f func(name string, e *entry)) {
	for i := range w.es {
		f("", &w.es[i])
	}
	for id, e := range w.named {
		f(id, &e)
		w.named[id] = e
	}
}

// count returns how many entries have a time in [lo, hi].
func (w *window) count(lo, hi int64) int {
	if lo > hi {
		return 0
	}
	from, _ := slices.BinarySearchFunc(w.es, lo, func(e entry, t int64) int { return cmp.Compare(e.time, t) })
	to, _ := slices.BinarySearchFunc(w.es, hi+1, func(e entry, t int64) int { return cmp.Compare(e.time, t) })
	n := to - from
	for _, e := range w.named {
		if e.time >= lo && e.time <= hi {
			n++
		}
	}
	return n
}

// newest returns the time of the newest entry, or def when there is none
// newer.
func (w *window) newest(def int64) int64 {
	if len(w.es) > 0 {
		def = max(def, w.es[len(w.es)-1].time)
	}
	for _, e := range w.named {
		def = max(def, e.time)
	}
	return def
}

// oldestPending returns the time of the oldest unacknowledged entry, or
// def when every entry is acknowledged.
func (w *window) oldestPending(def int64) int64 {
	for i := range w.es {
		if !w.es[i].acked {
			def = min(def, w.es[i].time)
			break // sorted by time
		}
	}
	for _, e := range w.named {
		if !e.acked {
			def = min(def, e.time)
		}
	}
	return def
}

// prune removes the acknowledged entries older than floor and calls gone
// with the trail key of each.
func (w *window) prune(floor int64, gone func(trailKey)) {
	n := 0
	for n < len(w.es) && w.es[n].time < floor && w.es[n].acked {
		n++
	}
	// Below the floor every entry is acknowledged (the floor is at most the
	// oldest pending); stop at the first that is not, to be safe.
	for _, e := range w.es[:n] {
		gone(trailKey{time: e.time, hash: e.hash("")})
	}
	if n > 0 {
		w.es = slices.Delete(w.es, 0, n)
		if cap(w.es) > 1024 && len(w.es) < cap(w.es)/4 {
			w.es = slices.Clip(slices.Clone(w.es)) // give back what a burst grew
		}
	}
	for id, e := range w.named {
		if e.acked && e.time < floor {
			gone(trailKey{time: e.time, hash: e.hash(id)})
			delete(w.named, id)
		}
	}
}

// load adds an entry without keeping the order; sort restores it.
func (w *window) load(id string, e entry) {
	if u, ok := parseUUID(id); ok {
		e.id = u
		w.es = append(w.es, e)
		return
	}
	if w.named == nil {
		w.named = map[string]entry{}
	}
	if _, ok := w.named[id]; !ok {
		w.named[id] = e
	}
}

// sort orders the entries added by load; of two with the same time and id
// the first added stays.
func (w *window) sort() {
	slices.SortStableFunc(w.es, func(a, b entry) int { return cmpEntry(a, b.time, b.id) })
	w.es = slices.CompactFunc(w.es, func(a, b entry) bool { return a.time == b.time && a.id == b.id })
}
