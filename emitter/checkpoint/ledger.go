// Package checkpoint is the emitter's ledger: per stream (one kind of event
// in one realm) the cursor of the forward read, the floor below which rows
// are done, and the window of the events read at or after the floor, each
// with the uid it was given and whether it was acknowledged; the journal of
// uids issued since the last snapshot; and the Stores that keep all of it
// across restarts (a file for one instance, PostgreSQL for a cluster). A crash at any point replays
// every unacknowledged event with the uid it had, and skips none.
package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Ledger. NextUID is required.
type Options struct {
	// Store keeps the state; nil keeps it in memory only (a restart then
	// starts afresh).
	Store Store
	// NextUID returns a new uid for an event read the first time.
	NextUID func() int64
	// Overlap is how far behind the cursor acknowledged entries are kept,
	// so that re-reads of that range know what they already emitted.
	Overlap time.Duration
	// SaveInterval is the least time between two saves of SaveIfDue.
	SaveInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Item is a row read from a stream: its id and time.
type Item struct {
	ID   string
	Time int64
}

// Lost is an unacknowledged event of the saved state that the recovery read
// did not find again (deleted, expired or filtered out since).
type Lost struct {
	Stream, ID string
	Time, UID  int64
}

// Ledger is the state of every stream. It is safe for concurrent use: the
// reader calls Take, the deliverers Ack.
type Ledger struct {
	opts Options

	// ioMu orders journal appends and saves: a save encodes the windows and
	// then empties the journal, so no uid may be journaled in between. It is
	// taken before mu.
	ioMu    sync.Mutex
	journal []byte // lines being appended; reused
	snap    []byte // snapshot being saved; reused

	mu        sync.Mutex
	streams   map[string]*stream
	dirty     bool
	lastSaved time.Time
	loadedUID int64 // the largest uid of the loaded state
	maxUID    int64 // the largest uid loaded or issued: the snapshot's maxUid

	saves atomic.Uint64
}

type stream struct {
	cursor    Cursor
	floor     int64
	window    map[string]*entry
	recovered bool // begun here, or the recovery read after loading has run
}

type entry struct {
	time    int64
	uid     int64
	acked   bool
	emitted bool // handed on by this process
}

// Open loads the state of o.Store: its snapshot and the uids journaled
// after it.
func Open(ctx context.Context, o Options) (*Ledger, error) {
	if o.NextUID == nil {
		return nil, errors.New("checkpoint: NextUID is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Ledger{opts: o, streams: map[string]*stream{}}
	if o.Store == nil {
		return l, nil
	}
	snap, journal, err := o.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %v: %w", o.Store, err)
	}
	st, err := DecodeState(snap)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %v: %w", o.Store, err)
	}
	l.loadedUID = st.MaxUID
	for key, cs := range st.Streams {
		s := &stream{cursor: cs.Cursor, floor: cs.Floor, window: make(map[string]*entry, len(cs.Window))}
		for id, e := range cs.Window {
			s.window[id] = &entry{time: e.Time, uid: e.UID, acked: e.Acked}
			l.loadedUID = max(l.loadedUID, e.UID)
		}
		l.streams[key] = s
	}
	entries, err := DecodeJournal(journal)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %v: %w", o.Store, err)
	}
	for _, e := range entries {
		s, ok := l.streams[e.Stream]
		if !ok { // a stream that began after the last save: recover it from its first uid
			s = &stream{cursor: Cursor{Time: e.Time}, floor: e.Time, window: map[string]*entry{}}
			l.streams[e.Stream] = s
		}
		if _, ok := s.window[e.ID]; !ok {
			s.window[e.ID] = &entry{time: e.Time, uid: e.UID}
			s.floor = min(s.floor, e.Time)
			l.dirty = true
		}
		l.loadedUID = max(l.loadedUID, e.UID)
	}
	l.maxUID = l.loadedUID
	return l, nil
}

// MaxUID returns the largest uid of the loaded state or issued since (the
// uid high-water mark the snapshot keeps, even after the entries that
// carried it are pruned), 0 when there is none: the uids issued after a
// restart, by this process or by another with another keycloakId, must
// stay above it.
func (l *Ledger) MaxUID() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxUID
}

// Streams returns the keys of every stream known, sorted.
func (l *Ledger) Streams() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]string, 0, len(l.streams))
	for k := range l.streams {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Begin adds the stream key starting at time start (ms), unless it is known;
// it reports whether it added it.
func (l *Ledger) Begin(key string, start int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.streams[key]; ok {
		return false
	}
	l.streams[key] = &stream{cursor: Cursor{Time: start}, floor: start, window: map[string]*entry{}, recovered: true}
	l.dirty = true
	return true
}

// Cursor returns the stream's cursor; the zero Cursor for an unknown one.
func (l *Ledger) Cursor(key string) Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.streams[key]; ok {
		return s.cursor
	}
	return Cursor{}
}

// RescanRange returns the times [lo, hi] to read again for late commits:
// from the floor or Overlap behind the cursor, whichever is later, to the
// cursor.
func (l *Ledger) RescanRange(key string) (lo, hi int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return 0, -1
	}
	return max(s.floor, s.cursor.Time-l.opts.Overlap.Milliseconds()), s.cursor.Time
}

// Recovering tells whether the stream was loaded and not yet read again
// from its floor, and returns the times [lo, hi] that read must cover:
// from the floor to the cursor or the newest journaled event.
func (l *Ledger) Recovering(key string) (lo, hi int64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, found := l.streams[key]
	if !found || s.recovered {
		return 0, 0, false
	}
	hi = s.cursor.Time
	for _, e := range s.window {
		hi = max(hi, e.time)
	}
	return s.floor, hi, true
}

// Recovered ends the recovery of the stream: every unacknowledged event of
// the loaded state that its read did not emit again is acknowledged (it
// would pin the floor forever) and returned, to be reported as lost.
func (l *Ledger) Recovered(key string) []Lost {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok || s.recovered {
		return nil
	}
	var lost []Lost
	for id, e := range s.window {
		if !e.acked && !e.emitted {
			e.acked = true
			l.dirty = true
			lost = append(lost, Lost{Stream: key, ID: id, Time: e.time, UID: e.uid})
		}
	}
	s.recovered = true
	slices.SortFunc(lost, func(a, b Lost) int { return cmpItem(a.Time, a.ID, b.Time, b.ID) })
	return lost
}

func cmpItem(at int64, aid string, bt int64, bid string) int {
	if at != bt {
		if at < bt {
			return -1
		}
		return 1
	}
	if aid < bid {
		return -1
	}
	if aid > bid {
		return 1
	}
	return 0
}

// Count returns how many entries of the stream's window have a time in
// [lo, hi]. Entries in the rescan range are never pruned, so a source
// holding as many rows there holds the same rows.
func (l *Ledger) Count(key string, lo, hi int64) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return 0
	}
	n := 0
	for _, e := range s.window {
		if e.time >= lo && e.time <= hi {
			n++
		}
	}
	return n
}

// Take records rows read from the stream, in (time, id) order, and decides
// which to hand on: uids[i] is the uid of items[i] when it is to be emitted
// (a new uid for a row read the first time, the one it had for an
// unacknowledged row not yet emitted by this process), 0 when not (already
// emitted, acknowledged, or older than the floor and so done). Reading
// forward, the cursor moves to the last item. The new uids are journaled
// before Take returns; when that fails nothing is recorded and the error is
// returned.
func (l *Ledger) Take(ctx context.Context, key string, items []Item, forward bool) (uids []int64, replays int, err error) {
	if len(items) == 0 {
		return nil, 0, nil
	}
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	l.mu.Lock()
	s, ok := l.streams[key]
	if !ok {
		l.mu.Unlock()
		return nil, 0, fmt.Errorf("checkpoint: stream %q was never begun", key)
	}
	before, wasDirty := s.cursor, l.dirty
	uids = make([]int64, len(items))
	var fresh, replayed []string // to undo when the journal fails
	l.journal = l.journal[:0]
	for i, it := range items {
		if forward {
			s.cursor = Cursor{Time: it.Time, ID: it.ID}
			l.dirty = true
		}
		if e, ok := s.window[it.ID]; ok {
			if !e.acked && !e.emitted {
				e.emitted = true
				uids[i] = e.uid
				replayed = append(replayed, it.ID)
			}
			continue
		}
		if it.Time < s.floor {
			continue // older than the floor and not in the window: done
		}
		e := &entry{time: it.Time, uid: l.opts.NextUID(), emitted: true}
		s.window[it.ID] = e
		uids[i] = e.uid
		l.maxUID = max(l.maxUID, e.uid)
		l.dirty = true
		if l.opts.Store != nil {
			fresh = append(fresh, it.ID)
			l.journal = appendJournalLine(l.journal, key, it.ID, it.Time, e.uid)
		}
	}
	l.mu.Unlock()
	// A uid is durable before its event leaves: after a crash the event is
	// sent again with the same uid.
	if len(fresh) == 0 {
		return uids, len(replayed), nil
	}
	if err := l.opts.Store.Append(ctx, l.journal); err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		s.cursor, l.dirty = before, wasDirty
		for _, id := range fresh {
			delete(s.window, id)
		}
		for _, id := range replayed {
			s.window[id].emitted = false
		}
		return nil, 0, fmt.Errorf("checkpoint %v: journal the uids of a page: %w", l.opts.Store, err)
	}
	return uids, len(replayed), nil
}

// Unemit lets events that were taken but not handed on, in (time, id)
// order, be taken again by this process with their uids: the cursor moves
// back before the first of them, so the next forward read returns them.
func (l *Ledger) Unemit(key string, items []Item) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok || len(items) == 0 {
		return
	}
	for _, it := range items {
		if e, ok := s.window[it.ID]; ok && !e.acked {
			e.emitted = false
		}
	}
	if first := items[0]; first.Time < s.cursor.Time || first.Time == s.cursor.Time && first.ID <= s.cursor.ID {
		s.cursor = Cursor{Time: first.Time}
		l.dirty = true
	}
}

// Ack records that the event id of the stream is done (delivered,
// dead-lettered, dropped and counted, or filtered out): it will not be
// emitted again. Unknown events are ignored.
func (l *Ledger) Ack(key, id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return
	}
	if e, ok := s.window[id]; ok && !e.acked {
		e.acked = true
		l.dirty = true
	}
}

// Saves returns how many saves reached the store.
func (l *Ledger) Saves() uint64 { return l.saves.Load() }

// SaveIfDue saves when the state changed and SaveInterval passed since the
// last save.
func (l *Ledger) SaveIfDue(ctx context.Context) error {
	l.mu.Lock()
	due := l.dirty && l.opts.Now().Sub(l.lastSaved) >= l.opts.SaveInterval
	l.mu.Unlock()
	if !due {
		return nil
	}
	return l.Save(ctx)
}

// Save prunes every window and saves the state if it changed.
func (l *Ledger) Save(ctx context.Context) error {
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	l.mu.Lock()
	l.prune()
	if !l.dirty || l.opts.Store == nil {
		l.mu.Unlock()
		return nil
	}
	l.snap = l.appendSnapshot(l.snap[:0])
	l.dirty = false
	l.lastSaved = l.opts.Now()
	l.mu.Unlock()
	if err := l.opts.Store.Save(ctx, l.snap); err != nil {
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
		return fmt.Errorf("checkpoint %v: %w", l.opts.Store, err)
	}
	l.saves.Add(1)
	return nil
}

// Close saves the state and closes the store.
func (l *Ledger) Close(ctx context.Context) error {
	err := l.Save(ctx)
	if l.opts.Store != nil {
		err = errors.Join(err, l.opts.Store.Close())
	}
	return err
}

// prune raises each stream's floor to min(cursor time - Overlap, oldest
// unacknowledged time) and forgets acknowledged entries below it. Streams
// still to recover keep everything. The caller holds l.mu.
func (l *Ledger) prune() {
	overlap := l.opts.Overlap.Milliseconds()
	for _, s := range l.streams {
		if !s.recovered {
			continue
		}
		floor := s.cursor.Time - overlap
		oldest := int64(math.MaxInt64)
		for _, e := range s.window {
			if !e.acked && e.time < oldest {
				oldest = e.time
			}
		}
		floor = min(floor, oldest)
		if floor <= s.floor {
			continue
		}
		s.floor = floor
		l.dirty = true
		for id, e := range s.window {
			if e.acked && e.time < floor {
				delete(s.window, id)
			}
		}
	}
}
