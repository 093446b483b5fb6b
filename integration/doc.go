// Package integration runs detour the way a user meets it: the built
// naming-agent and sidecar binaries and the example apps as real
// processes, several hosts on one machine, real registries, real traffic.
// Everything it starts it stops; every load is bounded in count and time
// and targets loopback only.
//
// The suite's hosts are 127.0.10.2, 127.0.10.3, …: fixed ports on
// addresses no other test and not the demo (127.0.0.2, 127.0.0.3) use, so
// packages tested in parallel never collide.
package integration
