package zookeeper

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

var registered = time.UnixMilli(1700000000123)

// trickyMetadata is what the conformance suite round-trips, and more.
func trickyMetadata() map[string]string {
	return map[string]string{
		"detour.port":     "20880",
		"detour.mesh":     "true",
		"version":         "1.0.0",
		"group":           "g1",
		"empty":           "",
		"spaces":          "a b  c ",
		"url-chars":       "a=b&c=d?e#f/g%20h+i;j,k",
		"percent":         "100%",
		"unicode":         "grüße, 服务 ✓",
		"quotes":          `"json" 'single' \back`,
		"long":            strings.Repeat("x", 1000),
		"side":            "consumer",  // a layout key: escaped
		"enabled":         "false",     // ... which must not disable it
		"timestamp":       "yesterday", // ... nor change its timestamp
		"detour.md.side":  "already prefixed",
		"detour.md.":      "prefix alone",
		"interface_alias": "x",
	}
}

func TestProviderRoundTrip(t *testing.T) {
	eps := []registry.Endpoint{
		{Service: "org.apache.dubbo.demo.DemoService", Addr: "10.0.0.7:20880"},
		{Service: "greeter", Addr: "[2001:db8::7]:15001", Weight: 7, Metadata: map[string]string{"a": "1"}},
		{Service: "svc:v1_x-y", Addr: "host-1.example.com:1", Weight: registry.MaxWeight, Metadata: trickyMetadata()},
	}
	for _, ep := range eps {
		ep, err := ep.Normalized()
		if err != nil {
			t.Fatal(err)
		}
		name := providerURL(ep, "dubbo", registered).NodeName()
		p, err := parseProvider(ep.Service, name)
		if err != nil {
			t.Fatalf("parseProvider(%s): %v", name, err)
		}
		if !p.ep.Equal(ep) {
			t.Errorf("round trip\n got  %+v\n want %+v", p.ep, ep)
		}
		if !p.serving || p.timestamp != registered.UnixMilli() {
			t.Errorf("serving=%v timestamp=%d, want true %d", p.serving, p.timestamp, registered.UnixMilli())
		}
	}
}

func TestProviderURLLayout(t *testing.T) {
	ep := registry.Endpoint{Service: "com.foo.Bar", Addr: "10.0.0.7:20880", Weight: 100,
		Metadata: map[string]string{"version": "1.0.0", "side": "x"}}
	got := providerURL(ep, "dubbo", registered).String()
	want := "dubbo://10.0.0.7:20880/com.foo.Bar?anyhost=false&detour.md.side=x&interface=com.foo.Bar&side=provider&timestamp=1700000000123&version=1.0.0&weight=100"
	if got != want {
		t.Errorf("provider URL\n got  %s\n want %s", got, want)
	}
}

// TestOurNodesReadByDubboGo reads our node the way dubbo-go does
// (url.QueryUnescape, url.Parse, url.ParseQuery): every parameter,
// metadata included, comes out exactly.
func TestOurNodesReadByDubboGo(t *testing.T) {
	md := trickyMetadata()
	ep := registry.Endpoint{Service: "com.foo.Bar", Addr: "10.0.0.7:20880", Weight: 42, Metadata: md}
	name := providerURL(ep, "tri", registered).NodeName()
	raw, err := url.QueryUnescape(name)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", raw, err)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("url.ParseQuery: %v", err)
	}
	if u.Scheme != "tri" || u.Host != "10.0.0.7:20880" || u.Path != "/com.foo.Bar" {
		t.Errorf("dubbo-go sees %s :// %s %s", u.Scheme, u.Host, u.Path)
	}
	for k, v := range map[string]string{"interface": "com.foo.Bar", "side": "provider", "weight": "42", "anyhost": "false"} {
		if got := q.Get(k); got != v {
			t.Errorf("dubbo-go reads %s=%q, want %q", k, got, v)
		}
	}
	for k, v := range md {
		if got := q.Get(paramKey(k)); got != v {
			t.Errorf("dubbo-go reads metadata %s (param %s) = %q, want %q", k, paramKey(k), got, v)
		}
	}
}

// TestOurNodesReadByDubbo reads our node the way Dubbo (Java) does: decode
// the name once, split the query at '&' and each pair at its first '=',
// no further decoding. Values free of the few escaped bytes come out
// exactly.
func TestOurNodesReadByDubbo(t *testing.T) {
	md := map[string]string{"version": "1.0.0", "group": "g1", "methods": "a,b", "spaces": "a b", "expr": "x=y",
		"unicode": "grüße 服务", "path": "/a/b?c", "url": "http://u:p@h:1/x"}
	ep := registry.Endpoint{Service: "com.foo.Bar", Addr: "10.0.0.7:20880", Weight: 42, Metadata: md}
	name := providerURL(ep, "dubbo", registered).NodeName()
	raw, err := url.QueryUnescape(name) // java.net.URLDecoder.decode
	if err != nil {
		t.Fatal(err)
	}
	_, query, _ := strings.Cut(raw, "?")
	params := map[string]string{}
	for kv := range strings.SplitSeq(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		params[k] = v
	}
	for k, v := range md {
		if params[k] != v {
			t.Errorf("Dubbo reads %s=%q, want %q", k, params[k], v)
		}
	}
	if params["interface"] != "com.foo.Bar" || params["side"] != "provider" || params["weight"] != "42" {
		t.Errorf("Dubbo reads interface=%q side=%q weight=%q", params["interface"], params["side"], params["weight"])
	}
}

func TestParseForeignProviders(t *testing.T) {
	tests := []struct {
		name    string
		service string
		url     string
		want    registry.Endpoint
		serving bool
	}{
		{"dubbo 2.7", "org.apache.dubbo.demo.DemoService", dubbourltest.Dubbo27, registry.Endpoint{
			Service: "org.apache.dubbo.demo.DemoService", Addr: "192.168.1.7:20880", Weight: 100,
			Metadata: map[string]string{"application": "dubbo-demo-api-provider", "default": "true", "deprecated": "false",
				"dubbo": "2.0.2", "dynamic": "true", "generic": "false", "metadata-type": "remote",
				"methods": "sayHello,sayHelloAsync", "pid": "45271", "release": ""},
		}, true},
		{"dubbo 3 triple", "org.apache.dubbo.samples.api.GreetingsService", dubbourltest.Dubbo3Tri, registry.Endpoint{
			Service: "org.apache.dubbo.samples.api.GreetingsService", Addr: "192.168.31.5:50051", Weight: 100,
			Metadata: map[string]string{"application": "first-dubbo-provider", "background": "false", "deprecated": "false",
				"dubbo": "2.0.2", "dynamic": "true", "executor-management-mode": "isolation", "file-cache": "true",
				"generic": "false", "methods": "sayHi", "pid": "12345", "prefer.serialization": "fastjson2,hessian2",
				"release": "3.2.0", "service-name-mapping": "true", MetaProtocol: "tri"},
		}, true},
		{"group, version, weight", "com.foo.BarService", dubbourltest.DubboGroup, registry.Endpoint{
			Service: "com.foo.BarService", Addr: "10.20.30.40:20880", Weight: 200,
			Metadata: map[string]string{"application": "bar", "group": "g1", "methods": "bar,baz", "revision": "1.0.0", "version": "1.0.0"},
		}, true},
		{"disabled by an operator", "com.alibaba.Svc", dubbourltest.Dubbo26Disabled, registry.Endpoint{
			Service: "com.alibaba.Svc", Addr: "172.16.0.9:20880", Weight: 100,
			Metadata: map[string]string{"application": "legacy", "dubbo": "2.6.2", "generic": "false", "methods": "get", "pid": "777"},
		}, false},
		{"enabled=false", "S", "dubbo://10.0.0.1:1/S?enabled=false", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: 100, Metadata: map[string]string{}}, false},
		{"disabled=false wins over enabled=false", "S", "dubbo://10.0.0.1:1/S?enabled=false&disabled=false", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: 100, Metadata: map[string]string{}}, true},
		{"enabled=TRUE", "S", "dubbo://10.0.0.1:1/S?enabled=TRUE&category=providers", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: 100, Metadata: map[string]string{}}, true},
		{"weight 0 serves, as Dubbo's consumers call it", "S", "dubbo://10.0.0.1:1/S?weight=0", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: 1, Metadata: map[string]string{}}, true},
		{"weight capped", "S", "dubbo://10.0.0.1:1/S?weight=99999", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: registry.MaxWeight, Metadata: map[string]string{}}, true},
		{"path names the service when interface is missing", "S", "rest://h.example:8080/S?x=1", registry.Endpoint{Service: "S", Addr: "h.example:8080", Weight: 100, Metadata: map[string]string{"x": "1"}}, true},
		{"custom path, interface decides", "S", "dubbo://10.0.0.1:1/custom/path?interface=S", registry.Endpoint{Service: "S", Addr: "10.0.0.1:1", Weight: 100, Metadata: map[string]string{}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseProvider(tc.service, url.QueryEscape(tc.url))
			if err != nil {
				t.Fatalf("parseProvider: %v", err)
			}
			if !p.ep.Equal(tc.want) || p.serving != tc.serving {
				t.Errorf("got  %+v serving=%v\nwant %+v serving=%v", p.ep, p.serving, tc.want, tc.serving)
			}
		})
	}
	if p, _ := parseProvider("com.foo.BarService", url.QueryEscape(dubbourltest.DubboGroup)); p.timestamp != 1600000000000 {
		t.Errorf("timestamp = %d", p.timestamp)
	}
}

func TestParseMalformedProviders(t *testing.T) {
	for _, tc := range []struct{ name, service, node string }{
		{"not an encoded URL", "S", "garbage-%zz"},
		{"no scheme", "S", "just-a-name"},
		{"no port", "S", url.QueryEscape("dubbo://10.0.0.1/S?interface=S")},
		{"port 0", "S", url.QueryEscape("dubbo://10.0.0.1:0/S?interface=S")},
		{"unspecified address", "S", url.QueryEscape("dubbo://0.0.0.0:20880/S?interface=S")},
		{"bad host", "S", url.QueryEscape("dubbo://bad_host!:20880/S?interface=S")},
		{"other interface", "S", url.QueryEscape("dubbo://10.0.0.1:20880/S?interface=T")},
		{"other path, no interface", "S", url.QueryEscape("dubbo://10.0.0.1:20880/T")},
		{"bad weight", "S", url.QueryEscape("dubbo://10.0.0.1:20880/S?weight=heavy")},
		{"negative weight", "S", url.QueryEscape("dubbo://10.0.0.1:20880/S?weight=-1")},
	} {
		if p, err := parseProvider(tc.service, tc.node); err == nil {
			t.Errorf("%s: parseProvider(%q) = %+v, want an error", tc.name, tc.node, p)
		}
	}
}

func TestDecodeChildren(t *testing.T) {
	node := func(u string) string { return url.QueryEscape(u) }
	children := []string{
		node("dubbo://10.0.0.2:1/S?interface=S&timestamp=100&v=old"),
		node("dubbo://10.0.0.2:1/S?interface=S&timestamp=200&v=new"), // same address, newer: wins
		node("dubbo://10.0.0.1:1/S?interface=S&timestamp=300&disabled=true"),
		node("dubbo://10.0.0.1:1/S?interface=S&timestamp=50"), // the older, serving one stays
		node("dubbo://10.0.0.3:1/S?interface=S&weight=5"),
		"garbage",
		node("dubbo://10.0.0.4:1/T?interface=T"),
	}
	cache := map[string]decoded{}
	eps, bad := decodeChildren("S", children, cache)
	want := []registry.Endpoint{
		{Service: "S", Addr: "10.0.0.1:1", Weight: 100, Metadata: map[string]string{}},
		{Service: "S", Addr: "10.0.0.2:1", Weight: 100, Metadata: map[string]string{"v": "new"}},
		{Service: "S", Addr: "10.0.0.3:1", Weight: 5, Metadata: map[string]string{}},
	}
	if !registry.EqualSets(eps, want) {
		t.Errorf("endpoints\n got  %v\n want %v", eps, want)
	}
	if len(bad) != 2 || bad["garbage"] == nil || bad[children[6]] == nil {
		t.Errorf("malformed = %v, want the garbage and the other service's node", bad)
	}
	if len(cache) != len(children) {
		t.Errorf("cache has %d entries, want %d", len(cache), len(children))
	}
	// The cache is pruned to the children of the last listing.
	if _, _ = decodeChildren("S", children[4:5], cache); len(cache) != 1 {
		t.Errorf("cache has %d entries after a listing of 1, want 1", len(cache))
	}
}

func TestMetadataKeyMapping(t *testing.T) {
	for _, k := range []string{"version", "side", "weight", "enabled", "detour.md.", "detour.md.side", "detour.mdx", "a"} {
		p := paramKey(k)
		back, ok := metadataKey(p)
		if !ok || back != k {
			t.Errorf("metadataKey(paramKey(%q)=%q) = %q, %v", k, p, back, ok)
		}
	}
	for _, p := range []string{"anyhost", "category", "disabled", "enabled", "interface", "side", "timestamp", "weight"} {
		if _, ok := metadataKey(p); ok {
			t.Errorf("layout parameter %q taken as metadata", p)
		}
	}
}

// TestProviderURLScheme: an endpoint that declares a Dubbo protocol gets
// it as its URL's scheme (a Triple consumer ignores dubbo:// providers);
// any other declared protocol keeps the configured scheme.
func TestProviderURLScheme(t *testing.T) {
	registered := time.UnixMilli(1700000000000)
	for declared, want := range map[string]string{"tri": "tri", "dubbo": "dubbo", "grpc": "dubbo", "": "dubbo"} {
		ep := registry.Endpoint{Service: "S", Addr: "10.0.0.1:20880", Metadata: map[string]string{}}
		if declared != "" {
			ep.Metadata[MetaProtocol] = declared
		}
		u := providerURL(ep, "dubbo", registered)
		if u.Protocol != want {
			t.Errorf("declared %q: scheme %q, want %q", declared, u.Protocol, want)
		}
		back, err := parseProvider("S", u.NodeName())
		if err != nil || back.ep.Metadata[MetaProtocol] != ep.Metadata[MetaProtocol] {
			t.Errorf("declared %q: read back %+v, %v", declared, back.ep, err)
		}
	}
}
