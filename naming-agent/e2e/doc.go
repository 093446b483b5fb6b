// Package e2e tests the naming agent end to end against real registries
// (an etcd server embedded in the test, ZooKeeper from the project's
// script), with several agents on one machine as several hosts
// (127.0.0.2, 127.0.0.3, ...) and stand-ins for their sidecars. It also
// holds the fallback-time benchmark, which kills a sidecar process with
// SIGKILL.
//
// It is a package of its own so that the agent core never imports a
// registry adapter: only main and these tests do.
package e2e
