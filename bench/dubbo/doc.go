// Package dubbobench measures Dubbo's own protocol through detour with
// the sidecar as its own process on simulated hosts (loopback addresses,
// internal/testbed): BenchmarkDubbo puts calls straight to a provider
// beside the same calls through one sidecar and through two (make
// bench; its quick form runs in make test). Only its benchmark holds
// code.
package dubbobench
