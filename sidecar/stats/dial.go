package stats

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
)

// DialKind classifies a failed connect as a failure kind: ConnectRefused,
// ConnectTimeout, or Other. L4 and L7 count connect failures alike.
func DialKind(err error) int {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return ConnectTimeout
	}
	return Other
}
