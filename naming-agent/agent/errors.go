package agent

import (
	"errors"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Errors the API layer maps to status codes with errors.Is.
var (
	// ErrInvalid: the request is malformed; nothing changed. It is the
	// registry's own ErrInvalid, so validation errors from there match.
	ErrInvalid = registry.ErrInvalid
	// ErrNotPublished: unpublish of something never published.
	ErrNotPublished = errors.New("not published")
	// ErrNotSubscribed: unsubscribe of a service this host does not
	// follow.
	ErrNotSubscribed = errors.New("not subscribed")
	// ErrUnknownService: a setting for a service this host neither
	// publishes nor follows nor has in its config.
	ErrUnknownService = errors.New("unknown service")
	// ErrConflict: the service is already published on this host on
	// another port.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the answer cannot be given now (the registry is
	// unreachable and nothing is known of the service yet).
	ErrUnavailable = errors.New("unavailable")
	// ErrClosed: the agent is shutting down.
	ErrClosed = errors.New("agent closed")
	// ErrSidecarRefused: a sidecar that may not have this agent's stream
	// (another one holds it and is ready, or its host_ip is not ours).
	ErrSidecarRefused = errors.New("sidecar refused")
	// ErrForbidden: the publish policy or the caller's token does not
	// allow this (policy.go); nothing changed.
	ErrForbidden = errors.New("forbidden")
	// ErrReplaced: a newer sidecar stream took over this one.
	ErrReplaced = errors.New("sidecar stream replaced by a newer one")
)
