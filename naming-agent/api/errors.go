package api

import (
	"context"
	"errors"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/naming-agent/agent"
)

// httpStatus maps an error to its HTTP status.
func httpStatus(err error) int {
	var unauth errUnauthenticated
	switch {
	case errors.As(err, &unauth):
		return http.StatusUnauthorized
	case errors.Is(err, agent.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, agent.ErrNotPublished), errors.Is(err, agent.ErrNotSubscribed), errors.Is(err, agent.ErrUnknownService):
		return http.StatusNotFound
	case errors.Is(err, agent.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, agent.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, agent.ErrUnavailable), errors.Is(err, agent.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// grpcError maps an error to a gRPC status error.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	var unauth errUnauthenticated
	switch {
	case errors.As(err, &unauth):
		code = codes.Unauthenticated
	case errors.Is(err, agent.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, agent.ErrNotPublished), errors.Is(err, agent.ErrNotSubscribed), errors.Is(err, agent.ErrUnknownService):
		code = codes.NotFound
	case errors.Is(err, agent.ErrConflict):
		code = codes.AlreadyExists
	case errors.Is(err, agent.ErrForbidden):
		code = codes.PermissionDenied
	case errors.Is(err, agent.ErrUnavailable), errors.Is(err, agent.ErrClosed):
		code = codes.Unavailable
	case errors.Is(err, agent.ErrReplaced):
		code = codes.Aborted
	case errors.Is(err, agent.ErrSidecarRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
