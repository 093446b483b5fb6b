// Package nacostestserver is a test server, not Nacos: an in-process gRPC
// server that speaks the subset of the Nacos 2.x gRPC protocol that
// nacos-sdk-go v2's naming client uses, built on the SDK's exported gRPC
// stubs and JSON bodies. Tests of the Nacos adapter run against it when no
// real Nacos is at hand.
//
// It implements the server check, connection setup over the bi-stream,
// health checks, instance register, batch register and deregister
// (ephemeral instances, owned by the connection that wrote them), service
// query, the service list, subscribe and unsubscribe, and NotifySubscriber pushes to every
// subscribing connection when a service changes. A connection's instances
// and subscriptions go when the connection does, as in Nacos.
//
// Test controls: [Server.DropConnection] and [Server.DropConnections]
// simulate a partition or a restart as clients see it (the server forgets
// the connection's instances and closes its TCP connection, and the client
// has to reconnect and register again); [Server.ResetConnection] asks a
// client to move to a new connection, as Nacos does when it rebalances
// clients; [Server.PutRawInstance] writes an
// instance as-is, bypassing validation, for malformed-entry tests;
// [Server.Instances] and [Server.Connections] show the server's state.
//
// See README.md for what it does not do.
package nacostestserver
