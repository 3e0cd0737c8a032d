// Package checkpoint is the emitter's ledger: per stream (one kind of event
// in one realm) the cursor of the forward read, the floor below which rows
// are done, and the window of the events read at or after the floor, each
// with the uid it was given and whether it was acknowledged; the journal of
// uids issued since the last snapshot; and the Stores that keep all of it
// across restarts (a file for one instance, PostgreSQL for a cluster). A crash at any point replays
// every unacknowledged event with the uid it had, and skips none.
package checkpoint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
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
	// Horizon is how long behind its cursor a stream remembers, in memory,
	// a compact key (time and a hash of the id) of every event it read, so
	// that a row appearing that late is known to be new (see Audit). Then,
	// for PastHorizon more, it keeps how many rows it read per minute (see
	// Past). 0 keeps nothing beyond the window.
	Horizon, PastHorizon time.Duration
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
	hold      int64 // ms; see SetHold
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
	window    window
	recovered bool // begun here, or the recovery read after loading has run

	// trail holds the events read in [trailFrom, trailTo) that were pruned
	// from the window, ordered by (time, hash): what this process knows was
	// read there (trailTo is the highest floor yet; the floor is lower only
	// while a late row found in the trail's range waits in the window).
	// past counts the rows read per minute before trailFrom.
	trail     []trailKey
	trailFrom int64
	trailTo   int64
	past      map[int64]int
}

// trailKey is the compact key of an event read: 16 bytes.
type trailKey struct {
	time int64
	hash uint64
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
		s := &stream{cursor: cs.Cursor, floor: cs.Floor, trailFrom: cs.Floor, trailTo: cs.Floor}
		for id, e := range cs.Window {
			s.window.load(id, entry{time: e.Time, uid: e.UID, acked: e.Acked})
			l.loadedUID = max(l.loadedUID, e.UID)
		}
		s.window.sort()
		l.streams[key] = s
	}
	entries, err := DecodeJournal(journal)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %v: %w", o.Store, err)
	}
	journaled := map[*stream]bool{}
	for _, e := range entries {
		s, ok := l.streams[e.Stream]
		if !ok { // a stream that began after the last save: recover it from its first uid
			s = &stream{cursor: Cursor{Time: e.Time}, floor: e.Time, trailFrom: e.Time, trailTo: e.Time}
			l.streams[e.Stream] = s
		}
		if _, at := s.window.find(e.ID, e.Time); !at.found {
			s.window.load(e.ID, entry{time: e.Time, uid: e.UID}) // sorted below
			journaled[s] = true
			s.floor = min(s.floor, e.Time)
			s.trailFrom, s.trailTo = s.floor, s.floor
			l.dirty = true
		}
		l.loadedUID = max(l.loadedUID, e.UID)
	}
	for s := range journaled {
		s.window.sort()
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

// Begin adds the stream key starting at time start (ms), unless it is known;
// it reports whether it added it.
func (l *Ledger) Begin(key string, start int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.streams[key]; ok {
		return false
	}
	l.streams[key] = &stream{cursor: Cursor{Time: start}, floor: start, recovered: true, trailFrom: start, trailTo: start}
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

// Cursors appends the cursor of each of keys to dst, as Cursor would.
func (l *Ledger) Cursors(keys []string, dst []Cursor) []Cursor {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		var c Cursor
		if s, ok := l.streams[k]; ok {
			c = s.cursor
		}
		dst = append(dst, c)
	}
	return dst
}

// SetHold says that rows with a time at or after hold (ms) may still
// appear in every stream, however far behind their cursors: transactions
// that were open at the last read may still commit them. Windows then keep
// what they read from Overlap before hold on, and RescanRange reaches back
// there. 0 holds nothing.
func (l *Ledger) SetHold(hold int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hold = hold
}

// behind returns the time behind which s is done with, before its oldest
// pending entry is considered: Overlap before the cursor or before the
// hold, whichever is earlier. The caller holds l.mu.
func (l *Ledger) behind(s *stream) int64 {
	lo := s.cursor.Time - l.opts.Overlap.Milliseconds()
	if l.hold > 0 {
		lo = min(lo, l.hold-l.opts.Overlap.Milliseconds())
	}
	return lo
}

// RescanRange returns the times [lo, hi] to read again for late commits:
// from the floor or Overlap behind the cursor (or the hold), whichever is
// later, to the cursor.
func (l *Ledger) RescanRange(key string) (lo, hi int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return 0, -1
	}
	return max(s.floor, l.behind(s)), s.cursor.Time
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
	return s.floor, s.window.newest(s.cursor.Time), true
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
	s.window.all(func(name string, e *entry) {
		if !e.acked && !e.emitted {
			e.acked = true
			l.dirty = true
			if name == "" {
				name = e.id.String()
			}
			lost = append(lost, Lost{Stream: key, ID: name, Time: e.time, UID: e.uid})
		}
	})
	s.recovered = true
	slices.SortFunc(lost, func(a, b Lost) int { return cmp.Or(cmp.Compare(a.Time, b.Time), strings.Compare(a.ID, b.ID)) })
	return lost
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
	return s.window.count(lo, hi)
}

// Page is a page of rows read from one stream, in (time, id) order, for
// TakePages; Forward when it was read forward from the cursor.
type Page struct {
	Key     string
	Items   []Item
	Forward bool
	// After, when not nil, is the cursor a forward page was read after.
	// When the stream's cursor is no longer there (Unemit moved it back
	// while the page was read), the page is not taken: its rows come
	// again, in order, from the cursor.
	After *Cursor
}

// Taken is what TakePages decided for the items of one page: UIDs[i] is
// the uid of Items[i] when it is to be emitted, 0 when not; Replay[i] tells
// that it is an unacknowledged event of the saved state emitted again.
type Taken struct {
	UIDs   []int64
	Replay []bool
}

// Take is TakePages for one page.
func (l *Ledger) Take(ctx context.Context, key string, items []Item, forward bool) (uids []int64, replay []bool, err error) {
	return l.take(ctx, Page{Key: key, Items: items, Forward: forward})
}

// TakeAfter is Take for a forward page read after the cursor after (see
// Page.After).
func (l *Ledger) TakeAfter(ctx context.Context, key string, items []Item, after Cursor) (uids []int64, replay []bool, err error) {
	return l.take(ctx, Page{Key: key, Items: items, Forward: true, After: &after})
}

func (l *Ledger) take(ctx context.Context, pg Page) (uids []int64, replay []bool, err error) {
	if len(pg.Items) == 0 {
		return nil, nil, nil
	}
	taken, err := l.TakePages(ctx, []Page{pg})
	if err != nil {
		return nil, nil, err
	}
	return taken[0].UIDs, taken[0].Replay, nil
}

// TakePages records rows read from streams and decides which to hand on:
// a new uid for a row read the first time; the one it had for an
// unacknowledged row not yet emitted by this process (a replay); none when
// already emitted, acknowledged, or older than the floor and so done.
// Reading forward, a page's stream's cursor moves to its last item. The
// new uids of every page are journaled in one append before TakePages
// returns; when that fails nothing is recorded and the error is returned.
func (l *Ledger) TakePages(ctx context.Context, pages []Page) ([]Taken, error) {
	l.ioMu.Lock()
	defer l.ioMu.Unlock()
	l.mu.Lock()
	undos := make([]takeUndo, 0, len(pages))
	wasDirty := l.dirty
	taken := make([]Taken, len(pages))
	l.journal = l.journal[:0]
	for p, pg := range pages {
		s, ok := l.streams[pg.Key]
		if !ok {
			l.undo(undos, wasDirty)
			l.mu.Unlock()
			return nil, fmt.Errorf("checkpoint: stream %q was never begun", pg.Key)
		}
		u := takeUndo{s: s, before: s.cursor}
		uids, replay := make([]int64, len(pg.Items)), make([]bool, len(pg.Items))
		if pg.Forward && pg.After != nil && s.cursor != *pg.After {
			taken[p] = Taken{UIDs: uids, Replay: replay}
			continue
		}
		for i, it := range pg.Items {
			if pg.Forward {
				s.cursor = Cursor{Time: it.Time, ID: it.ID}
				l.dirty = true
			}
			e, at := s.window.find(it.ID, it.Time)
			if at.found {
				if !e.acked && !e.emitted {
					s.window.update(it.ID, it.Time, func(e *entry) { e.emitted = true })
					uids[i], replay[i] = e.uid, true
					u.replayed = append(u.replayed, it)
				}
				continue
			}
			if it.Time < max(s.floor, s.trailTo) {
				if it.Time < s.trailFrom || s.inTrail(it.Time, idHash(it.ID)) {
					continue // older than the floor, not in the window: done
				}
				s.floor = min(s.floor, it.Time) // a row read there first: late (see Audit)
			}
			fresh := entry{time: it.Time, uid: l.opts.NextUID(), emitted: true}
			s.window.add(at, fresh)
			uids[i] = fresh.uid
			l.maxUID = max(l.maxUID, fresh.uid)
			l.dirty = true
			if l.opts.Store != nil {
				u.fresh = append(u.fresh, it)
				l.journal = appendJournalLine(l.journal, pg.Key, it.ID, it.Time, fresh.uid)
			}
		}
		undos = append(undos, u)
		taken[p] = Taken{UIDs: uids, Replay: replay}
	}
	l.mu.Unlock()
	// A uid is durable before its event leaves: after a crash the event is
	// sent again with the same uid.
	if len(l.journal) == 0 {
		return taken, nil
	}
	if err := l.opts.Store.Append(ctx, l.journal); err != nil {
		l.mu.Lock()
		l.undo(undos, wasDirty)
		l.mu.Unlock()
		return nil, fmt.Errorf("checkpoint %v: journal the uids of %d pages: %w", l.opts.Store, len(pages), err)
	}
	return taken, nil
}

// undo reverts what TakePages recorded, latest page first. The caller
// holds l.mu.
func (l *Ledger) undo(undos []takeUndo, wasDirty bool) {
	for _, u := range slices.Backward(undos) {
		u.s.cursor = u.before
		for _, it := range u.fresh {
			u.s.window.remove(it.ID, it.Time)
		}
		for _, it := range u.replayed {
			u.s.window.update(it.ID, it.Time, func(e *entry) { e.emitted = false })
		}
	}
	l.dirty = wasDirty
}

// takeUndo is what TakePages changed in one page's stream.
type takeUndo struct {
	s        *stream
	before   Cursor
	fresh    []Item
	replayed []Item
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
		s.window.update(it.ID, it.Time, func(e *entry) {
			if !e.acked {
				e.emitted = false
			}
		})
	}
	if first := items[0]; first.Time < s.cursor.Time || first.Time == s.cursor.Time && first.ID <= s.cursor.ID {
		s.cursor = Cursor{Time: first.Time}
		l.dirty = true
	}
}

// Ack records that the event id with time t (ms) of the stream is done
// (delivered, dead-lettered, dropped and counted, or filtered out): it
// will not be emitted again. Unknown events are ignored.
func (l *Ledger) Ack(key, id string, t int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return
	}
	s.window.update(id, t, func(e *entry) {
		if !e.acked {
			e.acked = true
			l.dirty = true
		}
	})
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
	var err error
	if ss, ok := l.opts.Store.(streamSaver); ok {
		// Written as it is encoded, through a buffer of snapshotChunk
		// bytes: a busy window is not copied whole into memory.
		locked := true
		err = ss.SaveStream(ctx, func(w io.Writer) error {
			var werr error
			l.snap = l.appendSnapshot(l.snap[:0], func(b []byte) []byte {
				if werr == nil {
					_, werr = w.Write(b)
				}
				return b[:0]
			})
			l.dirty = false
			l.lastSaved = l.opts.Now()
			l.mu.Unlock()
			locked = false
			return werr
		})
		if locked {
			l.mu.Unlock()
		}
	} else {
		l.snap = l.appendSnapshot(l.snap[:0], nil)
		l.dirty = false
		l.lastSaved = l.opts.Now()
		l.mu.Unlock()
		err = l.opts.Store.Save(ctx, l.snap)
	}
	if err != nil {
		l.mu.Lock()
		l.dirty = true
		l.mu.Unlock()
		return fmt.Errorf("checkpoint %v: %w", l.opts.Store, err)
	}
	l.saves.Add(1)
	return nil
}

// streamSaver is a Store that can save a snapshot while it is written:
// SaveStream is Save of what write writes to w.
type streamSaver interface {
	SaveStream(ctx context.Context, write func(w io.Writer) error) error
}

// snapshotChunk is how many bytes of a snapshot are encoded before they
// are written to a streamSaver.
const snapshotChunk = 64 << 10

// Close saves the state and closes the store.
func (l *Ledger) Close(ctx context.Context) error {
	err := l.Save(ctx)
	if l.opts.Store != nil {
		err = errors.Join(err, l.opts.Store.Close())
	}
	return err
}

// prune raises each stream's floor to min(cursor time - Overlap, hold -
// Overlap, oldest unacknowledged time) and forgets acknowledged entries
// below it. Streams still to recover keep everything. The caller holds
// l.mu.
func (l *Ledger) prune() {
	for _, s := range l.streams {
		if !s.recovered {
			continue
		}
		floor := min(l.behind(s), s.window.oldestPending(math.MaxInt64))
		if floor <= s.floor {
			continue
		}
		s.floor = floor
		s.trailTo = max(s.trailTo, floor)
		l.dirty = true
		var gone []trailKey
		s.window.prune(floor, func(k trailKey) {
			if l.opts.Horizon > 0 {
				gone = append(gone, k)
			}
		})
		l.extendTrail(s, gone)
	}
}

// extendTrail adds the keys pruned from the window (all newer than the
// trail) and forgets keys older than Horizon behind the cursor, counting
// them per minute in past, itself kept for PastHorizon. The caller holds
// l.mu.
func (l *Ledger) extendTrail(s *stream, gone []trailKey) {
	if l.opts.Horizon <= 0 {
		s.trailFrom = s.trailTo
		return
	}
	slices.SortFunc(gone, cmpTrail)
	ordered := len(s.trail) == 0 || len(gone) == 0 || cmpTrail(s.trail[len(s.trail)-1], gone[0]) < 0
	s.trail = append(s.trail, gone...)
	if !ordered { // a late row's entry, older than keys already in the trail
		slices.SortFunc(s.trail, cmpTrail)
	}
	from := s.cursor.Time - l.opts.Horizon.Milliseconds()
	if from <= s.trailFrom {
		return
	}
	n, _ := slices.BinarySearchFunc(s.trail, trailKey{time: from}, cmpTrail)
	if l.opts.PastHorizon > 0 {
		if s.past == nil {
			s.past = map[int64]int{}
		}
		for _, k := range s.trail[:n] {
			s.past[k.time/60000*60000]++
		}
		for m := range s.past {
			if m+60000 <= from-l.opts.PastHorizon.Milliseconds() {
				delete(s.past, m)
			}
		}
	}
	s.trail = slices.Delete(s.trail, 0, n)
	s.trailFrom = min(from, s.trailTo)
}

func cmpTrail(a, b trailKey) int {
	return cmp.Or(cmp.Compare(a.time, b.time), cmp.Compare(a.hash, b.hash))
}

// inTrail tells whether the trail holds the key (time, hash).
func (s *stream) inTrail(time int64, hash uint64) bool {
	_, found := slices.BinarySearchFunc(s.trail, trailKey{time: time, hash: hash}, cmpTrail)
	return found
}

// Audit returns the range [lo, hi] of times below the window that the
// stream's trail covers, and how many events it knows were read there: when
// the source holds more rows there, a late row appeared (a Keycloak node
// whose clock is behind); reading the range again makes Take emit it. ok is
// false when the trail covers nothing.
func (l *Ledger) Audit(key string) (lo, hi int64, known int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, found := l.streams[key]
	if !found || s.trailFrom >= s.trailTo {
		return 0, 0, 0, false
	}
	known = len(s.trail) + s.window.count(s.trailFrom, s.trailTo-1) // + late rows found there, still in the window
	return s.trailFrom, s.trailTo - 1, known, true
}

// Minute is the count of rows a stream read in one minute [From, To]
// before its trail (To is the end of the minute, or just before the trail).
type Minute struct {
	From, To int64
	Known    int
}

// Past returns the minutes counted before the trail, oldest first.
func (l *Ledger) Past(key string) []Minute {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return nil
	}
	out := make([]Minute, 0, len(s.past))
	for m, n := range s.past {
		out = append(out, Minute{From: m, To: min(m+60000, s.trailFrom) - 1, Known: n})
	}
	slices.SortFunc(out, func(a, b Minute) int { return cmp.Compare(a.From, b.From) })
	return out
}

// Missed records that the source holds n rows in the minute from (beyond
// the trail) and returns how many of them this ledger never read: rows that
// appeared too late to be delivered. Each is reported once.
func (l *Ledger) Missed(key string, from int64, n int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.streams[key]
	if !ok {
		return 0
	}
	known, counted := s.past[from]
	if !counted || n <= known {
		return 0
	}
	s.past[from] = n
	return n - known
}
