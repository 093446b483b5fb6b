package dubbo

import (
	"maps"
	"net/url"
	"slices"
	"testing"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

func TestProvidersDir(t *testing.T) {
	for path, want := range map[string]string{
		"/dubbo/org.demo.Greeter/providers": "org.demo.Greeter",
		"/g1/S/providers":                   "S",
		"/dubbo/S/consumers":                "",
		"/dubbo/S/providers/x":              "",
		"/dubbo/providers":                  "",
		"dubbo/S/providers":                 "",
		"//S/providers":                     "",
		"/dubbo//providers":                 "",
	} {
		got, ok := ProvidersDir(path)
		if got != want || ok != (want != "") {
			t.Errorf("ProvidersDir(%q) = %q, %v; want %q", path, got, ok, want)
		}
	}
}

func TestProviderNode(t *testing.T) {
	name := url.QueryEscape(dubbourltest.DubboGo)
	svc, u, ok, err := ProviderNode("/dubbo/com.apache.dubbo.sample.basic.IGreeter/providers/" + name)
	if !ok || err != nil || svc != "com.apache.dubbo.sample.basic.IGreeter" || u.Protocol != "tri" || u.Port != 20000 {
		t.Fatalf("ProviderNode = %q %+v %v %v", svc, u, ok, err)
	}
	if _, _, ok, err := ProviderNode("/dubbo/Other/providers/" + name); !ok || err == nil {
		t.Errorf("a URL of another interface: ok=%v err=%v, want an error", ok, err)
	}
	if _, _, ok, err := ProviderNode("/dubbo/S/providers/not-a-url"); !ok || err == nil {
		t.Errorf("garbage name: ok=%v err=%v", ok, err)
	}
	if _, _, ok, _ := ProviderNode("/dubbo/S/consumers/" + name); ok {
		t.Error("a consumer node taken for a provider")
	}
}

// TestPublicationAndBack: a provider's URL becomes a publication whose
// registration, read back as an instance, gives the consumer the same
// URL at the address the mesh says.
func TestPublicationAndBack(t *testing.T) {
	u, err := dubbourl.Parse(dubbourltest.DubboGroup)
	if err != nil {
		t.Fatal(err)
	}
	p := Publication("com.foo.BarService", u, "zookeeper/0x1")
	if p.Host != "10.20.30.40" || p.Port != 20880 || p.Protocol != "dubbo" || p.Weight != 200 || p.Owner != "zookeeper/0x1" {
		t.Fatalf("publication = %+v", p)
	}
	for _, k := range []string{"interface", "side", "timestamp", "anyhost", "weight"} {
		if _, ok := p.Metadata[k]; ok {
			t.Errorf("layout parameter %q in the metadata", k)
		}
	}
	if p.Metadata["group"] != "g1" || p.Metadata["version"] != "1.0.0" || p.Metadata["methods"] != "bar,baz" {
		t.Errorf("metadata = %v", p.Metadata)
	}

	// What the registry hands back for it, through the agent.
	in := frontend.Instance{Addr: "10.20.30.40:20880", Protocol: p.Protocol, Weight: p.Weight, Metadata: p.Metadata}
	for _, tc := range []struct {
		name    string
		view    frontend.View
		host    string
		port    int
		retries string // the push-back behind the egress
	}{
		{"mesh: the egress", frontend.View{Mesh: true, Egress: "127.0.0.1:30001", Instances: []frontend.Instance{in}}, "127.0.0.1", 30001, "0"},
		{"fallback: the real address", frontend.View{Instances: []frontend.Instance{in}}, "10.20.30.40", 20880, ""},
	} {
		kids := Children("com.foo.BarService", tc.view, nil)
		if len(kids) != 1 {
			t.Fatalf("%s: children %v", tc.name, kids)
		}
		got, err := dubbourl.ParseNodeName(kids[0])
		if err != nil {
			t.Fatal(err)
		}
		want := maps.Clone(u.Params)
		delete(want, "timestamp")
		want["anyhost"] = "false"
		if tc.retries != "" {
			want["retries"] = tc.retries
		}
		if got.Host != tc.host || got.Port != tc.port || got.Protocol != "dubbo" || got.Path != "com.foo.BarService" || !maps.Equal(got.Params, want) {
			t.Errorf("%s: %+v\nwant params %v", tc.name, got, want)
		}
	}
}

func TestChildrenScheme(t *testing.T) {
	v := frontend.View{Mesh: true, Egress: "127.0.0.1:30001", Instances: []frontend.Instance{
		{Addr: "10.0.0.1:1", Protocol: "tri", Weight: 100, Metadata: map[string]string{"pid": "1"}},
		{Addr: "10.0.0.2:1", Protocol: "tri", Weight: 100, Metadata: map[string]string{"pid": "1"}}, // the same URL behind the egress
		{Addr: "10.0.0.3:1", Weight: 100, Metadata: map[string]string{"pid": "3"}},
	}}
	kids := Children("S", v, nil)
	if len(kids) != 2 {
		t.Fatalf("children = %v (one node per scheme)", kids)
	}
	schemes := map[string]bool{}
	for _, k := range kids {
		u, _ := dubbourl.ParseNodeName(k)
		schemes[u.Protocol] = true
	}
	if !schemes["tri"] || !schemes["dubbo"] {
		t.Errorf("schemes = %v", schemes)
	}
	if got := Children("S", frontend.View{Instances: []frontend.Instance{{Addr: "bad"}}}, nil); len(got) != 0 {
		t.Errorf("an unusable address gave %v", got)
	}
}

// TestChildrenBehindEgress: behind the egress a consumer sees one node
// per (scheme, group, version), and the node stays the same while
// instances of its key come and go: dubbo-go keys providers by address,
// group and version, so two nodes of one key at the egress are one
// provider to it, and deleting either drops that provider.
func TestChildrenBehindEgress(t *testing.T) {
	inst := func(addr, version, pid string) frontend.Instance {
		return frontend.Instance{Addr: addr, Protocol: "dubbo", Weight: 100, Metadata: map[string]string{"version": version, "pid": pid}}
	}
	view := func(ins ...frontend.Instance) frontend.View {
		return frontend.View{Mesh: true, Egress: "127.0.0.1:30001", Instances: ins}
	}
	b, c, d := inst("10.0.0.2:1", "1.0", "2"), inst("10.0.0.3:1", "1.0", "3"), inst("10.0.0.4:1", "2.0", "4")

	first := Children("S", view(b, c, d), nil)
	if len(first) != 2 {
		t.Fatalf("children = %v, want one per version", first)
	}
	versions := map[string]string{} // version -> the pid its node shows
	node := map[string]string{}     // version -> its node
	for _, k := range first {
		u, err := dubbourl.ParseNodeName(k)
		if err != nil {
			t.Fatal(err)
		}
		if u.Host != "127.0.0.1" || u.Port != 30001 {
			t.Errorf("%s: not at the egress", k)
		}
		versions[u.Params["version"]] = u.Params["pid"]
		node[u.Params["version"]] = k
	}
	if versions["1.0"] != "2" || versions["2.0"] != "4" {
		t.Errorf("versions -> pid %v, want the first instance of each", versions)
	}

	// B goes: the 1.0 node stays as it was (C's URL would differ by pid).
	if got := Children("S", view(c, d), first); !slices.Equal(got, first) {
		t.Errorf("after B left: %v, want unchanged %v", got, first)
	}
	// Every 2.0 instance goes: its node goes.
	if got := Children("S", view(c), first); len(got) != 1 || got[0] != node["1.0"] {
		t.Errorf("after D left: %v", got)
	}
	// Fallback: every instance at its own address.
	if got := Children("S", frontend.View{Instances: []frontend.Instance{b, c, d}}, first); len(got) != 3 {
		t.Errorf("fallback: %v, want three", got)
	}
}

// FuzzProviderRewrite: any node name under a providers directory either
// is refused with an error or becomes a publication whose consumer URL
// parses again with the same parameters and interface.
func FuzzProviderRewrite(f *testing.F) {
	for _, s := range []string{dubbourltest.Dubbo27, dubbourltest.Dubbo3Tri, dubbourltest.DubboGroup, dubbourltest.DubboGo, dubbourltest.Dubbo26Disabled, "dubbo://h:1/S?a=%26&b", "x"} {
		f.Add(url.QueryEscape(s))
	}
	f.Fuzz(func(t *testing.T, name string) {
		svc, u, ok, err := ProviderNode("/dubbo/S/providers/" + name)
		if !ok || err != nil {
			return
		}
		p := Publication(svc, u, "o")
		in := frontend.Instance{Addr: "127.0.0.9:1", Protocol: p.Protocol, Weight: max(p.Weight, 1), Metadata: p.Metadata}
		kids := Children(svc, frontend.View{Mesh: true, Egress: "127.0.0.1:30000", Instances: []frontend.Instance{in}}, nil)
		if len(kids) != 1 {
			t.Fatalf("%q: children %v", name, kids)
		}
		back, err := dubbourl.ParseNodeName(kids[0])
		if err != nil {
			t.Fatalf("%q: the consumer URL %q does not parse: %v", name, kids[0], err)
		}
		if back.Params["interface"] != "S" || back.Host != "127.0.0.1" || back.Port != 30000 {
			t.Fatalf("%q: consumer URL %+v", name, back)
		}
		for k, v := range p.Metadata {
			if back.Params[k] != v {
				t.Fatalf("%q: parameter %q = %q, want %q", name, k, back.Params[k], v)
			}
		}
	})
}
