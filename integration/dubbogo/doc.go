// Package dubbogo holds the end-to-end test of the real dubbo-go v3.3.1
// apps in cmd/ (dubbo-provider, dubbo-consumer) against a ZooKeeper, and
// the tools it records them with: a proxy that decodes the ZooKeeper
// protocol the apps speak (zkspy_test.go) and a dump of what they leave in
// the tree (zkdump_test.go). It is a module of its own so dubbo-go's
// dependencies never enter detour's go.mod; see README.md.
package dubbogo
