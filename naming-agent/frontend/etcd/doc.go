// Package etcd is the agent's etcd v3 front end: etcd's own gRPC API
// (KV, Watch, Lease, Cluster, Maintenance, Auth) served to this host's
// apps, so an app that uses etcd as its registry (grpc-go with etcd's
// naming/endpoints and naming/resolver, go-zero, Kratos, Kitex, etcdctl,
// jetcd) takes part in the mesh by pointing its etcd endpoint here.
//
// # Design: a translating proxy in front of the real etcd
//
// The front end is a proxy of the upstream etcd: the registry's own etcd
// (etcd://), or the embedded one. Every request that is not about a
// service key goes upstream as it is, and its answer (values, revisions,
// leases, errors) comes back as it is: pass-through keys behave exactly
// as in the real etcd because the real etcd serves them. Revisions,
// compaction, future-revision errors, txn semantics and limits are its.
// Leases are the upstream's too, so an app's lease expires or is revoked
// as in etcd.
//
// Service keys are recognized by layout (Config.Layouts; endpoints,
// go-zero, Kratos, Kitex ship):
//
//   - A write of a service key (a Put, or a Put in a Txn as etcd's
//     endpoints.Manager does) is not written under the app's key: its
//     marker, STATE_PREFIX/HOST/keys/APPKEY, is written instead, with the
//     app's value on the app's lease, in the same request (so the answer,
//     the lease check and the revision are the real etcd's). The front
//     end follows its markers: a marker's put is a Publication (owner
//     "etcd/APPKEY"), its delete (the app's delete, or the lease's end)
//     ends it. An agent restart takes the publications over from the
//     markers still there and ends those whose key went meanwhile. The
//     registry then holds the app's record in the registry adapter's
//     layout (etcd: PREFIX/SERVICE/HOST:INGRESS, the key is rewritten),
//     with only the address rewritten; for go-zero's bare host:port the
//     layout is kept in the agent (metadata etcd.layout).
//   - A read of a service's keys (a prefix Range or Watch of
//     "SERVICE/", "/microservices/SERVICE", "kitex/registry-etcd/SERVICE/")
//     is answered from the agent's view of the service, rendered in the
//     layout (one key at the local egress while the mesh carries it, the
//     instances otherwise), merged with what the upstream holds there.
//     Every change of a rendering is written upstream
//     (STATE_PREFIX/HOST/views/ID, the rendering as JSON) and the changed
//     keys carry that put's revision. So rendered keys order with
//     pass-through keys, a Range at revision R shows the rendering in
//     force at R, and a Watch from R+1 (what etcd's resolver does) gets
//     exactly the changes after it, deletes included. The upstream's
//     history of that key is the renderings' history: it holds across
//     agent restarts (an app's etcd client resumes its watch on the next
//     run from the revision it had) and until the upstream compacts, and
//     a compacted revision is the upstream's error.
//   - An app's exact-key read or watch of its own registration key
//     reads its marker, so an app never sees its key deleted while it
//     holds it (go-zero puts its key again on any delete it sees).
//
// Unprefixed layouts (endpoints and go-zero both use "SERVICE/ID") are
// told apart on write by value (endpoints: JSON whose Addr is the key's
// last segment; go-zero: a numeric id and a bare host:port) and on read
// by the instances: a service an instance registered as go-zero's is
// shown in go-zero's layout, any other in endpoints'. A prefix read of
// "X/" subscribes the agent to service X for as long as it is read or
// watched (2 minutes after the last read); a service the registry does
// not know renders no keys, so a plain prefix read costs one
// subscription and answers as etcd does.
//
// # What is reused of etcd
//
// The API types and service stubs (go.etcd.io/etcd/api/v3 etcdserverpb,
// mvccpb) and etcd's errors (v3rpc/rpctypes), and clientv3 for the
// upstream connection (balancing, auth, retries of safe calls). None of
// etcd's server code runs in the front end: the upstream is the server,
// which is what makes pass-through exact. etcd's own grpcproxy was
// considered: its watch proxy coalesces watchers across clients but
// cannot carry events that are not the upstream's, so the front end
// relays one upstream Watch stream per app stream instead (watch ids are
// the upstream's).
//
// # Other registries
//
// With ZooKeeper or Nacos behind the agent there is no etcd to pass
// through to: the front end does not start, and the agent says so at
// start (frontends.etcd needs registry etcd:// or embedded).
//
// # Limits and auth
//
// Requests are capped as etcd's --max-request-bytes (1.5 MiB) plus
// gRPC's overhead; watches per stream and Watch streams are capped
// (max_watches_per_stream, max_streams) with etcd's "too many requests";
// creates not answered yet count, so a stream's upstream work is bounded.
// A stream's reader never waits for the upstream on behalf of one watch
// (a service's first read or an old start revision is read in that
// watch's own goroutine), and a rendering's events never wait for an
// app: a stream whose app leaves its answers unread is ended with
// Unavailable, and the app's client resumes its watches from their
// revisions (the renderings' history has what it missed).
// Auth: Authenticate is forwarded, so the upstream checks an app's user
// and password. Without registry credentials an app's token is
// forwarded with each call (the upstream checks its permissions); with
// them (registry.username, the agent's own, and registry.tls) the
// front end's connection logs in as the agent and every call runs as
// the agent's user (WithAgentAuth). MemberList names the front end
// as the only member (clients re-read their endpoints from it); Status is
// the upstream's with the front end as member and leader.
package etcd
