package pgsession_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/lib/pq"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/internal/pgsession"
	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// TestEachSessionRunsTheSetsAndSkipsAnUnknownOptionalOne: every connection
// of the pool has the settings; a parameter the server does not have is
// skipped when Optional and refuses the connection, naming the SET, else.
func TestEachSessionRunsTheSetsAndSkipsAnUnknownOptionalOne(t *testing.T) {
	url := testenv.NewDatabase(t)
	open := func(optional bool) *sql.DB {
		c, err := pq.NewConnector(url)
		if err != nil {
			t.Fatal(err)
		}
		db := sql.OpenDB(pgsession.Connector{Connector: c, Optional: optional,
			Sets: []string{"SET work_mem = '7MB'", "SET no_such_setting = 1", "SET statement_timeout = 12345"}})
		t.Cleanup(func() { db.Close() })
		return db
	}
	ctx := context.Background()
	db := open(true)
	var conns []*sql.Conn
	for range 2 {
		c, err := db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		var mem, timeout string
		if err := c.QueryRowContext(ctx, "SELECT current_setting('work_mem'), current_setting('statement_timeout')").Scan(&mem, &timeout); err != nil {
			t.Fatal(err)
		}
		if mem != "7MB" || timeout != "12345ms" {
			t.Errorf("connection %d: work_mem %s, statement_timeout %s; want 7MB and 12345ms (the sets after the unknown one run too)", i, mem, timeout)
		}
		c.Close()
	}
	if err := open(false).PingContext(ctx); err == nil || !strings.Contains(err.Error(), "SET no_such_setting = 1") {
		t.Errorf("a required unknown setting: %v, want an error naming it", err)
	}
}
