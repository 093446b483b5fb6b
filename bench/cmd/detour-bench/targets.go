package main

import (
	"fmt"

	"github.com/detourmesh/detour/bench/internal/report"
)

// targets checks the targets against this run's figures.
func (r *reportData) targets() string {
	t := report.Table{Head: []string{"target", "measured", "met"}}
	one, ngx := r.find("detour single hop"), r.find("nginx")
	verdict := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	l4 := median(one.L4, rate) / median(ngx.L4, rate)
	bulk := median(one.Bulk, rate) / median(ngx.Bulk, rate)
	t.Add("single-hop L4 ≥ nginx stream", fmt.Sprintf("%.2f× req/s (HTTP over TCP), %.2f× bulk throughput", l4, bulk), verdict(l4 >= 1 && bulk >= 1))
	h := median(one.HTTP, rate) / median(ngx.HTTP, rate)
	t.Add("single-hop HTTP/1.1 ≥ 0.8× nginx http", fmt.Sprintf("%.2f×", h), verdict(h >= 0.8))
	if eff := perCPUSecond(one.HTTP) / perCPUSecond(ngx.HTTP); eff > 0 {
		t.Add("(the same, per proxy CPU-second)", fmt.Sprintf("%.2f× (%s vs %s req per CPU-second)", eff,
			report.Rate(perCPUSecond(one.HTTP)), report.Rate(perCPUSecond(ngx.HTTP))), verdict(eff >= 0.8))
	}
	p := median(one.HTTP, p99) / median(ngx.HTTP, p99)
	t.Add("single-hop HTTP/1.1 p99 ≤ 1.5× nginx's", fmt.Sprintf("%.2f× (%s ms vs %s ms)", p, dur(median(one.HTTP, p99)), dur(median(ngx.HTTP, p99))), verdict(p <= 1.5))
	rest := float64(one.RSSRest) / (1 << 20)
	t.Add("sidecar memory at rest < 30 MB", fmt.Sprintf("%.1f MiB (host B's sidecar, 4 services)", rest), verdict(one.RSSRest < 30e6))
	for _, j := range r.jobs {
		for _, b := range j.Results {
			if b.Name == "Fallback" {
				if v, ok := b.Get("p99-ms"); ok {
					t.Add("fallback p99 ≤ 1 s", fmt.Sprintf("%.1f ms over %d kills", v, b.N), verdict(v <= 1000))
				}
			}
		}
	}
	return t.String()
}
