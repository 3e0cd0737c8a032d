//go:build !unix

package testenv

import "testing"

// lockBroker does nothing where flock is not: tests that restart the
// broker may then fail others run at once.
func lockBroker(testing.TB, bool) (release func()) { return func() {} }
