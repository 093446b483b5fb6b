// Package testbed runs detour's binaries as real processes on simulated
// hosts: one loopback address per host (127.A.B.2, 127.A.B.3, …; Linux
// routes all of 127/8 to lo), each with its naming agent and sidecar.
// The integration suite, the bench rig and `make demo` stand on it. A run
// takes its own block of addresses (ReserveNet, ClaimNet), so two runs on
// one machine never collide.
package testbed
