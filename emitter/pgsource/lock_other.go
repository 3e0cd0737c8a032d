//go:build !linux

package pgsource

import (
	"syscall"
	"time"
)

// tcpUserTimeout is Linux only; elsewhere the keepalives alone bound a
// cut connection.
func tcpUserTimeout(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
