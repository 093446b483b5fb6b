package nacos

import (
	"strings"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// TestRestart: closing the server (the agent stopping) keeps its
// connections' publications; in the next run an app that registers again
// takes its publication over, and those nobody took over end after
// RestoreGrace. A persistent HTTP instance stays.
func TestRestart(t *testing.T) {
	core := frontendtest.NewFakeCore()
	first := startServer(t, core)
	register := func(s testServer, service string) {
		t.Helper()
		c := dial(t, s, true)
		in := model.Instance{Ip: "127.0.0.1", Port: 8080, Weight: 1, Enable: true, Ephemeral: true}
		if err := c.Do(nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: service, Type: "registerInstance", Instance: in}, nil); err != nil {
			t.Fatal(err)
		}
	}
	register(first, "comes-back")
	register(first, "gone")
	if code, body := call(t, "POST", "http://"+first.addr+"/nacos/v1/ns/instance?serviceName=kept&ip=127.0.0.1&port=9&ephemeral=false", nil); code != 200 {
		t.Fatalf("persistent register: %d %q", code, body)
	}
	first.Close()
	if n := core.Pubs(); n != 3 {
		t.Fatalf("%d publications after the server closed, want the 3 kept", n)
	}

	second := startServer(t, core, func(c *Config) { c.RestoreGrace = 500 * time.Millisecond })
	register(second, "comes-back")
	p, _ := core.Pub("comes-back")
	eventually(t, "the publication nobody took over to end", func() bool { _, ok := core.Pub("gone"); return !ok })
	if q, ok := core.Pub("comes-back"); !ok || q.Owner != p.Owner || !strings.HasPrefix(q.Owner, OwnerPrefix) {
		t.Fatalf("the publication taken over: %+v, %v", q, ok)
	}
	if q, ok := core.Pub("kept"); !ok || q.Owner != ownerPersistent {
		t.Fatalf("the persistent instance: %+v, %v", q, ok)
	}
}
