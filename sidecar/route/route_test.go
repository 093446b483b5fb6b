package route

import (
	"net/http"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

func canary() *sidecarpb.Routes {
	return &sidecarpb.Routes{
		Subsets: []*sidecarpb.Subset{{Name: "v1", Labels: map[string]string{"version": "1"}}, {Name: "v2", Labels: map[string]string{"version": "2"}}},
		Split:   []*sidecarpb.WeightedSubset{{Subset: "v1", Weight: 95}, {Subset: "v2", Weight: 5}},
		Rules: []*sidecarpb.RouteRule{{Name: "t", Match: &sidecarpb.RouteMatch{Headers: []*sidecarpb.HeaderMatch{{Name: "x-user", Regex: "u[0-9]+"}}},
			Split: []*sidecarpb.WeightedSubset{{Subset: "v2", Weight: 100}}}},
	}
}

func TestDecide(t *testing.T) {
	tb, err := Compile(canary())
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-User": {"u12"}}
	if d := tb.Decide(h, "/"); d.Subset != "v2" {
		t.Fatalf("%+v", d)
	}
	if d := tb.Decide(http.Header{"X-User": {"u12x"}}, "/"); d.Subset == "" { // anchored: no match, the split
		t.Fatalf("%+v", d)
	}
	var nilT *Table
	if nilT.Choose(h, "/") != "" || nilT.Stats().Unmatched != 0 {
		t.Fatal("nil table")
	}
	if s := tb.Stats(); s.Rules[0].Matched != 1 || s.Unmatched != 1 {
		t.Fatalf("%+v", s)
	}
}

// BenchmarkDecide: what a request pays for a 95/5 split with one regex
// rule that does not match.
func BenchmarkDecide(b *testing.B) {
	tb, _ := Compile(canary())
	h := http.Header{"User-Agent": {"x"}, "Accept": {"*/*"}}
	b.ReportAllocs()
	for b.Loop() {
		tb.Decide(h, "/hello")
	}
}
