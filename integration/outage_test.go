package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// TestRegistryOutage: B publishes, C subscribes, both reach the registry
// through a network the test cuts.
//   - C's agent restarted while the registry is unreachable still answers,
//     from its cache;
//   - kept cut past the session TTL, the registry drops B's session (etcd
//     lease expiry, ZooKeeper session expiry); when the network returns,
//     B's publication is back by itself;
//   - etcd only: the registry itself restarted (the embedded etcd in A's
//     agent), B's publication is back again.
func TestRegistryOutage(t *testing.T) { every(t, false, registryOutage) }

func registryOutage(t *testing.T, be *backend) {
	be.host(t, ipA, "") // for etcd, the host that runs the registry
	b := be.host(t, ipB, "")
	c := be.host(t, ipC, "")
	reg := be.reader(t)
	port := echoServer(t, ipB)
	appAddr := fmt.Sprintf("%s:%d", ipB, port)
	b.publish("echo", port, "tcp")
	realAnswer := func(x testbed.Answer) bool { return slices.Equal(x.Addrs(), []string{appAddr}) }
	c.waitAnswer("echo", "the published instance", realAnswer)
	published := func() bool {
		eps := registered(t, reg, "echo")
		return len(eps) == 1 && eps[0].Addr == appAddr
	}
	eventually(t, 20*time.Second, "B's instance in the registry", published)

	// C restarted with the registry out of reach: answered from its cache.
	// The agent writes its cache just after it learns something; a kill
	// before that write would test the kill's timing, not the cache.
	eventually(t, 20*time.Second, "C's endpoint cache holds the instance", func() bool {
		return cachedAddrs(c.Dir, "echo") == appAddr
	})
	be.net.Cut()
	cut := time.Now()
	if err := c.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.StartAgent(c.ctx); err != nil {
		t.Fatal(err)
	}
	c.waitAnswer("echo", "answer from the cache with the registry down", realAnswer)
	eventually(t, 20*time.Second, "C's status shows the registry down", func() bool {
		st, err := c.API().Status(c.ctx)
		return err == nil && !st.Registry.OK
	})

	// Past the session TTL (5 s) the registry drops B's registration...
	eventually(t, 30*time.Second, "the registry expires B's session", func() bool {
		return len(registered(t, reg, "echo")) == 0
	})
	t.Logf("figure: network cut -> B's session expired at the registry after %v", time.Since(cut).Round(100*time.Millisecond))
	// ...and B writes it again by itself once the network is back.
	be.net.Restore()
	restored := time.Now()
	eventually(t, 30*time.Second, "B's publication back after the session loss", published)
	t.Logf("figure: network back -> B's publication registered again in %v", time.Since(restored).Round(100*time.Millisecond))
	eventually(t, 20*time.Second, "C's status shows the registry up", func() bool {
		st, err := c.API().Status(c.ctx)
		return err == nil && st.Registry.OK
	})
	c.waitAnswer("echo", "the instance, from the registry again", realAnswer)

	if be.first == nil {
		return
	}
	// etcd: the registry itself restarted.
	if err := be.first.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	if err := be.first.StartAgent(be.first.ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "B's publication back after the etcd restart", published)
	t.Logf("figure: etcd restarted -> B's publication present %v after the restart began", time.Since(restarted).Round(100*time.Millisecond))
	c.waitAnswer("echo", "the instance after the etcd restart", realAnswer)
}

// cachedAddrs reads the addresses a host's agent has in its endpoint
// cache file for service, comma-separated.
func cachedAddrs(hostDir, service string) string {
	b, err := os.ReadFile(filepath.Join(hostDir, "data", "endpoints.json"))
	if err != nil {
		return ""
	}
	var f struct {
		Services map[string]struct {
			Endpoints []struct {
				Addr string `json:"addr"`
			} `json:"endpoints"`
		} `json:"services"`
	}
	if json.Unmarshal(b, &f) != nil {
		return ""
	}
	var addrs []string
	for _, ep := range f.Services[service].Endpoints {
		addrs = append(addrs, ep.Addr)
	}
	return strings.Join(addrs, ",")
}
