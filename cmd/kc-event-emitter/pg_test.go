package main

import (
	"testing"

	"github.com/kc-event-emitter/kc-event-emitter/emitter/testenv"
)

// newTestDatabase creates a database on the cluster at KCEE_TEST_PG_URL and
// drops it when the test ends (see testenv.NewDatabase).
func newTestDatabase(tb testing.TB) string { return testenv.NewDatabase(tb) }
