package nacos

import (
	"slices"
	"sync"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestNamingClient runs the SDK's naming client against the front end:
// a registration is a publication (weight scaled, cluster and metadata
// kept), a subscription sees the egress while the mesh carries the
// service and the real instances on fallback, pushed at each change; a
// deregistration and the client's end withdraw the publication.
func TestNamingClient(t *testing.T) {
	core := frontendtest.NewFakeCore()
	s := startServer(t, core)
	provider, consumer := namingClient(t, s.addr), namingClient(t, s.addr)

	ok, err := provider.RegisterInstance(vo.RegisterInstanceParam{
		ServiceName: "greeter", Ip: "127.0.0.1", Port: 8080, Weight: 1.5, Enable: true, Healthy: true, Ephemeral: true,
		ClusterName: "east", Metadata: map[string]string{"protocol": "http", "k": "v"},
	})
	if !ok || err != nil {
		t.Fatalf("RegisterInstance = %v, %v", ok, err)
	}
	p, found := core.Pub("greeter")
	if !found || p.Host != "127.0.0.1" || p.Port != 8080 || p.Weight != 150 || p.Protocol != "http" ||
		p.Metadata["k"] != "v" || p.Metadata[ClusterKey] != "east" || !slices.Contains([]string{p.Owner[:len(OwnerPrefix)]}, OwnerPrefix) {
		t.Fatalf("publication = %+v, %v", p, found)
	}

	var mu sync.Mutex
	var seen [][]string
	cb := func(insts []model.Instance, err error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, addrs(insts))
	}
	last := func(want ...string) func() bool {
		return func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) > 0 && slices.Equal(seen[len(seen)-1], want)
		}
	}
	real := []frontend.Instance{
		{Addr: "10.0.0.1:8080", Weight: 100, Metadata: map[string]string{ClusterKey: "east"}},
		{Addr: "10.0.0.2:8080", Weight: 100},
	}
	core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: true, Egress: "127.0.0.2:15001", Instances: real})
	if err := consumer.Subscribe(&vo.SubscribeParam{ServiceName: "greeter", SubscribeCallback: cb}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	// One egress instance per cluster.
	eventually(t, "the egress, once per cluster", last("127.0.0.2:15001", "127.0.0.2:15001"))
	insts, err := consumer.SelectInstances(vo.SelectInstancesParam{ServiceName: "greeter", Clusters: []string{"east"}, HealthyOnly: true})
	if err != nil || !slices.Equal(addrs(insts), []string{"127.0.0.2:15001"}) || insts[0].ClusterName != "east" {
		t.Fatalf("SelectInstances(east) = %+v, %v", insts, err)
	}

	core.SetView(frontend.View{Service: "greeter", Known: true, Instances: real})
	eventually(t, "the real instances on fallback", last("10.0.0.1:8080", "10.0.0.2:8080"))
	core.SetView(frontend.View{Service: "greeter", Known: true, Mesh: true, Egress: "127.0.0.2:15001", Instances: real[1:]})
	eventually(t, "the egress again", last("127.0.0.2:15001"))

	names, err := consumer.GetAllServicesInfo(vo.GetAllServiceInfoParam{PageNo: 1, PageSize: 10})
	if err != nil || !slices.Equal(names.Doms, []string{"greeter"}) {
		t.Fatalf("GetAllServicesInfo = %+v, %v", names, err)
	}

	ok, err = provider.DeregisterInstance(vo.DeregisterInstanceParam{ServiceName: "greeter", Ip: "127.0.0.1", Port: 8080, Cluster: "east", Ephemeral: true})
	if !ok || err != nil {
		t.Fatalf("DeregisterInstance = %v, %v", ok, err)
	}
	if _, found := core.Pub("greeter"); found {
		t.Fatal("still published after DeregisterInstance")
	}
	if ok, err := provider.RegisterInstance(vo.RegisterInstanceParam{ServiceName: "greeter", Ip: "127.0.0.1", Port: 8080, Enable: true, Ephemeral: true}); !ok || err != nil {
		t.Fatalf("RegisterInstance = %v, %v", ok, err)
	}
	if p, _ := core.Pub("greeter"); p.Weight != 0 {
		t.Fatalf("weight of an instance registered without one = %d, want 0 (the default, Nacos's 1.0)", p.Weight)
	}
	provider.CloseClient()
	eventually(t, "the publication to end with the connection", func() bool { _, found := core.Pub("greeter"); return !found })

	// A persistent instance: nacos-sdk-go sends it over the 1.x HTTP API.
	ok, err = consumer.RegisterInstance(vo.RegisterInstanceParam{
		ServiceName: "orders", GroupName: "g1", Ip: "127.0.0.1", Port: 9090, Weight: 3, Enable: true, Healthy: true, Ephemeral: false,
		Metadata: map[string]string{"k": "v"},
	})
	if !ok || err != nil {
		t.Fatalf("RegisterInstance(persistent) = %v, %v", ok, err)
	}
	if p, found := core.Pub("g1::orders"); !found || p.Owner != ownerPersistent || p.Weight != 300 || p.Metadata["k"] != "v" {
		t.Fatalf("persistent publication = %+v, %v", p, found)
	}
	ok, err = consumer.DeregisterInstance(vo.DeregisterInstanceParam{ServiceName: "orders", GroupName: "g1", Ip: "127.0.0.1", Port: 9090, Ephemeral: false})
	if _, found := core.Pub("g1::orders"); !ok || err != nil || found {
		t.Fatalf("DeregisterInstance(persistent) = %v, %v; still published: %v", ok, err, found)
	}
}

// TestMeshName: Nacos's names as mesh service names.
func TestMeshName(t *testing.T) {
	for _, tc := range []struct{ ns, group, name, want string }{
		{"", "", "greeter", "greeter"},
		{"public", "DEFAULT_GROUP", "greeter", "greeter"},
		{"", "g1", "greeter", "g1::greeter"},
		{"dev", "", "greeter", "dev::DEFAULT_GROUP::greeter"},
		{"", "", "providers:com.foo.Greeter::", "providers:com.foo.Greeter::"},
	} {
		if got, err := MeshName(tc.ns, tc.group, tc.name); err != nil || got != tc.want {
			t.Errorf("MeshName(%q, %q, %q) = %q, %v; want %q", tc.ns, tc.group, tc.name, got, err, tc.want)
		}
	}
	for _, name := range []string{"", "a@@b", "a/b", "-x"} {
		if got, err := MeshName("", "", name); err == nil {
			t.Errorf("MeshName(%q) = %q, want an error", name, got)
		}
	}
}
