package nacos

import (
	"slices"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestIdleWatches: a service only queried stops being watched, and
// leaves the service list, a while after its last query; a subscribed
// or registered one does not.
func TestIdleWatches(t *testing.T) {
	core := frontendtest.NewFakeCore()
	for _, svc := range []string{"asked", "subscribed", "registered"} {
		core.SetView(frontend.View{Service: svc, Known: true})
	}
	s := startServer(t, core)
	c := dial(t, s, true)
	for _, svc := range []string{"asked", "subscribed", "registered"} {
		if err := c.Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: svc}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Do(nacoswire.TypeSubscribeService, nacoswire.NamingRequest{ServiceName: "subscribed", Subscribe: true}, nil); err != nil {
		t.Fatal(err)
	}
	in := model.Instance{Ip: "127.0.0.1", Port: 80, Weight: 1, Enable: true, Ephemeral: true}
	if err := c.Do(nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: "registered", Type: "registerInstance", Instance: in}, nil); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * idleWatch)
	s.mu.Lock()
	s.now = func() time.Time { return later }
	s.mu.Unlock()
	s.sweepIdle()
	s.mu.Lock()
	var watched []string
	for k := range s.services {
		watched = append(watched, k.name)
	}
	s.mu.Unlock()
	slices.Sort(watched)
	if !slices.Equal(watched, []string{"registered", "subscribed"}) && !slices.Equal(watched, []string{"subscribed"}) {
		t.Fatalf("watched after the sweep: %v", watched)
	}
	var list nacoswire.ServiceListResponse
	if err := c.Do(nacoswire.TypeServiceList, nacoswire.NamingRequest{PageSize: 10}, &list); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(list.ServiceNames, []string{"registered", "subscribed"}) {
		t.Fatalf("service list after the sweep: %v", list.ServiceNames)
	}
}
