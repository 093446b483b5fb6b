// Package nacos is the agent's Nacos front end: a Nacos server for the
// naming of this host's apps, so an app using the official Nacos client
// takes part in the mesh with only its server address changed.
//
// It serves the 2.x gRPC API (what nacos-sdk-go v2 and the Java client
// 2.x speak) on the listen address's port + 1000, as Nacos does, and the
// 1.x HTTP Open API for naming on the listen address itself. Both reach
// the agent only through frontend.Core:
//
//   - an instance an app registers is a Publication, owned by its gRPC
//     connection ("nacos/CONNECTION_ID") or, over HTTP, kept alive by its
//     heartbeats ("nacos/http") or persistent ("nacos/persistent");
//   - a query or subscription is a Watch of the service's View, answered
//     with the local egress while the mesh carries the service and with
//     the real instances otherwise, pushed to subscribers at each change.
//
// Names (see MeshName): Nacos's namespace, group and service are one mesh
// service name: "S" for public/DEFAULT_GROUP/S, "G::S" for another group,
// "NS::G::S" for another namespace. See README.md.
package nacos
