package dubbo

import (
	"maps"
	"net/url"
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
		name string
		view frontend.View
		host string
		port int
	}{
		{"mesh: the egress", frontend.View{Mesh: true, Egress: "127.0.0.1:30001", Instances: []frontend.Instance{in}}, "127.0.0.1", 30001},
		{"fallback: the real address", frontend.View{Instances: []frontend.Instance{in}}, "10.20.30.40", 20880},
	} {
		kids := Children("com.foo.BarService", tc.view)
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
	kids := Children("S", v)
	if len(kids) != 2 {
		t.Fatalf("children = %v (two distinct URLs)", kids)
	}
	schemes := map[string]bool{}
	for _, k := range kids {
		u, _ := dubbourl.ParseNodeName(k)
		schemes[u.Protocol] = true
	}
	if !schemes["tri"] || !schemes["dubbo"] {
		t.Errorf("schemes = %v", schemes)
	}
	if got := Children("S", frontend.View{Instances: []frontend.Instance{{Addr: "bad"}}}); len(got) != 0 {
		t.Errorf("an unusable address gave %v", got)
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
		kids := Children(svc, frontend.View{Mesh: true, Egress: "127.0.0.1:30000", Instances: []frontend.Instance{in}})
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
