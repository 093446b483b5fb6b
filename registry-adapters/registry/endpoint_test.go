package registry

import (
	"errors"
	"net"
	"strings"
	"testing"
)

func TestValidateService(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"greeter", true},
		{"org.apache.dubbo.demo.DemoService", true},
		{"helloworld.Greeter", true},
		{"svc_v2:prod-1", true},
		{"9lives", true},
		{strings.Repeat("a", MaxServiceLen), true},
		{"", false},
		{strings.Repeat("a", MaxServiceLen+1), false},
		{".hidden", false},
		{"-x", false},
		{"a/b", false},
		{"a b", false},
		{"a@@b", false},
		{"ünï", false},
		{"a\nb", false},
	}
	for _, tc := range tests {
		err := ValidateService(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateService(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateService(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func TestValidateAddr(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:80", true},
		{"10.1.2.3:65535", true},
		{"[::1]:8080", true},
		{"[fe80::1]:1", true},
		{"host-a.example.com:20880", true},
		{"localhost:1", true},
		{"", false},
		{"127.0.0.1", false},
		{":80", false},
		{"127.0.0.1:", false},
		{"127.0.0.1:0", false},
		{"127.0.0.1:65536", false},
		{"127.0.0.1:-1", false},
		{"127.0.0.1:+80", false},
		{"127.0.0.1:http", false},
		{"0.0.0.0:80", false},
		{"[::]:80", false},
		{"::1:80", false},
		{"bad_host:80", false},
		{"-a.com:80", false},
		{"a..b:80", false},
		{"[fe80::1%eth0]:80", false}, // a zone means nothing on another host
	}
	for _, tc := range tests {
		err := ValidateAddr(tc.addr)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateAddr(%q) = %v, want ok=%v", tc.addr, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateAddr(%q) error %v does not wrap ErrInvalid", tc.addr, err)
		}
	}
}

func TestNormalized(t *testing.T) {
	md := map[string]string{"detour.port": "8080"}
	in := Endpoint{Service: "s", Addr: "127.0.0.1:1", Metadata: md}
	got, err := in.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	if got.Weight != DefaultWeight {
		t.Errorf("Weight = %d, want %d", got.Weight, DefaultWeight)
	}
	md["detour.port"] = "changed"
	if got.Metadata["detour.port"] != "8080" {
		t.Error("Normalized shares the caller's metadata map")
	}
	if n, _ := (Endpoint{Service: "s", Addr: "127.0.0.1:1"}).Normalized(); n.Metadata == nil {
		t.Error("nil metadata not normalized to an empty map")
	}

	bad := []Endpoint{
		{Service: "s", Addr: "127.0.0.1:1", Weight: MaxWeight + 1},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"": "v"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"a b": "v"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{ReservedWeightKey: "1"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"k": "\x01"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"k": "\xff"}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: map[string]string{"k": strings.Repeat("v", MaxMetadataValue+1)}},
		{Service: "s", Addr: "127.0.0.1:1", Metadata: manyKeys(10, 2000)},
	}
	for _, ep := range bad {
		if _, err := ep.Normalized(); !errors.Is(err, ErrInvalid) {
			t.Errorf("Normalized(%v, w=%d, %d keys) = %v, want ErrInvalid", ep, ep.Weight, len(ep.Metadata), err)
		}
	}
}

func manyKeys(n, size int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m["k"+strings.Repeat("x", i)] = strings.Repeat("v", size)
	}
	return m
}

func TestEqualSets(t *testing.T) {
	a := []Endpoint{{Service: "s", Addr: "b:1"}, {Service: "s", Addr: "a:1", Metadata: map[string]string{}}}
	Sort(a)
	if a[0].Addr != "a:1" {
		t.Fatalf("Sort: got %v first", a[0])
	}
	b := []Endpoint{{Service: "s", Addr: "a:1"}, {Service: "s", Addr: "b:1"}}
	if !EqualSets(a, b) {
		t.Error("nil and empty metadata should compare equal")
	}
	b[1].Metadata = map[string]string{"x": "y"}
	if EqualSets(a, b) {
		t.Error("metadata difference not seen")
	}
}

// FuzzValidateAddr: never panics, and whatever it accepts is a host and a
// port in range that net can split.
func FuzzValidateAddr(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:1", "a.b:65535", ":0", "[::]:1", "x:99999", "%:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if ValidateAddr(addr) != nil {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || host == "" {
			t.Fatalf("accepted %q but SplitHostPort = %q, %v", addr, host, err)
		}
		if _, err := ParsePort(port); err != nil {
			t.Fatalf("accepted %q with bad port: %v", addr, err)
		}
	})
}

// FuzzNormalized: never panics; an accepted endpoint is a fixed point.
func FuzzNormalized(f *testing.F) {
	f.Add("svc", "127.0.0.1:1", uint32(0), "k", "v")
	f.Add("a/b", "x", uint32(99999), "weight", "\x00")
	f.Fuzz(func(t *testing.T, svc, addr string, w uint32, k, v string) {
		ep := Endpoint{Service: svc, Addr: addr, Weight: w, Metadata: map[string]string{k: v}}
		n, err := ep.Normalized()
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		n2, err := n.Normalized()
		if err != nil || !n.Equal(n2) {
			t.Fatalf("Normalized not idempotent: %v -> %v, %v", n, n2, err)
		}
	})
}
