package dubbourl

import (
	"maps"
	"net/url"
	"strings"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl/dubbourltest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want URL
	}{
		{"dubbo 2.7", dubbourltest.Dubbo27, URL{Protocol: "dubbo", Host: "192.168.1.7", Port: 20880, Path: "org.apache.dubbo.demo.DemoService", Params: map[string]string{
			"anyhost": "true", "application": "dubbo-demo-api-provider", "default": "true", "deprecated": "false", "dubbo": "2.0.2",
			"dynamic": "true", "generic": "false", "interface": "org.apache.dubbo.demo.DemoService", "metadata-type": "remote",
			"methods": "sayHello,sayHelloAsync", "pid": "45271", "release": "", "side": "provider", "timestamp": "1610262555945",
		}}},
		{"ipv6 in brackets", "tri://[fe80::1%25eth0]:50051/S?a=1", URL{Protocol: "tri", Host: "fe80::1%25eth0", Port: 50051, Path: "S", Params: map[string]string{"a": "1"}}},
		{"ipv6 without brackets", "dubbo://2001:db8::7:20880/S", URL{Protocol: "dubbo", Host: "2001:db8::7", Port: 20880, Path: "S", Params: map[string]string{}}},
		{"user info dropped", "dubbo://admin:secret@10.0.0.1:20880/S?x=y", URL{Protocol: "dubbo", Host: "10.0.0.1", Port: 20880, Path: "S", Params: map[string]string{"x": "y"}}},
		{"no path", "rest://h.example:8080?a=b", URL{Protocol: "rest", Host: "h.example", Port: 8080, Params: map[string]string{"a": "b"}}},
		{"key without value, empty pairs, later duplicate wins", "dubbo://h:1/S?flag&&a=1&a=2&=orphan", URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "S", Params: map[string]string{"flag": "", "a": "2"}}},
		{"value with '=' and raw unicode", "dubbo://h:1/S?expr=a=b&name=grüße 服务", URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "S", Params: map[string]string{"expr": "a=b", "name": "grüße 服务"}}},
		{"escapes decoded, stray % and + kept", "dubbo://h:1/S?v=a%26b%3Dc%25d&pct=100%&plus=a+b&bad=%zz%4", URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "S", Params: map[string]string{"v": "a&b=c%d", "pct": "100%", "plus": "a+b", "bad": "%zz%4"}}},
		{"leading zeros in port", "dubbo://h:020880/S", URL{Protocol: "dubbo", Host: "h", Port: 20880, Path: "S", Params: map[string]string{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if !sameURL(got, tc.want) {
				t.Errorf("Parse(%q)\n got  %+v\n want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"",
		"192.168.1.7:20880/S",
		"://h:1/S",
		"1dubbo://h:1/S",
		"dub bo://h:1/S",
		"dubbo://h/S",
		"dubbo://h:/S",
		"dubbo://:20880/S",
		"dubbo://h:0/S",
		"dubbo://h:65536/S",
		"dubbo://h:-1/S",
		"dubbo://h:http/S",
		"dubbo://[::1/S",
		"dubbo://[::1]/S",
		"dubbo://[::1]x:1/S",
		"dubbo://a]b:1/S",
	} {
		if u, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, u)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct {
		name string
		in   URL
		want string
	}{
		{"params sorted", URL{Protocol: "dubbo", Host: "10.0.0.1", Port: 20880, Path: "S", Params: map[string]string{"z": "1", "a": "2", "m": "x,y"}},
			"dubbo://10.0.0.1:20880/S?a=2&m=x,y&z=1"},
		{"no params", URL{Protocol: "tri", Host: "h", Port: 1, Path: "S"}, "tri://h:1/S"},
		{"ipv6 bracketed", URL{Protocol: "tri", Host: "::1", Port: 1, Path: "S"}, "tri://[::1]:1/S"},
		{"only what breaks readers is escaped", URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "S", Params: map[string]string{
			"v": "a=b&c d?e#f/g%h+i;j,k:l@m ü\x01", "k=&": "x",
		}}, "dubbo://h:1/S?k%3D%26=x&v=a=b%26c d?e%23f/g%25h%2Bi%3Bj,k:l@m ü%01"},
		{"path escaped", URL{Protocol: "dubbo", Host: "h", Port: 1, Path: "a?b%c"}, "dubbo://h:1/a%3Fb%25c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Errorf("String()\n got  %q\n want %q", got, tc.want)
			}
			back, err := Parse(tc.in.String())
			if err != nil || !sameURL(back, tc.in) {
				t.Errorf("parse(String()) = %+v, %v; want %+v", back, err, tc.in)
			}
		})
	}
}

// TestNodeNameEncoding: a node name is the whole URL encoded once, as
// Java's URLEncoder and Go's url.QueryEscape do, and both decode.
func TestNodeNameEncoding(t *testing.T) {
	u, err := Parse(dubbourltest.Dubbo27)
	if err != nil {
		t.Fatal(err)
	}
	name := u.NodeName()
	if strings.ContainsAny(name, "/?&=:") {
		t.Errorf("node name %q holds URL syntax unescaped", name)
	}
	// Dubbo's own node name for this URL (URL.encode = URLEncoder.encode).
	javaName := strings.NewReplacer(":", "%3A", "/", "%2F", "?", "%3F", "=", "%3D", "&", "%26", ",", "%2C").Replace(dubbourltest.Dubbo27)
	if name != javaName {
		t.Errorf("node name\n got  %s\n want %s (Dubbo's)", name, javaName)
	}
	back, err := ParseNodeName(name)
	if err != nil || !sameURL(back, u) {
		t.Errorf("ParseNodeName = %+v, %v; want %+v", back, err, u)
	}
	if _, err := ParseNodeName("dubbo%3A%2F%2Fh%3A1%2FS%3Fa%3D%zz"); err == nil {
		t.Error("ParseNodeName accepted a bad escape in the node name")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		dubbourltest.Dubbo27, dubbourltest.Dubbo3Tri, dubbourltest.DubboGroup, dubbourltest.DubboGo, dubbourltest.Dubbo26Disabled,
		"dubbo://10.0.0.1:20880/S?anyhost=false&interface=S&side=provider&timestamp=1&weight=100&detour.md.side=x&spaces=a b  c&url-chars=a=b%26c=d?e%23f/g%2520h%2Bi%3Bj,k",
		"tri://[::1]:50051/S", "dubbo://2001:db8::7:20880/S", "dubbo://u:p@h:1/S?flag&&=x&a=%zz",
		"dubbo://h:1/S?k=%", "dubbo://h:1/a%3Fb?%3D=%26", "x://h:1", "dubbo://h:0/S", "",
	} {
		f.Add(s)
		f.Add(url.QueryEscape(s))
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Node names too: decoding never panics, and a decoded name parses
		// as its URL does.
		if dec, err := url.QueryUnescape(s); err == nil {
			nu, nerr := ParseNodeName(s)
			u, uerr := Parse(dec)
			if (nerr == nil) != (uerr == nil) || nerr == nil && !sameURL(nu, u) {
				t.Fatalf("ParseNodeName(%q) = %+v, %v; Parse(decoded) = %+v, %v", s, nu, nerr, u, uerr)
			}
		}
		u, err := Parse(s)
		if err != nil {
			return
		}
		out := u.String()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("parse(%q) ok, but its String %q does not parse: %v", s, out, err)
		}
		if !sameURL(again, u) {
			t.Fatalf("round trip of %q via %q:\n got  %+v\n want %+v", s, out, again, u)
		}
		if out2 := again.String(); out2 != out {
			t.Fatalf("String not stable: %q then %q", out, out2)
		}
		back, err := ParseNodeName(u.NodeName())
		if err != nil || !sameURL(back, u) {
			t.Fatalf("node name round trip of %q: %+v, %v", s, back, err)
		}
	})
}

func sameURL(a, b URL) bool {
	return a.Protocol == b.Protocol && a.Host == b.Host && a.Port == b.Port && a.Path == b.Path &&
		len(a.Params) == len(b.Params) && maps.Equal(a.Params, b.Params)
}
