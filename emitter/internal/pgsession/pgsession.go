// Package pgsession sets up each session a database/sql pool opens on
// PostgreSQL: a Connector that runs SET statements on every new connection.
package pgsession

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/lib/pq"
)

// Connector is a driver.Connector whose connections run Sets, in order,
// once each when opened. A SET of a parameter the server does not have
// (SQLSTATE 42704: a setting of a later release) is skipped when Optional.
type Connector struct {
	driver.Connector
	Sets     []string
	Optional bool
}

func (c Connector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := cn.(driver.ExecerContext)
	if !ok {
		cn.Close()
		return nil, errors.New("pgsession: the driver's connection cannot execute statements")
	}
	for _, set := range c.Sets {
		var pe *pq.Error
		if _, err := ex.ExecContext(ctx, set, nil); err != nil && !(c.Optional && errors.As(err, &pe) && pe.Code == "42704") {
			cn.Close()
			return nil, fmt.Errorf("%s: %w", set, err)
		}
	}
	return cn, nil
}
