package dubbo

import (
	"encoding/json"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// dubbogoInstance is what dubbo-go v3.3.1 writes for --registry-type
// service (integration/dubbogo/README.md).
const dubbogoInstance = `{"name":"dubbo-provider","id":"127.0.0.3:20880","address":"127.0.0.3","port":20880,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"127.0.0.3:20880","name":"dubbo-provider","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"}]","dubbo.metadata.revision":"4186409560","dubbo.metadata.storage-type":"remote","dubbo.subscribed-services.revision":"0"}},"registrationTimeUTC":0}`

// twoProtocols: a Java app with dubbo, tri and rest endpoints.
const twoProtocols = `{"name":"demo","id":"10.0.0.5:20880","address":"10.0.0.5","port":20880,"payload":{"metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"},{\"port\":8080,\"protocol\":\"rest\"}]","dubbo.metadata.revision":"r1"}}}`

func TestAppPublications(t *testing.T) {
	in, err := dubboapp.Parse([]byte(twoProtocols))
	if err != nil {
		t.Fatal(err)
	}
	pubs, skipped, err := AppPublications("demo", in, "zookeeper/0x1")
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 2 || len(skipped) != 1 {
		t.Fatalf("pubs %+v skipped %v", pubs, skipped)
	}
	d, tr := pubs[0], pubs[1]
	if d.Service != "demo:dubbo" || d.Port != 20880 || d.Protocol != "dubbo" || d.Host != "10.0.0.5" ||
		tr.Service != "demo:tri" || tr.Port != 50051 || tr.Protocol != "tri" {
		t.Fatalf("pubs %+v", pubs)
	}
	if d.Metadata["dubbo.metadata.revision"] != "r1" || d.Metadata[dubboapp.EndpointsKey] != "" || d.Owner != "zookeeper/0x1" {
		t.Fatalf("metadata %v", d.Metadata)
	}
}

func view(service string, mesh bool, egress string, ins ...frontend.Instance) frontend.View {
	return frontend.View{Service: service, Revision: 1, Known: true, Mesh: mesh, Egress: egress, Instances: ins}
}

func parseShown(t *testing.T, data []byte) dubboapp.Instance {
	t.Helper()
	in, err := dubboapp.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return in
}

// TestAppInstances: at the egress while the mesh carries a service (one
// node per distinct metadata), at the real addresses otherwise; each node
// lists its one endpoint.
func TestAppInstances(t *testing.T) {
	md1 := map[string]string{"dubbo.metadata.revision": "r1", "dubbo.metadata.storage-type": "remote"}
	md2 := map[string]string{"dubbo.metadata.revision": "r2", "dubbo.metadata.storage-type": "remote"}
	dubboV := view("demo:dubbo", true, "127.0.0.1:30001",
		frontend.Instance{Addr: "10.0.0.5:20880", Protocol: "dubbo", Metadata: md1},
		frontend.Instance{Addr: "10.0.0.6:20880", Protocol: "dubbo", Metadata: md1},
		frontend.Instance{Addr: "10.0.0.7:20880", Protocol: "dubbo", Metadata: md2})
	triV := view("demo:tri", false, "", frontend.Instance{Addr: "10.0.0.5:50051", Protocol: "tri", Metadata: md1})
	kids, data := AppInstances("demo", []frontend.View{dubboV, triV})
	want := []string{"10.0.0.5:50051", "127.0.0.1:30001", "127.0.0.1:30001-2"}
	if !slices.Equal(kids, want) {
		t.Fatalf("children %v, want %v", kids, want)
	}
	raw50051 := data["10.0.0.5:50051"]
	e := parseShown(t, data["127.0.0.1:30001"])
	if e.Addr() != "127.0.0.1:30001" || e.ID != "127.0.0.1:30001" || e.Name != "demo" || e.Metadata["dubbo.metadata.revision"] != "r1" ||
		e.Metadata[dubboapp.EndpointsKey] != `[{"port":30001,"protocol":"dubbo"}]` {
		t.Fatalf("egress node %+v", e)
	}
	if e2 := parseShown(t, data["127.0.0.1:30001-2"]); e2.Metadata["dubbo.metadata.revision"] != "r2" || e2.Addr() != "127.0.0.1:30001" {
		t.Fatalf("second egress node %+v", e2)
	}
	r := parseShown(t, data["10.0.0.5:50051"])
	if r.Addr() != "10.0.0.5:50051" || r.Metadata[dubboapp.EndpointsKey] != `[{"port":50051,"protocol":"tri"}]` {
		t.Fatalf("real node %+v", r)
	}
	// An instance keeping its metadata local is shown at its real
	// address, the mesh or not.
	local := map[string]string{"dubbo.metadata.storage-type": "local", "dubbo.metadata-service.url-params": `{"port":"20993"}`}
	kids, data = AppInstances("demo", []frontend.View{view("demo:dubbo", true, "127.0.0.1:30001",
		frontend.Instance{Addr: "10.0.0.5:20880", Metadata: md1}, frontend.Instance{Addr: "10.0.0.8:20880", Metadata: local})})
	if !slices.Equal(kids, []string{"10.0.0.8:20880", "127.0.0.1:30001"}) || parseShown(t, data["10.0.0.8:20880"]).Addr() != "10.0.0.8:20880" {
		t.Fatalf("with a local-metadata instance: %v", kids)
	}
	// The raw JSON is Curator's shape, as Java's Jackson reads it.
	var raw map[string]any
	if err := json.Unmarshal(raw50051, &raw); err != nil || raw["payload"].(map[string]any)["@class"] != "org.apache.dubbo.registry.zookeeper.ZookeeperInstance" {
		t.Fatalf("raw %v, %v", raw, err)
	}
}

// TestRewriterApp: an instance node is published per endpoint for its
// session; its new data republishes (an endpoint gone is unpublished);
// its deletion ends them. A consumer's read of /services/APP follows the
// views, and the server is told of each change.
func TestRewriterApp(t *testing.T) {
	core := newFakeCore()
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	var told atomic.Int32
	r.Start(func(p string) {
		if p == "/services/demo" {
			told.Add(1)
		}
	})
	path := "/services/demo/10.0.0.5:20880"
	r.NodeCreated(0x21, path, []byte(twoProtocols), true)
	for _, s := range []string{"demo:dubbo", "demo:tri"} {
		if p, ok := core.pub(s); !ok || p.Owner != "zookeeper/0x21" {
			t.Fatalf("%s: %+v, %v", s, p, ok)
		}
	}
	in := parseShown(t, []byte(twoProtocols))
	in.Metadata[dubboapp.EndpointsKey] = `[{"port":20881,"protocol":"dubbo"}]`
	r.NodeDataChanged(0x21, path, in.Marshal())
	if p, ok := core.pub("demo:dubbo"); !ok || p.Port != 20881 {
		t.Fatalf("after the update: %+v, %v", p, ok)
	}
	if _, ok := core.pub("demo:tri"); ok {
		t.Fatal("tri endpoint kept after the instance dropped it")
	}
	r.NodeDeleted(0x21, path)
	if _, ok := core.pub("demo:dubbo"); ok {
		t.Fatal("kept after the node went")
	}
	// Garbage is no publication.
	r.NodeCreated(0x22, "/services/demo/x", []byte("{"), true)
	if len(core.Owned("")) != 0 {
		t.Fatal("garbage published")
	}

	// Reads.
	if kids, ok := r.Children("/services/demo"); !ok || len(kids) != 0 {
		t.Fatalf("before any view: %v, %v", kids, ok)
	}
	md := map[string]string{"dubbo.metadata.revision": "r1"}
	core.setView(view("demo:dubbo", true, "127.0.0.1:30001", frontend.Instance{Addr: "10.0.0.5:20880", Metadata: md}))
	core.setView(view("demo:tri", true, "127.0.0.1:30002"))
	r.Prepare("/services/demo") // both known: returns
	eventually(t, "egress shown", func() bool {
		kids, _ := r.Children("/services/demo")
		return slices.Equal(kids, []string{"127.0.0.1:30001"})
	})
	b, ok := r.Data("/services/demo/127.0.0.1:30001")
	if !ok || parseShown(t, b).Addr() != "127.0.0.1:30001" {
		t.Fatalf("data %s, %v", b, ok)
	}
	if _, ok := r.Data("/services/demo/10.0.0.5:20880"); ok {
		t.Fatal("data of a node not shown")
	}
	n := told.Load()
	fallback := view("demo:dubbo", false, "", frontend.Instance{Addr: "10.0.0.5:20880", Metadata: md})
	fallback.Revision = 2
	core.setView(fallback)
	eventually(t, "real address on fallback", func() bool {
		kids, _ := r.Children("/services/demo")
		return slices.Equal(kids, []string{"10.0.0.5:20880"}) && told.Load() > n
	})
	// A name no registry takes is left to the tree.
	if _, ok := r.Children("/services/bad$name"); ok {
		t.Fatal("an app name the registry refuses was overlaid")
	}
	if !maps.Equal(md, map[string]string{"dubbo.metadata.revision": "r1"}) {
		t.Fatal("view metadata modified")
	}
}

// FuzzAppRewrite: any instance data is published or refused cleanly, and
// what is published shows, at the egress and at its real address, as
// instance nodes that parse and keep the app's metadata.
func FuzzAppRewrite(f *testing.F) {
	f.Add([]byte(dubbogoInstance))
	f.Add([]byte(twoProtocols))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := dubboapp.Parse(data)
		if err != nil {
			return
		}
		pubs, _, err := AppPublications("app", in, "zookeeper/0x1")
		if err != nil {
			return
		}
		for _, p := range pubs {
			ins := frontend.Instance{Addr: "10.0.0.1:20880", Protocol: p.Protocol, Metadata: p.Metadata}
			for _, mesh := range []bool{true, false} {
				kids, shown := AppInstances("app", []frontend.View{view(p.Service, mesh, "127.0.0.1:30001", ins)})
				if len(kids) != 1 {
					t.Fatalf("children %v", kids)
				}
				got := parseShown(t, shown[kids[0]])
				eps, err := got.Endpoints()
				if err != nil || len(eps) != 1 || eps[0].Protocol != p.Protocol {
					t.Fatalf("endpoints %v, %v", eps, err)
				}
				for k, v := range p.Metadata {
					if got.Metadata[k] != v {
						t.Fatalf("metadata %q: %q, want %q", k, got.Metadata[k], v)
					}
				}
			}
		}
	})
}

// TestRewriterAppRestored: after an agent restart, a restored session's
// instance node keeps its publications (and its deletion ends them);
// those of a session that did not come back end.
func TestRewriterAppRestored(t *testing.T) {
	core := newFakeCore()
	for _, p := range []frontend.Publication{
		{Service: "demo:dubbo", Owner: "zookeeper/0x1"}, {Service: "demo:tri", Owner: "zookeeper/0x1"},
		{Service: "gone:dubbo", Owner: "zookeeper/0x2"},
	} {
		if err := core.Publish(p); err != nil {
			t.Fatal(err)
		}
	}
	r := NewRewriter(core, zaptest.NewLogger(t))
	defer r.Close()
	r.Start(func(string) {})
	path := "/services/demo/10.0.0.5:20880"
	r.SessionsRestored([]zookeeper.RestoredSession{{ID: 1, Ephemerals: []zookeeper.Ephemeral{{Path: path, Data: []byte(twoProtocols)}}}})
	for _, s := range []string{"demo:dubbo", "demo:tri"} {
		if _, ok := core.pub(s); !ok {
			t.Errorf("%s of a restored session ended", s)
		}
	}
	if _, ok := core.pub("gone:dubbo"); ok {
		t.Error("a publication of a session that did not come back was kept")
	}
	r.NodeDeleted(1, path)
	if len(core.Owned("")) != 0 {
		t.Errorf("kept after the restored node went: %v", core.Owned(""))
	}
}
