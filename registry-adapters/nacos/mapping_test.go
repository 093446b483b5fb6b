package nacos

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

func TestEndpointOf(t *testing.T) {
	base := model.Instance{Ip: "10.0.0.1", Port: 8080, Weight: 1, Healthy: true, Enable: true,
		Metadata: map[string]string{"detour.port": "20880"}}
	with := func(f func(*model.Instance)) model.Instance {
		in := base
		f(&in)
		return in
	}
	tests := []struct {
		name    string
		in      model.Instance
		want    registry.Endpoint
		wantErr string
	}{
		{"plain", base, registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: 100, Metadata: map[string]string{"detour.port": "20880"}}, ""},
		{"weight 100.0 is the most", with(func(in *model.Instance) { in.Weight = 100 }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: registry.MaxWeight, Metadata: base.Metadata}, ""},
		{"Nacos's top 10000 too", with(func(in *model.Instance) { in.Weight = 10000 }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: registry.MaxWeight, Metadata: base.Metadata}, ""},
		{"fraction scaled", with(func(in *model.Instance) { in.Weight = 2.5 }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: 250, Metadata: base.Metadata}, ""},
		{"hundredths round", with(func(in *model.Instance) { in.Weight = 0.015 }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: 2, Metadata: base.Metadata}, ""},
		{"small weight is 1", with(func(in *model.Instance) { in.Weight = 0.0001 }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: 1, Metadata: base.Metadata}, ""},
		{"nil metadata", with(func(in *model.Instance) { in.Metadata = nil }), registry.Endpoint{Service: "svc", Addr: "10.0.0.1:8080", Weight: 100, Metadata: map[string]string{}}, ""},
		{"ipv6", with(func(in *model.Instance) { in.Ip = "fd00::1" }), registry.Endpoint{Service: "svc", Addr: "[fd00::1]:8080", Weight: 100, Metadata: base.Metadata}, ""},
		{"hostname", with(func(in *model.Instance) { in.Ip = "app-1.example.com" }), registry.Endpoint{Service: "svc", Addr: "app-1.example.com:8080", Weight: 100, Metadata: base.Metadata}, ""},
		{"port 0", with(func(in *model.Instance) { in.Port = 0 }), registry.Endpoint{}, "port 0"},
		{"port too big", with(func(in *model.Instance) { in.Port = 65536 }), registry.Endpoint{}, "port 65536"},
		{"empty ip", with(func(in *model.Instance) { in.Ip = "" }), registry.Endpoint{}, "missing host"},
		{"bad ip", with(func(in *model.Instance) { in.Ip = "not a host" }), registry.Endpoint{}, "neither an IP nor a DNS name"},
		{"bracketed ip", with(func(in *model.Instance) { in.Ip = "[::1]" }), registry.Endpoint{}, "addr"},
		{"unspecified", with(func(in *model.Instance) { in.Ip = "0.0.0.0" }), registry.Endpoint{}, "unspecified"},
		{"weight too big", with(func(in *model.Instance) { in.Weight = 10001 }), registry.Endpoint{}, "weight"},
		{"weight NaN", with(func(in *model.Instance) { in.Weight = math.NaN() }), registry.Endpoint{}, "weight"},
		{"reserved weight key", with(func(in *model.Instance) { in.Metadata = map[string]string{"weight": "5"} }), registry.Endpoint{}, "reserved"},
		{"bad metadata key", with(func(in *model.Instance) { in.Metadata = map[string]string{"a b": "x"} }), registry.Endpoint{}, "metadata key"},
		{"control character", with(func(in *model.Instance) { in.Metadata = map[string]string{"k": "a\nb"} }), registry.Endpoint{}, "printable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := endpointOf("svc", tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("endpointOf = %v, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Fatalf("endpointOf = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestServing(t *testing.T) {
	for _, tc := range []struct {
		healthy, enabled bool
		weight           float64
		want             bool
	}{
		{true, true, 1, true},
		{false, true, 1, false},
		{true, false, 1, false},
		{true, true, 0, false},
		{true, true, -1, false},
	} {
		in := model.Instance{Healthy: tc.healthy, Enable: tc.enabled, Weight: tc.weight}
		if got := serving(in); got != tc.want {
			t.Errorf("serving(healthy=%v enabled=%v weight=%v) = %v", tc.healthy, tc.enabled, tc.weight, got)
		}
	}
}

func TestInstanceOfRoundTrips(t *testing.T) {
	for _, ep := range []registry.Endpoint{
		{Service: "svc", Addr: "10.0.0.1:80", Weight: 1, Metadata: map[string]string{}},
		{Service: "svc", Addr: "[fd00::1]:80", Weight: 100, Metadata: map[string]string{"detour.port": "20880", "unicode": "服务 ✓"}},
		{Service: "svc", Addr: "app.example.com:65535", Weight: registry.MaxWeight, Metadata: map[string]string{"empty": ""}},
	} {
		in, err := instanceOf(ep, DefaultCluster)
		if err != nil {
			t.Fatalf("instanceOf(%v): %v", ep, err)
		}
		if !in.Ephemeral || !in.Healthy || !in.Enable || in.ClusterName != DefaultCluster {
			t.Errorf("instanceOf(%v) = %+v: want ephemeral, healthy, enabled, cluster DEFAULT", ep, in)
		}
		back, err := endpointOf("svc", in)
		if err != nil || !back.Equal(ep) {
			t.Errorf("round trip of %+v = %+v, %v", ep, back, err)
		}
	}
}

func TestCanonicalAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.1:0080":  "10.0.0.1:80",
		"10.0.0.1:80":    "10.0.0.1:80",
		"[fd00::1]:0443": "[fd00::1]:443",
		"h.example:1":    "h.example:1",
	} {
		if got, err := canonicalAddr(in); err != nil || got != want {
			t.Errorf("canonicalAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := canonicalAddr("nope"); !errors.Is(err, registry.ErrInvalid) {
		t.Errorf("canonicalAddr(nope) = %v, want ErrInvalid", err)
	}
}

func TestInstanceKey(t *testing.T) {
	in := model.Instance{Ip: "10.0.0.1", Port: 80, ClusterName: "DEFAULT"}
	if got := instanceKey("G", "svc", in); got != "10.0.0.1#80#DEFAULT#G@@svc" {
		t.Errorf("generated key = %q", got)
	}
	in.InstanceId = "given"
	if got := instanceKey("G", "svc", in); got != "given" {
		t.Errorf("key with an instance ID = %q", got)
	}
}

// FuzzEndpointOf: mapping any instance never panics, and whatever it
// accepts is a valid Endpoint that survives the way back to an instance
// and again to an Endpoint unchanged.
func FuzzEndpointOf(f *testing.F) {
	f.Add("10.0.0.1", uint64(80), 100.0, true, true, "detour.port", "20880")
	f.Add("fd00::1", uint64(443), 0.5, true, true, "k", "")
	f.Add("[::1]", uint64(0), 1e9, true, false, "weight", "5")
	f.Add("host.example.", uint64(65535), 10000.4, true, true, "a b", "\x00")
	f.Fuzz(func(t *testing.T, ip string, port uint64, weight float64, healthy, enabled bool, key, value string) {
		in := model.Instance{Ip: ip, Port: port, Weight: weight, Healthy: healthy, Enable: enabled,
			Metadata: map[string]string{key: value}}
		if !serving(in) {
			return
		}
		ep, err := endpointOf("svc", in)
		if err != nil {
			return
		}
		if n, err := ep.Normalized(); err != nil || !n.Equal(ep) {
			t.Fatalf("endpointOf(%+v) = %+v, which Normalized turns into %+v, %v", in, ep, n, err)
		}
		back, err := instanceOf(ep, DefaultCluster)
		if err != nil {
			t.Fatalf("instanceOf(%+v): %v", ep, err)
		}
		again, err := endpointOf("svc", back)
		if err != nil || !again.Equal(ep) {
			t.Fatalf("round trip: %+v -> %+v -> %+v, %v", ep, back, again, err)
		}
	})
}

// TestDefaultWeightIsNacosDefault: an endpoint registered without a
// weight is Nacos's default 1.0, so beside a Nacos client's instances it
// takes an even share (issue 16: with the same number, 991 of 1,000).
func TestDefaultWeightIsNacosDefault(t *testing.T) {
	ep, err := registry.Endpoint{Service: "svc", Addr: "10.0.0.1:80"}.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	in, err := instanceOf(ep, DefaultCluster)
	if err != nil || in.Weight != 1.0 {
		t.Fatalf("instanceOf(default weight) = weight %v, %v; want 1.0", in.Weight, err)
	}
	if w, err := weightOf(1.0); err != nil || w != registry.DefaultWeight {
		t.Fatalf("weightOf(1.0) = %d, %v; want %d", w, err, registry.DefaultWeight)
	}
}

// TestClusterKey: an endpoint's "nacos.cluster" (from the agent's Nacos
// front end) is its instance's cluster; an instance of another cluster
// than DEFAULT reads with the key; the instance's own metadata map is
// not changed.
func TestClusterKey(t *testing.T) {
	ep := registry.Endpoint{Service: "svc", Addr: "10.0.0.1:80", Weight: 100, Metadata: map[string]string{nacoswire.ClusterKey: "east"}}
	if in, err := instanceOf(ep, DefaultCluster); err != nil || in.ClusterName != "east" || in.Metadata[nacoswire.ClusterKey] != "east" {
		t.Fatalf("instanceOf(nacos.cluster=east) = %+v, %v", in, err)
	}
	ep.Metadata[nacoswire.ClusterKey] = "not a cluster"
	if in, err := instanceOf(ep, "c1"); err != nil || in.ClusterName != "c1" {
		t.Fatalf("instanceOf(an invalid nacos.cluster) = %+v, %v; want the configured cluster", in, err)
	}
	md := map[string]string{"k": "v"}
	in := model.Instance{Ip: "10.0.0.2", Port: 80, Weight: 1, Healthy: true, Enable: true, ClusterName: "west", Metadata: md}
	got, err := endpointOf("svc", in)
	if err != nil || got.Metadata[nacoswire.ClusterKey] != "west" || got.Metadata["k"] != "v" {
		t.Fatalf("endpointOf(cluster west) = %+v, %v", got, err)
	}
	if _, ok := md[nacoswire.ClusterKey]; ok {
		t.Fatal("endpointOf changed the instance's metadata map")
	}
	in.ClusterName = DefaultCluster
	if got, err := endpointOf("svc", in); err != nil || got.Metadata[nacoswire.ClusterKey] != "" {
		t.Fatalf("endpointOf(cluster DEFAULT) = %+v, %v", got, err)
	}
}
