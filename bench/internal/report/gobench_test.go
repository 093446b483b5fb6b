package report

import "testing"

const out = `goos: linux
goarch: amd64
pkg: github.com/detourmesh/detour/naming-agent/e2e
cpu: AMD EPYC 7B13
BenchmarkFallback-2   	     200	         0 ns/op	         5.800 p50-ms	        12.50 p99-ms	        12.80 max-ms	        80.00 subscribers
BenchmarkScale/endpoints=1000-2         	      10	  12.3 rss-MB	  450 startup-cache-ms
BenchmarkFallback logs this line too
PASS
ok  	github.com/detourmesh/detour/naming-agent/e2e	3.1s
`

func TestParseGoBench(t *testing.T) {
	bs, err := ParseGoBench(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("got %d benchmarks, want 2: %+v", len(bs), bs)
	}
	if bs[0].Name != "Fallback" || bs[0].N != 200 || bs[0].Pkg != "github.com/detourmesh/detour/naming-agent/e2e" {
		t.Fatalf("first = %+v", bs[0])
	}
	if v, ok := bs[0].Get("p99-ms"); !ok || v != 12.5 {
		t.Fatalf("p99-ms = %v, %v", v, ok)
	}
	if _, ok := bs[0].Get("nope"); ok {
		t.Fatal("missing unit found")
	}
	if bs[1].Name != "Scale/endpoints=1000" {
		t.Fatalf("second name = %q", bs[1].Name)
	}
}

func TestParseGoBenchBadLine(t *testing.T) {
	if _, err := ParseGoBench("BenchmarkX-2 10 1.5 ms extra\n"); err == nil {
		t.Fatal("unpaired value/unit: no error")
	}
	if _, err := ParseGoBench("BenchmarkX-2 10 abc ms\n"); err == nil {
		t.Fatal("non-number value: no error")
	}
}

func FuzzParseGoBench(f *testing.F) {
	f.Add(out)
	f.Fuzz(func(t *testing.T, s string) {
		bs, err := ParseGoBench(s)
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Name == "" && len(b.Metrics) > 0 && b.N < 0 {
				t.Fatalf("odd benchmark %+v", b)
			}
		}
	})
}
