package l7

import (
	"context"
	"errors"
	"os"
	"syscall"

	"github.com/detourmesh/detour/sidecar/stats"
)

// dialKind classifies a failed connect.
func dialKind(err error) int {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return stats.ConnectRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return stats.ConnectTimeout
	}
	return stats.Other
}
