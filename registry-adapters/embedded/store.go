package embedded

import "github.com/detourmesh/detour/registry-adapters/registry"

// The etcd adapter's Store comes with it: the front ends' shared keys
// live in the embedded etcd beside the registrations.
var _ registry.Store = (*Registry)(nil)
