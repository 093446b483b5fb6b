package dataplane

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// FuzzValidate: any snapshot bytes the agent could send are either
// rejected or valid; validation never panics, and a valid snapshot's
// listeners are where they must be.
func FuzzValidate(f *testing.F) {
	seed := egressSnap(1, "127.0.0.2:30001", clusterOf("echo", 0, meshEP("127.0.0.3", 20001, 8080, 7703)))
	seed.Ingress = []*sidecarpb.IngressListener{{Service: "s", Listen: "127.0.0.2:20002", Target: "127.0.0.1:8080"}}
	b, _ := proto.Marshal(seed)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s sidecarpb.Snapshot
		if proto.Unmarshal(b, &s) != nil {
			return
		}
		if validate(&s, "") != nil {
			return
		}
		for _, l := range s.GetEgress() {
			if ap, _ := parseAddrPort(l.GetListen()); !ap.Addr().IsLoopback() {
				t.Fatalf("egress on %s accepted", l.GetListen())
			}
		}
		for _, l := range s.GetIngress() {
			ap, _ := parseAddrPort(l.GetTarget())
			if h, _ := parseAddrPort(l.GetListen()); !ap.Addr().IsLoopback() && ap.Addr() != h.Addr() {
				t.Fatalf("ingress target %s accepted", l.GetTarget())
			}
		}
	})
}

func FuzzParseAddrPort(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1]:0", "x:1", "1.2.3.4:99999", ":80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parseAddrPort(s)
		if err == nil && !ap.Addr().IsValid() {
			t.Fatalf("%q: invalid address accepted", s)
		}
	})
}
