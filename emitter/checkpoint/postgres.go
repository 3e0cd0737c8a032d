package checkpoint

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/pgsession"
)

// ErrFenced is the error of a write by a leader whose epoch is no longer
// the newest: another emitter of the cluster took over (or the state was
// imported) since, and the write was refused.
var ErrFenced = errors.New("a newer leader holds the state")

// idleInTransaction is the store sessions' idle_in_transaction_session_timeout:
// the server ends a session that sent nothing for that long in the middle of
// a transaction. A leader frozen within a save (SIGSTOP, a cut network) so
// releases the state row, which the next leader's Lead waits for, a few
// seconds after the lock it held went to that leader.
const idleInTransaction = 5 * time.Second

// Postgres keeps the state of every emitter of a cluster in PostgreSQL, in
// three tables of its own schema (created when absent):
//
//	<schema>.state          one row per cluster name: the epoch of the
//	                        current leader, who it is and when it took over,
//	                        when the snapshot was saved
//	<schema>.snapshot_part  the snapshot in parts of at most partSize bytes,
//	                        numbered from 0, written as the Ledger encodes it
//	<schema>.journal        the journal lines appended since the snapshot, a
//	                        row per Append
//
// state.snapshot held the whole snapshot in releases before snapshot_part;
// it is still read when it holds one (a store saved by such a release
// loads), and holds partsMarker once the snapshot is in parts.
//
// Only the leader writes, through the Term that Lead returns: every write
// carries the Term's epoch and is refused with ErrFenced once a newer
// epoch was raised, so a deposed leader can never overwrite the position
// of the one that followed it. Each write is a single statement or a
// single transaction, so that a crash at any point leaves the old state or
// the new one.
type Postgres struct {
	db      *sql.DB
	schema  string // quoted
	name    string // the schema's name, unquoted, for messages
	cluster string
}

// schemaName is what --stateSchema accepts: a plain lower-case SQL
// identifier, so that it never needs quoting rules in messages and grants.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckSchemaName returns an error when name is not a plain lower-case SQL
// identifier.
func CheckSchemaName(name string) error {
	if !schemaName.MatchString(name) {
		return fmt.Errorf("want a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)")
	}
	return nil
}

// OpenPostgres connects to the database at url (a lib/pq URL or key=value
// string, never part of an error message: it may hold a password), and
// creates schema and its tables when they are absent. cluster names the
// state (one row per name).
func OpenPostgres(ctx context.Context, url, schema, cluster string) (*Postgres, error) {
	if err := CheckSchemaName(schema); err != nil {
		return nil, fmt.Errorf("schema %q: %w", schema, err)
	}
	if cluster == "" {
		return nil, errors.New("checkpoint: the cluster name is empty")
	}
	connector, err := pq.NewConnector(url)
	if err != nil {
		return nil, fmt.Errorf("parse PostgreSQL connection string: %w", err)
	}
	db := sql.OpenDB(pgsession.Connector{Connector: connector,
		Sets: []string{fmt.Sprintf("SET idle_in_transaction_session_timeout = %d", idleInTransaction.Milliseconds())}})
	db.SetMaxOpenConns(2)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(5 * time.Minute)
	p := &Postgres{db: db, schema: pq.QuoteIdentifier(schema), name: schema, cluster: cluster}
	if err := p.create(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return p, nil
}

// WithCluster returns the store of the state named cluster in the same
// schema, on p's connection pool (closing it closes p's pool).
func (p *Postgres) WithCluster(cluster string) *Postgres {
	q := *p
	q.cluster = cluster
	return &q
}

// String names the store in messages.
func (p *Postgres) String() string {
	return fmt.Sprintf("PostgreSQL %s.state cluster %q", p.name, p.cluster)
}

// create makes the schema (only when it is absent: creating it needs the
// CREATE privilege on the database, using it only USAGE and CREATE on the
// schema) and the tables. A transaction-level advisory lock serializes the
// emitters that start at once: concurrent CREATE TABLE IF NOT EXISTS of the
// same table may otherwise fail.
func (p *Postgres) create(ctx context.Context) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "kc-event-emitter:schema:"+p.name); err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	var exists bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.name).Scan(&exists); err != nil {
		return fmt.Errorf("state database: %w", err)
	}
	if !exists {
		if _, err := tx.ExecContext(ctx, `CREATE SCHEMA `+p.schema); err != nil {
			return fmt.Errorf("create schema %s (or have it created: CREATE SCHEMA %s; GRANT USAGE, CREATE ON SCHEMA %s TO <the emitter's role>): %w",
				p.name, p.name, p.name, err)
		}
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS ` + p.schema + `.state (
			cluster  text PRIMARY KEY,
			epoch    bigint NOT NULL DEFAULT 0,
			snapshot bytea,
			leader   text,
			led_at   timestamptz,
			saved_at timestamptz)`,
		`CREATE TABLE IF NOT EXISTS ` + p.schema + `.journal (
			cluster text NOT NULL REFERENCES ` + p.schema + `.state ON DELETE CASCADE,
			seq     bigint GENERATED ALWAYS AS IDENTITY,
			lines   bytea NOT NULL,
			PRIMARY KEY (cluster, seq))`,
		`CREATE TABLE IF NOT EXISTS ` + p.schema + `.snapshot_part (
			cluster text NOT NULL REFERENCES ` + p.schema + `.state ON DELETE CASCADE,
			seq     integer NOT NULL,
			part    bytea NOT NULL,
			PRIMARY KEY (cluster, seq))`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create the tables of schema %s: %w", p.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create the tables of schema %s: %w", p.name, err)
	}
	return nil
}

// Close closes the connection pool.
func (p *Postgres) Close() error { return p.db.Close() }

// Lead raises the cluster's epoch and returns the Term of that epoch: the
// Store through which the new leader reads and writes the state. Call it
// only while holding the cluster's lock; leader names the caller (its host
// name) in the state row, for operators.
func (p *Postgres) Lead(ctx context.Context, leader string) (*Term, error) {
	var epoch int64
	err := p.db.QueryRowContext(ctx, `INSERT INTO `+p.schema+`.state AS s (cluster, epoch, leader, led_at)
		VALUES ($1, 1, $2, now())
		ON CONFLICT (cluster) DO UPDATE SET epoch = s.epoch + 1, leader = EXCLUDED.leader, led_at = now()
		RETURNING epoch`, p.cluster, leader).Scan(&epoch)
	if err != nil {
		return nil, fmt.Errorf("%v: raise the epoch: %w", p, err)
	}
	return &Term{p: p, epoch: epoch}, nil
}

// Epoch returns the cluster's current epoch, 0 when it has no state row.
func (p *Postgres) Epoch(ctx context.Context) (int64, error) {
	var epoch int64
	err := p.db.QueryRowContext(ctx, `SELECT epoch FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%v: %w", p, err)
	}
	return epoch, nil
}

// load returns the snapshot and the journal in one consistent read.
func (p *Postgres) load(ctx context.Context) ([]byte, []byte, error) {
	tx, err := p.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	var snap []byte
	err = tx.QueryRowContext(ctx, `SELECT snapshot FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&snap)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, nil, err
	}
	if bytes.Equal(snap, partsMarker) {
		if snap, err = p.loadParts(ctx, tx); err != nil {
			return nil, nil, err
		}
	}
	rows, err := tx.QueryContext(ctx, `SELECT lines FROM `+p.schema+`.journal WHERE cluster = $1 ORDER BY seq`, p.cluster)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var journal []byte
	for rows.Next() {
		var lines []byte
		if err := rows.Scan(&lines); err != nil {
			return nil, nil, err
		}
		journal = append(journal, lines...)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return snap, journal, tx.Commit()
}

// loadParts returns the snapshot saved in parts, joined into one buffer
// sized beforehand; a part missing from the sequence is an error.
func (p *Postgres) loadParts(ctx context.Context, tx *sql.Tx) ([]byte, error) {
	var size int64
	err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(length(part)), 0) FROM `+p.schema+`.snapshot_part WHERE cluster = $1`,
		p.cluster).Scan(&size)
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, part FROM `+p.schema+`.snapshot_part WHERE cluster = $1 ORDER BY seq`, p.cluster)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	snap := make([]byte, 0, size)
	next := 0
	for rows.Next() {
		var seq int
		var part sql.RawBytes
		if err := rows.Scan(&seq, &part); err != nil {
			return nil, err
		}
		if seq != next {
			return nil, fmt.Errorf("%s.snapshot_part of cluster %q: part %d missing (next is %d)", p.name, p.cluster, next, seq)
		}
		next++
		snap = append(snap, part...)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if next == 0 {
		return nil, fmt.Errorf("%s.snapshot_part of cluster %q: no part, though the state row says the snapshot is in parts", p.name, p.cluster)
	}
	return snap, nil
}

// Has tells whether the cluster has a saved state: a snapshot or journal
// lines.
func (p *Postgres) Has(ctx context.Context) (bool, error) {
	var has bool
	err := p.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+p.schema+`.state WHERE cluster = $1 AND snapshot IS NOT NULL)
		OR EXISTS (SELECT 1 FROM `+p.schema+`.journal WHERE cluster = $1)`, p.cluster).Scan(&has)
	if err != nil {
		return false, fmt.Errorf("%v: %w", p, err)
	}
	return has, nil
}

// Import replaces the cluster's state with snap and journal (a file
// checkpoint being moved in) and raises the epoch, so that a leader
// running meanwhile is fenced off and the next one loads what was
// imported. Without force a cluster that already has a state is left alone
// and the error says so.
func (p *Postgres) Import(ctx context.Context, snap, journal []byte, force bool) error {
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	defer tx.Rollback()
	var epoch int64
	err = tx.QueryRowContext(ctx, `INSERT INTO `+p.schema+`.state AS s (cluster, epoch, leader, led_at)
		VALUES ($1, 1, 'state import', now())
		ON CONFLICT (cluster) DO UPDATE SET epoch = s.epoch + 1, leader = EXCLUDED.leader, led_at = now()
		RETURNING epoch`, p.cluster).Scan(&epoch)
	if err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if !force {
		var has bool
		var savedAt sql.NullTime
		err := tx.QueryRowContext(ctx, `SELECT snapshot IS NOT NULL OR EXISTS (SELECT 1 FROM `+p.schema+`.journal WHERE cluster = $1), saved_at
			FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&has, &savedAt)
		if err != nil {
			return fmt.Errorf("%v: %w", p, err)
		}
		if has {
			at := "never saved, journal only"
			if savedAt.Valid {
				at = "saved " + savedAt.Time.UTC().Format(time.RFC3339)
			}
			return fmt.Errorf("%v already has a state (%s): --force replaces it", p, at)
		}
	}
	_, err = tx.ExecContext(ctx, `WITH j AS (DELETE FROM `+p.schema+`.journal WHERE cluster = $1),
			s AS (DELETE FROM `+p.schema+`.snapshot_part WHERE cluster = $1)
		UPDATE `+p.schema+`.state SET snapshot = $2, saved_at = now() WHERE cluster = $1`, p.cluster, partsMarker)
	if err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if err := p.copyParts(ctx, tx, writeAll(snap)); err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	if len(journal) > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+p.schema+`.journal (cluster, lines) VALUES ($1, $2)`, p.cluster, journal); err != nil {
			return fmt.Errorf("%v: %w", p, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%v: %w", p, err)
	}
	return nil
}

// partsMarker is what state.snapshot holds while the snapshot is in
// snapshot_part. A release before snapshot_part refuses it (its version is
// not one it knows) instead of reading an empty state and starting over;
// a snapshot saved in the column by such a release (it does not know the
// parts) replaces it, and is then what loads.
var partsMarker = []byte(`{"version":-1,"note":"the snapshot is in table snapshot_part, saved by a newer kc-event-emitter"}`)

// partSize is the largest part of a snapshot: a Write of more is split.
// The Ledger writes about snapshotChunk bytes at a time, one part each.
const partSize = 2 * snapshotChunk

// copyParts writes the parts of the snapshot that write writes, within
// tx, in which the old parts were deleted: each is inserted as it is
// written, at most partSize bytes, none kept by the store once sent. An
// empty snapshot is one empty part: still a saved state. One INSERT per
// part rather than a COPY: between statements the session is idle in the
// transaction, so idleInTransaction ends it when the process froze, while
// a COPY waiting for its data is not ended by any timeout of the server.
func (p *Postgres) copyParts(ctx context.Context, tx *sql.Tx, write func(io.Writer) error) error {
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+p.schema+`.snapshot_part (cluster, seq, part) VALUES ($1, $2, $3)`)
	if err != nil {
		return fmt.Errorf("copy the snapshot: %w", err)
	}
	defer stmt.Close()
	pw := &partWriter{ctx: ctx, stmt: stmt, cluster: p.cluster}
	bw := bufio.NewWriterSize(pw, snapshotChunk) // small writes are gathered, big ones pass through
	if err := write(bw); err != nil {
		return fmt.Errorf("write the snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the snapshot: %w", err)
	}
	if pw.seq == 0 {
		if err := pw.row(nil); err != nil {
			return fmt.Errorf("write the snapshot: %w", err)
		}
	}
	return nil
}

// partWriter turns each Write into rows of snapshot_part of at most
// partSize bytes, inserted by a prepared statement of the save's transaction.
type partWriter struct {
	ctx     context.Context
	stmt    *sql.Stmt
	cluster string
	seq     int
}

func (w *partWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		part := b[:min(len(b), partSize)]
		if err := w.row(part); err != nil {
			return n, err
		}
		n += len(part)
		b = b[len(part):]
	}
	return n, nil
}

func (w *partWriter) row(part []byte) error {
	if part == nil {
		part = []byte{}
	}
	if _, err := w.stmt.ExecContext(w.ctx, w.cluster, w.seq, part); err != nil {
		return fmt.Errorf("part %d: %w", w.seq, err)
	}
	w.seq++
	return nil
}

// writeAll is the write of a snapshot held whole.
func writeAll(snap []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(snap)
		return err
	}
}

// Term is the Store of one leader of a cluster: the epoch it raised at
// Lead, carried by every write. Once a newer epoch exists, Append, Save
// and SaveStream return an error wrapping ErrFenced. Closing a Term leaves
// the pool of its Postgres open (a standby keeps its connections).
type Term struct {
	p     *Postgres
	epoch int64
}

// The Ledger saves through SaveStream: its window is never copied whole.
var _ streamSaver = (*Term)(nil)

// Epoch returns the term's epoch.
func (t *Term) Epoch() int64 { return t.epoch }

// String names the store in messages.
func (t *Term) String() string { return fmt.Sprintf("%v epoch %d", t.p, t.epoch) }

// Load returns the snapshot and the journal appended since.
func (t *Term) Load(ctx context.Context) ([]byte, []byte, error) {
	snap, journal, err := t.p.load(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("load: %w", err)
	}
	return snap, journal, nil
}

// Append adds lines to the journal when the term's epoch is still the
// cluster's. The epoch row is locked FOR SHARE within the statement: an
// epoch raised concurrently either waits for the append (and then its
// Load sees the lines) or is seen by it (and the append is refused).
func (t *Term) Append(ctx context.Context, lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	p := t.p
	res, err := p.db.ExecContext(ctx, `WITH f AS (SELECT 1 FROM `+p.schema+`.state WHERE cluster = $1 AND epoch = $2 FOR SHARE)
		INSERT INTO `+p.schema+`.journal (cluster, lines) SELECT $1, $3 FROM f`, p.cluster, t.epoch, lines)
	if err != nil {
		return fmt.Errorf("append to the journal: %w", err)
	}
	return t.check(ctx, res)
}

// Save replaces the snapshot and empties the journal, when the term's
// epoch is still the cluster's: SaveStream of snap.
func (t *Term) Save(ctx context.Context, snap []byte) error {
	return t.SaveStream(ctx, writeAll(snap))
}

// SaveStream replaces the snapshot with what write writes, written to the
// database in parts as it comes, and empties the journal, in one
// transaction, when the term's epoch is still the cluster's. The state row
// is locked first: a newer epoch refuses the save before anything is
// written, and an Append or a Lead waits for the commit. When
// write fails, or the save is cut short, the transaction rolls back and the
// old snapshot and journal stay.
func (t *Term) SaveStream(ctx context.Context, write func(io.Writer) error) error {
	p := t.p
	tx, err := p.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save the snapshot: %w", err)
	}
	defer tx.Rollback()
	// The update locks the state row, as FOR UPDATE would, and only when
	// the epoch is the term's: a Lead that committed first fences this
	// save before anything is written.
	var updated int64
	err = tx.QueryRowContext(ctx, `WITH u AS (
			UPDATE `+p.schema+`.state SET snapshot = $3, saved_at = now() WHERE cluster = $1 AND epoch = $2 RETURNING 1),
		s AS (DELETE FROM `+p.schema+`.snapshot_part WHERE cluster = $1 AND EXISTS (SELECT 1 FROM u)),
		j AS (DELETE FROM `+p.schema+`.journal WHERE cluster = $1 AND EXISTS (SELECT 1 FROM u))
		SELECT count(*) FROM u`, p.cluster, t.epoch, partsMarker).Scan(&updated)
	if err != nil {
		return fmt.Errorf("save the snapshot: %w", err)
	}
	if updated == 0 {
		tx.Rollback()
		return t.fenced(ctx)
	}
	if err := p.copyParts(ctx, tx, write); err != nil {
		return fmt.Errorf("save the snapshot: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save the snapshot: %w", err)
	}
	return nil
}

// check returns nil when the write res touched a row, else the fencing
// error.
func (t *Term) check(ctx context.Context, res sql.Result) error {
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		return nil
	}
	return t.fenced(ctx)
}

// fenced is the error of a write refused for the term's epoch, naming the
// cluster's.
func (t *Term) fenced(ctx context.Context) error {
	now, err := t.p.Epoch(ctx)
	if err != nil {
		return fmt.Errorf("epoch %d refused: %w", t.epoch, ErrFenced)
	}
	return fmt.Errorf("epoch %d, the cluster's is %d: %w", t.epoch, now, ErrFenced)
}

// Close does nothing: the pool belongs to the Postgres.
func (t *Term) Close() error { return nil }

// Leader returns who took the cluster's lead last and its epoch ("", 0
// when none did).
func (p *Postgres) Leader(ctx context.Context) (string, int64, error) {
	var leader sql.NullString
	var epoch int64
	err := p.db.QueryRowContext(ctx, `SELECT leader, epoch FROM `+p.schema+`.state WHERE cluster = $1`, p.cluster).Scan(&leader, &epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("%v: %w", p, err)
	}
	return leader.String, epoch, nil
}
