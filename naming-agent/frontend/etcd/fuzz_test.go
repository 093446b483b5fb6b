package etcd

import (
	"strconv"
	"strings"
	"testing"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// FuzzLayouts: apps' keys and values as outside input. No panic; a
// registration has a service and a valid port, and what it renders parses
// back in the same layout to the same address.
func FuzzLayouts(f *testing.F) {
	f.Add("greeter/127.0.0.1:7001", []byte(`{"Op":0,"Addr":"127.0.0.1:7001","Metadata":{"a":"b","n":1}}`), int64(7))
	f.Add("greet.rpc/7587", []byte("127.0.0.1:8080"), int64(7587))
	f.Add("/microservices/hello/abc", []byte(`{"id":"abc","name":"hello","version":"v1","metadata":{"x":"y"},"endpoints":["http://1.2.3.4:8000","grpc://1.2.3.4:9000?isSecure=false"]}`), int64(0))
	f.Add("kitex/registry-etcd/echo/1.2.3.4:8888", []byte(`{"network":"tcp","address":"1.2.3.4:8888","weight":10,"tags":{"k":"v"}}`), int64(0))
	f.Add("/", []byte("null"), int64(0))
	var ls []layout
	for _, l := range Default().Layouts {
		ls = append(ls, layout{kind: l.Kind, prefix: l.Prefix})
	}
	f.Fuzz(func(t *testing.T, key string, value []byte, lease int64) {
		for _, l := range ls {
			r, err := l.parse(key, value, lease)
			if err != nil {
				continue
			}
			if r.service == "" || r.port < 1 || r.port > 65535 || r.host == "" {
				t.Fatalf("%s: bad registration %+v from %q", l.kind, r, key)
			}
			rs := readSpace{kind: l.kind, prefix: l.prefix, service: r.service}
			addr := r.host + ":" + strconv.Itoa(r.port)
			if strings.Contains(r.host, ":") {
				addr = "[" + r.host + "]:" + strconv.Itoa(r.port)
			}
			out := render(rs, frontend.View{Known: true, Instances: []frontend.Instance{{Addr: addr, Weight: r.weight, Metadata: r.metadata}}})
			if len(out) != 1 {
				t.Fatalf("rendered %v", out)
			}
			for k, v := range out {
				back, err := l.parse(k, v, lease)
				if err != nil || back.port != r.port || back.service != r.service {
					t.Fatalf("%s: %q=%q rendered as %q=%q, parsed back %+v %v", l.kind, key, value, k, v, back, err)
				}
			}
		}
		readOf(ls, "detour/etcdfe", key, string(value))
		readOf(ls, "detour/etcdfe", key, prefixEnd(key))
	})
}
