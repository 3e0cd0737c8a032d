package emitter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/checkpoint"
)

// Cursor is a position in a stream of events ordered by (time, id). A cursor
// with an empty ID stands before every event of its time.
type Cursor struct {
	Time int64
	ID   string
}

// Realm names a Keycloak realm by its internal id and its name.
type Realm struct {
	ID   string
	Name string
}

// Pager reads a source's stored events in pages. It keeps no position: the
// Tailer passes the cursor on every call. Errors are retried by the Tailer.
type Pager interface {
	// Realms returns every realm of the source.
	Realms(ctx context.Context) ([]Realm, error)
	// Page returns up to limit events of kind in realm with (time, id) after
	// the cursor and, when until is not 0, time <= until, ordered by (time,
	// id), with UID 0. A page shorter than limit means there are no more now.
	Page(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64, limit int) ([]Record, error)
	// OldestTime returns the time of the oldest stored event of kind in
	// realm, and false when there is none.
	OldestTime(ctx context.Context, realm Realm, kind Kind) (int64, bool, error)
}

// A Counter is a Pager that can count cheaply what Page would return after a
// cursor up to until (time <= until), with no limit. The Tailer then re-reads
// a stream's overlap window only when the source holds rows there that the
// window lacks (late commits), instead of at every rescan. Count returns
// errors.ErrUnsupported when the Pager cannot count.
type Counter interface {
	Count(ctx context.Context, realm Realm, kind Kind, after Cursor, until int64) (int, error)
}

// TailerOptions configure a Tailer. Pager, NextUID and Emit are required;
// zero values of the others take the defaults named on each field.
type TailerOptions struct {
	Pager Pager
	// CheckpointPath is the file holding the durable state; "" keeps the
	// state in memory only (a restart then starts again at From).
	CheckpointPath string
	// NextUID returns a new snowflake uid for an event read the first time.
	NextUID func() int64
	// Emit hands a record on to delivery. It may block (back-pressure); an
	// error other than the context's ends Run. Every record emitted must
	// later be acknowledged with Ack (delivered, dead-lettered or dropped).
	Emit func(context.Context, Record) error
	// Logger receives the tailer's logs; default slog.Default().
	Logger *slog.Logger
	// Realms are the names of the realms to tail; empty tails every realm,
	// also those created while running.
	Realms []string
	// Kinds are the kinds of event to tail; empty tails both.
	Kinds []Kind
	// From is where a stream without a checkpoint starts: "now" (default),
	// "beginning", or an RFC 3339 time. Realms that appear while running
	// start at the beginning, so their first events are not missed.
	From string
	// PageSize is the number of rows per read; default 500.
	PageSize int
	// PollInterval is the pause after a poll that found every stream caught
	// up; default 200ms.
	PollInterval time.Duration
	// Overlap is how far behind the cursor rows are re-read to catch late
	// commits (rows that become visible after rows with a later time):
	// default 5s. It must exceed the clock skew between Keycloak nodes plus
	// the longest transaction that writes an event; a larger value costs
	// more re-reading and a larger checkpoint file.
	Overlap time.Duration
	// RescanInterval is the least time between two re-reads of a stream's
	// overlap window; default 500ms.
	RescanInterval time.Duration
	// RealmInterval is how often realms are listed again and lagging streams
	// checked for expired events; default 30s.
	RealmInterval time.Duration
	// SaveInterval is the least time between two checkpoint saves; default 1s.
	SaveInterval time.Duration
	// MaxBackoff caps the wait between retries after a source error;
	// default 30s.
	MaxBackoff time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// TailerStats are counters of a Tailer since it was created.
type TailerStats struct {
	// Emitted counts records handed to Emit, replays included.
	Emitted uint64
	// Replayed counts unacknowledged events of the checkpoint emitted again
	// with their saved uid.
	Replayed uint64
	// Expired counts times a stream's cursor was found older than the oldest
	// stored event: events may have expired before they were read.
	Expired uint64
	// Missing counts unacknowledged events of the checkpoint that were no
	// longer in the source (deleted, expired or now filtered out).
	Missing uint64
	// SourceErrors counts failed reads of the source (each retried).
	SourceErrors uint64
	// Saves counts checkpoint saves.
	Saves uint64
}

// Tailer reads every stream (one per realm and kind) of a Pager in (time, id)
// order, stamps each event read the first time with a uid, hands it to Emit,
// and remembers it until it is acknowledged; it saves that state to the
// checkpoint file so that after a crash every unacknowledged event is
// emitted again with the same uid and none is skipped.
//
// Per stream it keeps a cursor (the last row read forward), a floor (rows
// older than it are done) and a window of the events read at or after the
// floor. Rows re-read in the overlap window that are already in the window
// are not emitted again. Acknowledged entries are pruned once older than
// min(cursor time - Overlap, oldest unacknowledged time), which becomes the
// new floor; a row that commits later than Overlap behind the cursor falls
// below the floor and is not read.
type Tailer struct {
	opts  TailerOptions
	log   *slog.Logger
	start int64 // ms; where streams present at startup without checkpoint begin

	mu        sync.Mutex
	streams   map[string]*stream
	dirty     bool
	listed    bool // realms were listed at least once
	listedAt  time.Time
	missing   map[string]bool // --realms names not found, already logged
	lastSaved time.Time

	// saveMu orders saves and journal appends: a save snapshots the windows
	// and then empties the journal, so no uid may be journaled in between.
	saveMu  sync.Mutex
	journal *checkpoint.Journal // nil without CheckpointPath
	stats   struct{ emitted, replayed, expired, missing, errors, saves atomic.Uint64 }
}

// stream is the state of one kind of event in one realm.
type stream struct {
	key    string
	realm  Realm
	kind   Kind
	cursor Cursor
	floor  int64
	window map[string]*entry

	active     bool // selected by the options and present in the source
	recovered  bool // the scan from the floor after loading has run
	fromData   bool // the cursor was set by reading a row
	full       bool // the last forward page was full
	checkedAt  time.Time
	alarmed    Cursor // cursor value for which expiry was last reported
	lastRescan time.Time
}

// entry is one event of a stream's window.
type entry struct {
	time    int64
	uid     int64
	acked   bool
	emitted bool // emitted by this process
}

// NewTailer validates opts and loads the checkpoint file. It reads nothing
// from the source yet.
func NewTailer(opts TailerOptions) (*Tailer, error) {
	if opts.Pager == nil || opts.NextUID == nil || opts.Emit == nil {
		return nil, errors.New("tailer: Pager, NextUID and Emit are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if len(opts.Kinds) == 0 {
		opts.Kinds = []Kind{KindEvent, KindAdminEvent}
	}
	for _, k := range opts.Kinds {
		if k != KindEvent && k != KindAdminEvent {
			return nil, fmt.Errorf("tailer: kind %q is neither %s nor %s", k, KindEvent, KindAdminEvent)
		}
	}
	setDefault := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setDefault(&opts.PollInterval, 200*time.Millisecond)
	setDefault(&opts.Overlap, 5*time.Second)
	setDefault(&opts.RescanInterval, 500*time.Millisecond)
	setDefault(&opts.RealmInterval, 30*time.Second)
	setDefault(&opts.SaveInterval, time.Second)
	setDefault(&opts.MaxBackoff, 30*time.Second)
	if opts.PageSize <= 0 {
		opts.PageSize = 500
	}
	start, err := ParseFrom(opts.From, opts.Now())
	if err != nil {
		return nil, err
	}
	t := &Tailer{opts: opts, log: opts.Logger, start: start,
		streams: map[string]*stream{}, missing: map[string]bool{}}
	if opts.CheckpointPath != "" {
		st, err := checkpoint.Load(opts.CheckpointPath)
		if err != nil {
			return nil, fmt.Errorf("tailer: %w", err)
		}
		for key, cs := range st.Streams {
			s := &stream{key: key, cursor: Cursor(cs.Cursor), floor: cs.Floor,
				window: make(map[string]*entry, len(cs.Window)), fromData: cs.Cursor.ID != ""}
			for id, e := range cs.Window {
				s.window[id] = &entry{time: e.Time, uid: e.UID, acked: e.Acked}
			}
			t.streams[key] = s
		}
		// Uids assigned after the last save, journaled before their events left.
		jpath := checkpoint.JournalPath(opts.CheckpointPath)
		entries, err := checkpoint.ReadJournal(jpath)
		if err != nil {
			return nil, fmt.Errorf("tailer: %w", err)
		}
		for _, e := range entries {
			s, ok := t.streams[e.Stream]
			if !ok { // a stream that began after the last save: recover it from its first uid
				s = &stream{key: e.Stream, cursor: Cursor{Time: e.Time}, floor: e.Time, window: map[string]*entry{}}
				t.streams[e.Stream] = s
			}
			if _, ok := s.window[e.ID]; !ok {
				s.window[e.ID] = &entry{time: e.Time, uid: e.UID}
				s.floor = min(s.floor, e.Time)
				t.dirty = true
			}
		}
		if t.journal, err = checkpoint.OpenJournal(jpath); err != nil {
			return nil, fmt.Errorf("tailer: %w", err)
		}
	}
	return t, nil
}

// ParseFrom turns a start position ("now", "" meaning now, "beginning" or an
// RFC 3339 time) into milliseconds since the Unix epoch.
func ParseFrom(from string, now time.Time) (int64, error) {
	switch from {
	case "", "now":
		return now.UnixMilli(), nil
	case "beginning":
		return 0, nil
	}
	ts, err := time.Parse(time.RFC3339, from)
	if err != nil {
		return 0, fmt.Errorf("from %q: want now, beginning or an RFC 3339 time such as 2026-01-02T15:04:05Z", from)
	}
	return ts.UnixMilli(), nil
}

// streamKey returns the key of the stream of kind in the realm with id realmID.
func streamKey(kind Kind, realmID string) string { return string(kind) + "/" + realmID }

// Run tails every selected stream until ctx is done, then returns nil. Source
// errors are logged at INFO and retried with a capped backoff; only an error
// of Emit that is not the context's ends Run early. Call Close after Run
// returns to save the final state.
func (t *Tailer) Run(ctx context.Context) error {
	return t.loop(ctx, false)
}

// Drain reads every selected stream until all are caught up (a full rescan of
// their overlap windows included), then returns. It is the --once mode: wait
// for the acknowledgements of what it emitted, then Close.
func (t *Tailer) Drain(ctx context.Context) error {
	return t.loop(ctx, true)
}

func (t *Tailer) loop(ctx context.Context, drain bool) error {
	backoff := time.Duration(0)
	for {
		if ctx.Err() != nil {
			if drain {
				return ctx.Err()
			}
			return nil
		}
		busy, err := t.poll(ctx, drain)
		if err != nil {
			var ee emitError
			if errors.As(err, &ee) {
				if ctx.Err() != nil {
					continue
				}
				return ee.err
			}
			if ctx.Err() != nil {
				continue
			}
			t.stats.errors.Add(1)
			backoff = min(max(2*backoff, 100*time.Millisecond), t.opts.MaxBackoff)
			t.log.Info("reading the event source failed; retrying", "error", err, "retry_in", backoff)
			t.saveIfDue()
			sleep(ctx, backoff)
			continue
		}
		backoff = 0
		t.saveIfDue()
		if busy {
			continue
		}
		if drain {
			return nil
		}
		sleep(ctx, t.opts.PollInterval)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// emitError marks an error of Emit, which ends Run rather than being retried.
type emitError struct{ err error }

func (e emitError) Error() string { return e.err.Error() }

// poll reads one page of every active stream and tells whether any page was
// full (more is waiting). In drain mode every stream is rescanned.
func (t *Tailer) poll(ctx context.Context, drain bool) (bool, error) {
	now := t.opts.Now()
	t.mu.Lock()
	due := !t.listed || now.Sub(t.listedAt) >= t.opts.RealmInterval
	t.mu.Unlock()
	if due {
		if err := t.listRealms(ctx, now); err != nil {
			return false, err
		}
	}
	busy := false
	for _, s := range t.activeStreams() {
		if !s.recovered {
			if err := t.recover(ctx, s); err != nil {
				return false, err
			}
		}
		if err := t.checkExpiry(ctx, s, now, due); err != nil {
			return false, err
		}
		full, err := t.forward(ctx, s)
		if err != nil {
			return false, err
		}
		busy = busy || full
		if !full && (drain || now.Sub(s.lastRescan) >= t.opts.RescanInterval) {
			if err := t.rescan(ctx, s, now); err != nil {
				return false, err
			}
		}
	}
	return busy, nil
}

// activeStreams returns the streams to poll, in key order.
func (t *Tailer) activeStreams() []*stream {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*stream
	for _, s := range t.streams {
		if s.active {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *stream) int {
		if a.key < b.key {
			return -1
		}
		if a.key > b.key {
			return 1
		}
		return 0
	})
	return out
}

// listRealms lists the source's realms and activates a stream per selected
// realm and kind. Streams of realms present at the first listing start at
// From; later ones at the beginning.
func (t *Tailer) listRealms(ctx context.Context, now time.Time) error {
	realms, err := t.opts.Pager.Realms(ctx)
	if err != nil {
		return fmt.Errorf("list realms: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.streams {
		s.active = false // until listed again: a deleted realm is no longer polled
	}
	found := map[string]bool{}
	for _, r := range realms {
		found[r.Name] = true
		if len(t.opts.Realms) > 0 && !slices.Contains(t.opts.Realms, r.Name) {
			continue
		}
		for _, k := range t.opts.Kinds {
			key := streamKey(k, r.ID)
			s, ok := t.streams[key]
			if !ok {
				start := int64(0)
				if !t.listed {
					start = t.start
				}
				s = &stream{key: key, cursor: Cursor{Time: start}, floor: start,
					window: map[string]*entry{}, recovered: true}
				t.streams[key] = s
				t.dirty = true
				t.log.Info("tailing a new stream", "kind", k, "realm", r.Name, "realm_id", r.ID,
					"from", time.UnixMilli(start).UTC().Format(time.RFC3339Nano))
			}
			s.realm, s.kind, s.active = r, k, true
		}
	}
	for _, name := range t.opts.Realms {
		if !found[name] && !t.missing[name] {
			t.missing[name] = true
			t.log.Error("realm named in the realm filter does not exist (yet)", "realm", name)
		}
	}
	t.listed, t.listedAt = true, now
	return nil
}

// forward reads the page after the cursor and tells whether it was full.
func (t *Tailer) forward(ctx context.Context, s *stream) (bool, error) {
	t.mu.Lock()
	after := s.cursor
	t.mu.Unlock()
	page, err := t.opts.Pager.Page(ctx, s.realm, s.kind, after, 0, t.opts.PageSize)
	if err != nil {
		return false, err
	}
	if err := t.take(ctx, s, page, true); err != nil {
		return false, err
	}
	full := len(page) >= t.opts.PageSize
	t.mu.Lock()
	s.full = full
	t.mu.Unlock()
	return full, nil
}

// rescan re-reads the overlap window behind the cursor for late commits.
func (t *Tailer) rescan(ctx context.Context, s *stream, now time.Time) error {
	t.mu.Lock()
	lo := max(s.floor, s.cursor.Time-t.opts.Overlap.Milliseconds())
	hi := s.cursor.Time
	t.mu.Unlock()
	if same, err := t.windowComplete(ctx, s, lo, hi); err != nil {
		return err
	} else if !same {
		if err := t.scan(ctx, s, lo, hi); err != nil {
			return err
		}
	}
	t.mu.Lock()
	s.lastRescan = now
	t.mu.Unlock()
	return nil
}

// windowComplete tells whether the source holds exactly as many rows with
// time in [lo, hi] as the stream's window: then no late commit appeared there
// and the rescan can be skipped. Entries in that range are never pruned, so
// equal counts mean the same rows, unless a row also vanished from the
// source there (Keycloak deletes expired events, which reaches the overlap
// window only of a cursor that lags by the whole expiration). It is false
// when the Pager cannot count.
func (t *Tailer) windowComplete(ctx context.Context, s *stream, lo, hi int64) (bool, error) {
	c, ok := t.opts.Pager.(Counter)
	if !ok {
		return false, nil
	}
	n, err := c.Count(ctx, s.realm, s.kind, Cursor{Time: lo}, hi)
	if errors.Is(err, errors.ErrUnsupported) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	known := 0
	t.mu.Lock()
	for _, e := range s.window {
		if e.time >= lo && e.time <= hi {
			known++
		}
	}
	t.mu.Unlock()
	return n == known, nil
}

// recover runs once per stream loaded from the checkpoint: it re-reads from
// the floor to the cursor, which emits again every unacknowledged event with
// its saved uid, then reports the unacknowledged ones it did not find.
func (t *Tailer) recover(ctx context.Context, s *stream) error {
	t.mu.Lock()
	lo, hi := s.floor, s.cursor.Time
	for _, e := range s.window { // journaled uids may lie past the saved cursor
		hi = max(hi, e.time)
	}
	t.mu.Unlock()
	if err := t.scan(ctx, s, lo, hi); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, e := range s.window {
		if !e.acked && !e.emitted {
			e.acked = true
			t.dirty = true
			t.stats.missing.Add(1)
			t.log.Error("an unacknowledged event of the checkpoint is no longer in the source (deleted, expired or filtered out): it is lost",
				"kind", s.kind, "realm", s.realm.Name, "id", id, "uid", e.uid, "time", e.time)
		}
	}
	s.recovered = true
	return nil
}

// scan reads every row with time in [lo, hi], page by page.
func (t *Tailer) scan(ctx context.Context, s *stream, lo, hi int64) error {
	if hi <= 0 || lo > hi {
		return nil
	}
	after := Cursor{Time: lo}
	for {
		page, err := t.opts.Pager.Page(ctx, s.realm, s.kind, after, hi, t.opts.PageSize)
		if err != nil {
			return err
		}
		if err := t.take(ctx, s, page, false); err != nil {
			return err
		}
		if len(page) < t.opts.PageSize {
			return nil
		}
		last := page[len(page)-1]
		after = Cursor{Time: last.Time(), ID: last.ID()}
	}
}

// take decides for each record of a page whether to emit it, records that in
// the window (and, reading forward, moves the cursor), then emits.
func (t *Tailer) take(ctx context.Context, s *stream, page []Record, forward bool) error {
	if len(page) == 0 {
		return nil
	}
	out := make([]Record, 0, len(page))
	var fresh []checkpoint.JournalEntry
	replays := 0
	t.saveMu.Lock()
	t.mu.Lock()
	for _, r := range page {
		id, tm := r.ID(), r.Time()
		if forward {
			s.cursor = Cursor{Time: tm, ID: id}
			s.fromData = true
			t.dirty = true
		}
		if e, ok := s.window[id]; ok {
			if !e.acked && !e.emitted {
				e.emitted = true
				r.SetUID(e.uid)
				out = append(out, r)
				replays++
			}
			continue
		}
		if tm < s.floor {
			continue // older than the floor and not in the window: done
		}
		e := &entry{time: tm, uid: t.opts.NextUID(), emitted: true}
		s.window[id] = e
		r.SetUID(e.uid)
		out = append(out, r)
		if t.journal != nil {
			fresh = append(fresh, checkpoint.JournalEntry{Stream: s.key, ID: id, Time: tm, UID: e.uid})
		}
		t.dirty = true
	}
	t.mu.Unlock()
	// A uid is on disk before its event leaves: after a crash the event is
	// sent again with the same uid.
	var jerr error
	if t.journal != nil {
		jerr = t.journal.Append(fresh)
	}
	t.saveMu.Unlock()
	if jerr != nil {
		t.unemit(s, out)
		return fmt.Errorf("journal the uids of a page: %w", jerr)
	}
	t.stats.replayed.Add(uint64(replays))
	for i, r := range out {
		if err := t.opts.Emit(ctx, r); err != nil {
			t.unemit(s, out[i:])
			return emitError{fmt.Errorf("emit %s %s of realm %q: %w", r.Kind(), r.ID(), s.realm.Name, err)}
		}
		t.stats.emitted.Add(1)
	}
	return nil
}

// unemit lets records that were not handed over be emitted again by this
// process.
func (t *Tailer) unemit(s *stream, recs []Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		if e, ok := s.window[r.ID()]; ok && !e.acked {
			e.emitted = false
		}
	}
}

// checkExpiry reports a stream whose cursor is older than the oldest stored
// event: the events between them were deleted (expired) before being read.
// It checks each stream once after start, then every RealmInterval while the
// stream lags (its last page was full), when loss is possible.
func (t *Tailer) checkExpiry(ctx context.Context, s *stream, now time.Time, due bool) error {
	t.mu.Lock()
	check := s.fromData && (s.checkedAt.IsZero() || (due && s.full && now.Sub(s.checkedAt) >= t.opts.RealmInterval))
	cursor := s.cursor
	t.mu.Unlock()
	if !check {
		return nil
	}
	oldest, ok, err := t.opts.Pager.OldestTime(ctx, s.realm, s.kind)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s.checkedAt = now
	if ok && oldest > cursor.Time && s.alarmed != cursor {
		s.alarmed = cursor
		t.stats.expired.Add(1)
		t.log.Error("events may have expired before being read: the oldest stored event is newer than the cursor",
			"kind", s.kind, "realm", s.realm.Name,
			"cursor", time.UnixMilli(cursor.Time).UTC().Format(time.RFC3339Nano),
			"oldest", time.UnixMilli(oldest).UTC().Format(time.RFC3339Nano))
	}
	return nil
}

// Ack records that the event id of kind in the realm with id realmID was
// delivered, dead-lettered or dropped (and counted): it will not be emitted
// again. Unknown events are ignored.
func (t *Tailer) Ack(kind Kind, realmID, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.streams[streamKey(kind, realmID)]
	if !ok {
		return
	}
	if e, ok := s.window[id]; ok && !e.acked {
		e.acked = true
		t.dirty = true
	}
}

// MaxUID returns the largest uid of the loaded checkpoint and journal, 0
// when there is none: the uids issued after a restart must stay above it.
func (t *Tailer) MaxUID() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var top int64
	for _, s := range t.streams {
		for _, e := range s.window {
			top = max(top, e.uid)
		}
	}
	return top
}

// Stats returns the tailer's counters.
func (t *Tailer) Stats() TailerStats {
	return TailerStats{
		Emitted:      t.stats.emitted.Load(),
		Replayed:     t.stats.replayed.Load(),
		Expired:      t.stats.expired.Load(),
		Missing:      t.stats.missing.Load(),
		SourceErrors: t.stats.errors.Load(),
		Saves:        t.stats.saves.Load(),
	}
}

// Flush prunes the windows and saves the checkpoint now if anything changed.
func (t *Tailer) Flush() error {
	return t.save()
}

// Close saves the checkpoint. Call it after Run or Drain returned.
func (t *Tailer) Close() error {
	err := t.save()
	if t.journal != nil {
		err = errors.Join(err, t.journal.Close())
	}
	return err
}

// saveIfDue saves when the state changed and SaveInterval has passed; a
// failure is logged and retried at the next call.
func (t *Tailer) saveIfDue() {
	t.mu.Lock()
	due := t.dirty && t.opts.Now().Sub(t.lastSaved) >= t.opts.SaveInterval
	t.mu.Unlock()
	if !due {
		return
	}
	if err := t.save(); err != nil {
		t.log.Error("saving the checkpoint failed; retrying", "error", err)
	}
}

// save prunes every window and writes the checkpoint if it changed.
func (t *Tailer) save() error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	t.prune()
	if !t.dirty || t.opts.CheckpointPath == "" {
		t.mu.Unlock()
		return nil
	}
	st := &checkpoint.State{Streams: make(map[string]*checkpoint.Stream, len(t.streams))}
	for key, s := range t.streams {
		cs := &checkpoint.Stream{Cursor: checkpoint.Cursor(s.cursor), Floor: s.floor,
			Window: make(map[string]checkpoint.Entry, len(s.window))}
		for id, e := range s.window {
			cs.Window[id] = checkpoint.Entry{Time: e.time, UID: e.uid, Acked: e.acked}
		}
		st.Streams[key] = cs
	}
	t.dirty = false
	t.lastSaved = t.opts.Now()
	t.mu.Unlock()
	if err := checkpoint.Save(t.opts.CheckpointPath, st); err != nil {
		t.mu.Lock()
		t.dirty = true
		t.mu.Unlock()
		return fmt.Errorf("tailer: %w", err)
	}
	t.stats.saves.Add(1)
	if t.journal != nil {
		if err := t.journal.Reset(); err != nil {
			return fmt.Errorf("tailer: %w", err) // the entries are in the checkpoint: replaying them is harmless
		}
	}
	return nil
}

// prune raises each stream's floor to min(cursor time - Overlap, oldest
// unacknowledged time) and forgets acknowledged entries below it. Streams
// still to recover keep everything. The caller holds t.mu.
func (t *Tailer) prune() {
	overlap := t.opts.Overlap.Milliseconds()
	for _, s := range t.streams {
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
		t.dirty = true
		for id, e := range s.window {
			if e.acked && e.time < floor {
				delete(s.window, id)
			}
		}
	}
}
