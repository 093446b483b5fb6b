package zookeeper

import (
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestConformance runs the registry conformance suite against the
// ZooKeeper test server (DETOUR_ZK_ADDR).
func TestConformance(t *testing.T) {
	registrytest.Run(t, newEnv(t).harness())
}

// BenchmarkPropagation measures how long a registration takes to reach
// another client's watcher through ZooKeeper:
//
//	go test -run '^$' -bench Propagation -benchtime 200x ./registry-adapters/zookeeper/
func BenchmarkPropagation(b *testing.B) {
	registrytest.BenchmarkPropagation(b, newEnv(b).harness())
}
