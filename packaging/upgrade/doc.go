// Package upgrade holds the sidecar upgrade test of issue 23: HTTP/1.1
// keep-alive, gRPC and plain TCP clients through a real sidecar and agent
// at a steady rate while the sidecar's binary is swapped (sidecar
// --reload: the listening sockets handed to a new process) ten times,
// counting failed requests, refused connections, resets and the agent's
// fallbacks. See docs/OPERATIONS.md and /work/notes/packaging.md.
package upgrade
