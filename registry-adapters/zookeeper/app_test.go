package zookeeper

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// appName is a fresh app name for the test; its folder goes at the end.
func appName(t *testing.T, env *zkEnv) string {
	t.Helper()
	app := strings.ReplaceAll(registrytest.Service(t), ":", ".")
	t.Cleanup(func() {
		if err := deleteTree(env.raw, dubboapp.Dir(app)); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	return app
}

// TestAppLevelLayout: an application-level endpoint is Dubbo 3's
// instance node, /services/APP/HOST:PORT, ephemeral, its data the
// instance JSON with the endpoint's port in address, port and
// dubbo.endpoints; it reads back as the endpoint, a metadata change sets
// the data anew, and Deregister deletes it.
func TestAppLevelLayout(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	h := env.harness()
	app := appName(t, env)
	svc := dubboapp.ServiceName(app, "tri")
	w, err := r.Watch(testCtx(t), svc)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	registrytest.NextUntil(t, h, w, nil)

	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:31001", Weight: 3,
		Metadata: map[string]string{"dubbo.metadata.revision": "r1", MetaProtocol: "tri", "detour.port": "50051"}}
	mustRegister(t, r, ep)
	node := dubboapp.Dir(app) + "/127.0.0.2:31001"
	data, stat, err := env.raw.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	if stat.EphemeralOwner == 0 {
		t.Error("instance node is not ephemeral")
	}
	in, err := dubboapp.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != app || in.Addr() != "127.0.0.2:31001" || in.ID != "127.0.0.2:31001" ||
		in.Metadata[dubboapp.EndpointsKey] != `[{"port":31001,"protocol":"tri"}]` || in.Metadata["dubbo.metadata.revision"] != "r1" {
		t.Fatalf("instance %s", data)
	}
	registrytest.NextUntil(t, h, w, normalized(t, ep))
	if got, err := r.List(testCtx(t), svc); err != nil || !registry.EqualSets(got, normalized(t, ep)) {
		t.Fatalf("List = %v, %v", got, err)
	}

	ep.Metadata["dubbo.metadata.revision"] = "r2"
	mustRegister(t, r, ep)
	registrytest.NextUntil(t, h, w, normalized(t, ep))
	if _, stat2, _ := env.raw.Get(node); stat2 == nil || stat2.Czxid != stat.Czxid {
		t.Error("a metadata change made a new node, not new data")
	}

	if err := r.Deregister(testCtx(t), svc, ep.Addr); err != nil {
		t.Fatal(err)
	}
	registrytest.NextUntil(t, h, w, nil)
	if ok, _, _ := env.raw.Exists(node); ok {
		t.Fatal("node kept after Deregister")
	}
}

// TestReadsDubbo3Instances: an instance a Dubbo 3 app wrote itself (no
// agent) reads as one endpoint per protocol; its update (a new metadata
// revision) and its deletion are seen; garbage is skipped as malformed.
func TestReadsDubbo3Instances(t *testing.T) {
	env := newEnv(t)
	var bad []string
	r, _ := env.newRegistry(t, func(_, node string, _ error) { bad = append(bad, node) })
	h := env.harness()
	app := appName(t, env)
	java := `{"name":"` + app + `","id":"10.0.0.5:20880","address":"10.0.0.5","port":20880,"sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"10.0.0.5:20880","name":"` + app + `","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"}]","dubbo.metadata.revision":"r1"}},"registrationTimeUTC":1690000000123,"serviceType":"DYNAMIC","uriSpec":null}`
	node := dubboapp.Dir(app) + "/10.0.0.5:20880"
	if err := createAll(env.raw, dubboapp.Dir(app)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.raw.Create(node, []byte(java), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, err := env.raw.Create(dubboapp.Dir(app)+"/junk", []byte("{"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	wd, err := r.Watch(testCtx(t), dubboapp.ServiceName(app, "dubbo"))
	if err != nil {
		t.Fatal(err)
	}
	defer wd.Close()
	wt, err := r.Watch(testCtx(t), dubboapp.ServiceName(app, "tri"))
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Close()
	md := map[string]string{"dubbo.metadata.revision": "r1"}
	dubboEP := registry.Endpoint{Service: dubboapp.ServiceName(app, "dubbo"), Addr: "10.0.0.5:20880", Metadata: md}
	triEP := registry.Endpoint{Service: dubboapp.ServiceName(app, "tri"), Addr: "10.0.0.5:50051",
		Metadata: map[string]string{"dubbo.metadata.revision": "r1", MetaProtocol: "tri"}}
	registrytest.NextUntil(t, h, wd, normalized(t, dubboEP))
	registrytest.NextUntil(t, h, wt, normalized(t, triEP))
	if len(bad) == 0 {
		t.Error("the garbage node was not reported malformed")
	}

	if _, err := env.raw.Set(node, []byte(strings.Replace(java, `"r1"`, `"r2"`, 1)), -1); err != nil {
		t.Fatal(err)
	}
	dubboEP.Metadata = map[string]string{"dubbo.metadata.revision": "r2"}
	registrytest.NextUntil(t, h, wd, normalized(t, dubboEP))

	if err := env.raw.Delete(node, -1); err != nil {
		t.Fatal(err)
	}
	registrytest.NextUntil(t, h, wd, nil)
	registrytest.NextUntil(t, h, wt, nil)
}

// TestAppLevelSessionExpiry: after a session expiry the instance node is
// there again, with its data.
func TestAppLevelSessionExpiry(t *testing.T) {
	env := newEnv(t)
	r, _ := env.newRegistry(t, nil)
	app := appName(t, env)
	ep := registry.Endpoint{Service: dubboapp.ServiceName(app, "dubbo"), Addr: "127.0.0.2:31002", Metadata: map[string]string{"k": "v"}}
	mustRegister(t, r, ep)
	node := dubboapp.Dir(app) + "/127.0.0.2:31002"
	before, _, err := env.raw.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	env.loseSession(t, r)
	poll(t, 30*time.Second, "instance node back with its data", func() bool {
		data, _, err := env.raw.Get(node)
		return err == nil && string(data) == string(before)
	})
}

// TestAppLevelResume: after a restart with the old session, the instance
// node is adopted as the endpoint it was; registering it again
// unchanged leaves the node (and its data) as it is.
func TestAppLevelResume(t *testing.T) {
	env := newEnv(t)
	app := appName(t, env)
	ep := registry.Endpoint{Service: dubboapp.ServiceName(app, "tri"), Addr: "127.0.0.2:31003",
		Metadata: map[string]string{"dubbo.metadata.revision": "r1", MetaProtocol: "tri"}}
	path := filepath.Join(t.TempDir(), "session")
	sid, st := crashed(t, env, path, ep)
	node := st.Nodes[0]
	data, before, err := env.raw.Get(node)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := env.newRegistryWith(t, []Option{WithSessionStore(registrytest.NewFileStore(path))})
	if got := r.conn.SessionID(); got != sid {
		t.Fatalf("session after the restart %x, want the old %x", got, sid)
	}
	if got := r.Adopted(); !registry.EqualSets(got, normalized(t, ep)) {
		t.Fatalf("Adopted = %s, want %s", registrytest.Format(got), ep)
	}
	mustRegister(t, r, ep)
	again, after, err := env.raw.Get(node)
	if err != nil || after.Czxid != before.Czxid || after.Mzxid != before.Mzxid || string(again) != string(data) {
		t.Errorf("node after Register unchanged: %+v, %v; want it untouched", after, err)
	}
}
