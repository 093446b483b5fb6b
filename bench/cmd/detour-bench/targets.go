package main

import (
	"fmt"

	"github.com/detourmesh/detour/bench/internal/report"
)

// targets checks issue 18's goals against this run's figures, in every
// configuration: single hop against the peers, ratios within the run.
func (r *reportData) targets() string {
	t := report.Table{Head: []string{"target", "config", "measured", "met"}}
	for _, d := range r.data {
		d.addTargets(&t)
	}
	if len(r.data) > 0 {
		one := r.data[0].find(oneHopRow)
		rest := float64(one.RSSRest) / (1 << 20)
		t.Add("sidecar memory at rest < 30 MB", r.data[0].lay.name(), fmt.Sprintf("%.1f MiB (host B's sidecar, 4 services)", rest), verdict(one.RSSRest > 0, one.RSSRest < 30e6))
	}
	for _, j := range r.jobs {
		for _, b := range j.Results {
			if b.Name == "Fallback" {
				if v, ok := b.Get("p99-ms"); ok {
					t.Add("fallback p99 ≤ 1 s", "–", fmt.Sprintf("%.1f ms over %d kills", v, b.N), verdict(true, v <= 1000))
				}
			}
		}
	}
	return t.String()
}

// verdict is "yes", "**no**", or "–" when the figures are missing.
func verdict(measured, ok bool) string {
	switch {
	case !measured:
		return "–"
	case ok:
		return "yes"
	}
	return "**no**"
}

// ratio is a/b and whether both were measured.
func ratio(a, b float64) (float64, bool) {
	if a <= 0 || b <= 0 {
		return 0, false
	}
	return a / b, true
}

func (d *dataPath) addTargets(t *report.Table) {
	cfg := d.lay.name()
	one, ngx, hap := d.find(oneHopRow), d.find(nginxRow), d.find(haproxyRow)
	atLeast := func(what string, runs, base []run, peer string, goal float64) {
		v, ok := ratio(median(runs, rate), median(base, rate))
		t.Add(fmt.Sprintf("%s ≥ %.1f× %s", what, goal, peer), cfg,
			fmt.Sprintf("%.2f× (%s vs %s per second)", v, report.Rate(median(runs, rate)), report.Rate(median(base, rate))), verdict(ok, v >= goal))
		c, ok := ratio(perCPUSecond(runs), perCPUSecond(base))
		t.Add("(the same, per proxy CPU-second)", cfg,
			fmt.Sprintf("%.2f× (%s vs %s per CPU-second)", c, report.Rate(perCPUSecond(runs)), report.Rate(perCPUSecond(base))), verdict(ok, c >= goal))
	}
	tail := func(what string, s scenario) {
		peer := d.betterPeerP99(s)
		v, ok := ratio(median(s(one), p99), peer)
		t.Add(what+" p99 ≤ 1.5× the better peer's", cfg,
			fmt.Sprintf("%.2f× (%s ms vs %s ms)", v, dur(median(s(one), p99)), dur(peer)), verdict(ok, v <= 1.5))
	}
	atLeast("single-hop gRPC unary", one.Unary, hap.Unary, "haproxy h2", 1)
	tail("single-hop gRPC unary", unaryRuns)
	// The goal for HTTP/1.1 at several cores is 0.9× nginx.
	httpGoal := 1.0
	if d.lay.Cores > 1 {
		httpGoal = 0.9
	}
	atLeast("single-hop HTTP/1.1", one.HTTP, ngx.HTTP, "nginx http", httpGoal)
	tail("single-hop HTTP/1.1", httpRuns)
	atLeast("single-hop L4 (HTTP over TCP)", one.L4, ngx.L4, "nginx stream", 1)
	b, ok := ratio(median(one.Bulk, rate), median(ngx.Bulk, rate))
	t.Add("single-hop L4 bulk ≥ 1.0× nginx stream", cfg, fmt.Sprintf("%.2f× (%s vs %s Gbit/s)", b, gbit(median(one.Bulk, rate)), gbit(median(ngx.Bulk, rate))), verdict(ok, b >= 1))
	tail("single-hop L4", l4Runs)
}
