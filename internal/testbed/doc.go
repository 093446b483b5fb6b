// Package testbed runs detour's binaries as real processes on simulated
// hosts: one loopback address per host (127.0.0.2, 127.0.0.3, …; Linux
// routes all of 127/8 to lo), each with its naming agent and sidecar.
// The integration suite and `make demo` both stand on it.
package testbed
