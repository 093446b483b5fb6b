// Package shim is the small Go library applications link to talk to
// detour's naming agent on their host, so that they need to know nothing
// about the mesh.
//
// A Client (New) offers:
//
//   - Publish / Unpublish: a publication is held for as long as the
//     Client lives and published again by itself whenever the agent
//     comes back (an agent restart forgets its publications).
//   - Resolve and Watch: the agent's full answer for a service: where to
//     dial, the real endpoints as fallback, and the governance.
//   - a gRPC resolver for "detour:///SERVICE" targets (ResolverBuilder,
//     DialOptions; Register only for those who want the global one),
//     which pushes the agent's endpoints as addresses and the governance
//     as service config, with the dialer and interceptor of instant
//     fallback;
//   - an http.RoundTripper (Client.Transport) for "http://SERVICE/path";
//   - Dial, a plain TCP connection to a service, for any protocol.
//
// # Instant fallback
//
// While the mesh carries a service, the agent answers the local sidecar's
// egress address and keeps the real endpoints in Answer.Fallback. When a
// dial to that egress address is refused (the sidecar has just died), the
// Client's dialer dials a fallback endpoint instead, in the same call, and
// switches the service to its fallback endpoints at once, without waiting
// for the agent's push; it returns to the sidecar when the agent's next
// answer says the mesh carries the service. Connections are made by the
// Client's dialer (GRPCDialer, included in DialOptions; the Transport's
// own dialer; Dial), which is what makes the switch invisible to new calls.
//
// The calls that can fail are the ones already written to a sidecar
// connection when the sidecar died: those in flight at the kill, and
// those sent in the instant between the kill and the app's transport
// reading the connection's end. The dead sidecar may already have
// forwarded them to the server, so they are sent again only where the app
// allows it: a unary gRPC call whose method the app's own service config
// retries on UNAVAILABLE (UnaryInterceptor), an HTTP request net/http
// would replay itself (idempotent, with a body it can read again). The
// others fail (gRPC UNAVAILABLE, an HTTP read error), and the governance,
// the app's own again after the switch, says whether to retry them.
//
// # Concurrency
//
// All methods of Client and Transport are safe for concurrent use. Close
// releases everything the Client started; gRPC connections built on its
// resolver are the caller's to close (before or after).
package shim
