// Package nacos is the registry.Registry adapter for Nacos 2.x, speaking
// Nacos's gRPC protocol through nacos-sdk-go v2.
//
// Endpoints are ephemeral instances of the configured namespace, group and
// cluster: Addr is ip:port, Weight is the instance weight x 100 (the
// registry's default 100 is Nacos's default 1.0), Metadata is the instance metadata exactly. Only instances
// that are healthy, enabled and of weight above 0 are listed and watched;
// an instance that cannot be mapped (a bad IP or port, a weight out of
// range, metadata registry refuses, the reserved "weight" key included) is
// skipped and reported once through the MalformedFunc and the log. A
// client registering several addresses of one service uses Nacos's batch
// registration, since in Nacos 2.x a connection's second registerInstance
// of a service replaces its first.
//
// Registrations belong to the client's gRPC connection; Nacos drops them
// when the connection ends. The adapter writes them again, and subscribes
// again, on every new connection the SDK makes (see reconcile.go).
//
// # What is used of nacos-sdk-go
//
// The SDK's gRPC client (common/remote/rpc: server check, bi-stream,
// health checks, reconnects, request retries), its request and response
// types, and its server list and login (common/nacos_server). Not its
// naming client (clients/naming_client), which:
//   - starts a UDP push receiver on a random port of every interface, which
//     takes service data from anyone who can reach it, and never stops it;
//   - writes a disk cache and, through its file logger, log files;
//   - keeps one callback list per service, and its Unsubscribe ends the
//     subscription of every other watcher of the service too;
//   - re-registers after a reconnect through a connection listener, and
//     any listener makes the gRPC client race with itself on every
//     reconnect (a data race the race detector reports);
//   - and has the redo gaps described in reconcile.go.
//
// Tests of the naming client itself against the test server are in
// nacostestserver.
//
// # Process-wide state in the SDK
//
// The SDK logs through one logger for the whole process. New points it at
// a zap logger named "registry.nacos.sdk" under the Registry's logger, at
// Config.SDKLogLevel (default warn): with several Registries, the SDK's
// messages go to the one made last, while it is open; after it is closed
// they are dropped. Nothing is written to files. The SDK also keeps every
// gRPC client it made in a map of its own for the life of the process, so
// a closed Registry's memory is not given back; make one Registry per
// process, as the naming agent does.
package nacos
