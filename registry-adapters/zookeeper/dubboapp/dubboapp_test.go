package dubboapp

import (
	"maps"
	"strings"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// DubboGo is what dubbo-go v3.3.1 writes (integration/dubbogo/README.md).
const DubboGo = `{"name":"dubbo-provider","id":"127.0.0.3:20880","address":"127.0.0.3","port":20880,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"127.0.0.3:20880","name":"dubbo-provider","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"}]","dubbo.metadata.revision":"4186409560","dubbo.metadata.storage-type":"remote","dubbo.subscribed-services.revision":"0"}},"registrationTimeUTC":0}`

// Java is what Java Dubbo 3 writes through Curator (sslPort, uriSpec,
// serviceType; two protocols).
const Java = `{"name":"demo-provider","id":"10.0.0.5:20880","address":"10.0.0.5","port":20880,"sslPort":null,"payload":{"@class":"org.apache.dubbo.registry.zookeeper.ZookeeperInstance","id":"10.0.0.5:20880","name":"demo-provider","metadata":{"dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"},{\"port\":50051,\"protocol\":\"tri\"},{\"port\":8080,\"protocol\":\"rest\"}]","dubbo.metadata.revision":"a1b2c3","dubbo.metadata.storage-type":"local","meta-v":"1.0.0","timestamp":1690000000000}},"registrationTimeUTC":1690000000123,"serviceType":"DYNAMIC","uriSpec":null}`

func TestParse(t *testing.T) {
	in, err := Parse([]byte(DubboGo))
	if err != nil {
		t.Fatal(err)
	}
	if in.Name != "dubbo-provider" || in.ID != "127.0.0.3:20880" || in.Addr() != "127.0.0.3:20880" || in.Metadata["dubbo.metadata.revision"] != "4186409560" {
		t.Fatalf("%+v", in)
	}
	eps, err := in.Endpoints()
	if err != nil || len(eps) != 1 || eps[0] != (Endpoint{20880, "dubbo"}) {
		t.Fatalf("endpoints %v, %v", eps, err)
	}
	j, err := Parse([]byte(Java))
	if err != nil {
		t.Fatal(err)
	}
	if j.RegisteredMs != 1690000000123 || j.Metadata["timestamp"] != "1690000000000" {
		t.Fatalf("%+v", j)
	}
	if eps, _ := j.Endpoints(); len(eps) != 3 || eps[1] != (Endpoint{50051, "tri"}) {
		t.Fatalf("endpoints %v", eps)
	}
	// No endpoints: one dubbo endpoint at the port.
	bare, err := Parse([]byte(`{"name":"a","address":"10.0.0.1","port":7}`))
	if err != nil {
		t.Fatal(err)
	}
	if eps, _ := bare.Endpoints(); len(eps) != 1 || eps[0] != (Endpoint{7, "dubbo"}) {
		t.Fatalf("endpoints %v", eps)
	}
	// Marshal reads back the same.
	again, err := Parse(in.Marshal())
	if err != nil || again.Addr() != in.Addr() || !maps.Equal(again.Metadata, in.Metadata) || again.ID != in.ID {
		t.Fatalf("round trip: %+v, %v", again, err)
	}
}

func TestParseBad(t *testing.T) {
	for _, bad := range []string{
		``, `[]`, `{}`, `{"name":"a","address":"10.0.0.1"}`,
		`{"name":"a","address":"10.0.0.1","port":70000}`,
		`{"name":"","address":"10.0.0.1","port":1}`,
		`{"name":"a","address":"","port":1}`,
		`{"name":"a","address":"a/b","port":1}`,
		`{"name":"a","address":"10.0.0.1","port":1,"payload":{"metadata":{"k":{"x":1}}}}`,
		`{"name":"a","address":"10.0.0.1","port":1} {}`,
		`{"name":"a","address":"10.0.0.1","port":1,"payload":{"metadata":{"dubbo.endpoints":"[{\"port\":0,\"protocol\":\"dubbo\"}]"}}}`,
		strings.Repeat(" ", MaxData+1),
	} {
		in, err := Parse([]byte(bad))
		if err == nil {
			_, err = in.Endpoints()
		}
		if err == nil {
			t.Errorf("%.60q: accepted", bad)
		}
	}
}

func TestServiceName(t *testing.T) {
	for _, c := range []struct {
		in       string
		app, pro string
		ok       bool
	}{
		{"dubbo-provider:dubbo", "dubbo-provider", "dubbo", true},
		{"demo:tri", "demo", "tri", true},
		{"demo:rest", "", "", false},
		{"org.detour.Greeter", "", "", false},
		{":dubbo", "", "", false},
		{"a:b:dubbo", "", "", false},
	} {
		app, pro, ok := ParseServiceName(c.in)
		if app != c.app || pro != c.pro || ok != c.ok {
			t.Errorf("%q: %q %q %v", c.in, app, pro, ok)
		}
	}
	if app, ok := InstanceDir("/services/demo"); !ok || app != "demo" {
		t.Error("InstanceDir")
	}
	if _, ok := InstanceDir("/services/demo/x"); ok {
		t.Error("InstanceDir of a node")
	}
	if app, id, ok := InstanceNode("/services/demo/10.0.0.1:1"); !ok || app != "demo" || id != "10.0.0.1:1" {
		t.Error("InstanceNode")
	}
}

// TestEndpointRoundTrip: what an adapter writes for an endpoint reads
// back as that endpoint; a foreign instance reads as one endpoint per
// protocol.
func TestEndpointRoundTrip(t *testing.T) {
	ep := registry.Endpoint{Service: "demo:tri", Addr: "10.0.0.9:31001", Weight: 7,
		Metadata: map[string]string{"dubbo.metadata.revision": "r1", "detour.port": "50051", "detour.protocol": "tri"}}
	in, err := FromEndpoint(ep, 5)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID != "10.0.0.9:31001" || in.Name != "demo" || in.Metadata[EndpointsKey] != `[{"port":31001,"protocol":"tri"}]` {
		t.Fatalf("%+v", in)
	}
	back, err := Parse(in.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := ToEndpoint("demo:tri", back, "detour.protocol")
	if err != nil || !ok || !got.Equal(ep) {
		t.Fatalf("read back %+v, %v, %v", got, ok, err)
	}
	if _, ok, _ := ToEndpoint("demo:dubbo", back, ""); ok {
		t.Fatal("a tri-only instance read as a dubbo endpoint")
	}
	j, _ := Parse([]byte(Java))
	d, ok, err := ToEndpoint("demo-provider:dubbo", j, "detour.protocol")
	if err != nil || !ok || d.Addr != "10.0.0.5:20880" || d.Weight != registry.DefaultWeight || d.Metadata["detour.protocol"] != "" || d.Metadata[EndpointsKey] != "" {
		t.Fatalf("dubbo %+v, %v, %v", d, ok, err)
	}
	tr, ok, err := ToEndpoint("demo-provider:tri", j, "detour.protocol")
	if err != nil || !ok || tr.Addr != "10.0.0.5:50051" || tr.Metadata["detour.protocol"] != "tri" {
		t.Fatalf("tri %+v, %v, %v", tr, ok, err)
	}
}

// FuzzInstance: any data parses or fails cleanly; what parses writes
// and reads back the same, and reads as endpoints without panicking.
func FuzzInstance(f *testing.F) {
	f.Add([]byte(DubboGo))
	f.Add([]byte(Java))
	f.Add([]byte(`{"name":"a","address":"::1","port":1,"payload":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Parse(in.Marshal())
		if err != nil {
			t.Fatalf("own output rejected: %v", err)
		}
		if again.Addr() != in.Addr() || again.Name != in.Name || again.ID != in.ID || !maps.Equal(again.Metadata, in.Metadata) {
			t.Fatalf("round trip: %+v != %+v", again, in)
		}
		for _, p := range Protocols {
			ep, ok, err := ToEndpoint(ServiceName("app", p), in, "detour.protocol")
			if err != nil || !ok {
				continue
			}
			w, err := FromEndpoint(ep, 0)
			if err != nil {
				t.Fatalf("endpoint %+v not written: %v", ep, err)
			}
			back, ok, err := ToEndpoint(ep.Service, w, "detour.protocol")
			if err != nil || !ok || !back.Equal(ep) {
				t.Fatalf("endpoint %+v read back %+v, %v, %v", ep, back, ok, err)
			}
		}
	})
}
