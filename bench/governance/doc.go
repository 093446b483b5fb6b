// Package governance benchmarks the sidecar's traffic governance (issue
// 19) against the plain sidecar in the same run: throughput and p99 of
// HTTP/1.1 requests through two sidecars (egress → ingress) with no
// rules, a 2-way split, an inbound limit far above the load, and full
// access logs on both sidecars; and the rate an inbound limit admits
// under twice its load. In-process (three dataplanes, the app, the
// client), so the ratios matter, not the absolute rates.
package governance
