// Package zookeeper is the naming agent's ZooKeeper front end: a
// ZooKeeper server (the client wire protocol of ZooKeeper 3.5 to 3.9 and
// an in-memory znode tree) that local apps, Java Dubbo with Curator and
// dubbo-go with go-zookeeper, use as their registry by pointing their
// registry address at the agent.
//
// On its own it is a plain standalone ZooKeeper: sessions with timeout
// negotiation, reconnection and expiry, ephemeral, sequential and
// container nodes, one-shot and persistent watches, multi, setWatches
// after a reconnect. Persistent nodes live in memory until the agent
// restarts; sessions and their ephemeral nodes survive a restart through
// a SessionStore. ACLs are kept but not enforced.
//
// The agent's rewrite layer sits on two hooks: an Overlay that answers
// some paths in place of the tree (a consumer's providers list), and an
// Observer told of every committed change (a provider's ephemeral node
// is a publication). See README.md for what is supported and its limits.
package zookeeper
