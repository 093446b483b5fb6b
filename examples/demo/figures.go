package main

import (
	"os"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// The client's counts and the sidecars' are read while calls go on at
// rate a second, so read one after the other they disagree by the calls
// in between (the demo once printed "199 ok" beside "200 requests"). A
// moment when they describe the same calls is found, not assumed: the
// sidecars' counts held still around a report the client gave on demand
// (SIGUSR1) with no call in flight.

// clientLine is an example client's report line (examples/internal/load).
var clientLine = regexp.MustCompile(`(?m)^greeter-client: ok=(\d+) failed=(\d+) mesh=(true|false) via=(\S*) from=(\S*) inflight=(\d+)$`)

// clientReport is one report line of the greeter client.
type clientReport struct {
	ok, failed, inflight int
	mesh                 bool
	via, from            string
}

// reportLines returns the client's report lines so far.
func (d *demo) reportLines() ([]clientReport, error) {
	b, err := os.ReadFile(d.client.Log)
	if err != nil {
		return nil, err
	}
	return parseReports(b), nil
}

// parseReports finds the report lines in a client's output.
func parseReports(b []byte) []clientReport {
	var rs []clientReport
	for _, m := range clientLine.FindAllSubmatch(b, -1) {
		ok, _ := strconv.Atoi(string(m[1]))
		failed, _ := strconv.Atoi(string(m[2]))
		inflight, _ := strconv.Atoi(string(m[6]))
		rs = append(rs, clientReport{ok: ok, failed: failed, inflight: inflight, mesh: string(m[3]) == "true", via: string(m[4]), from: string(m[5])})
	}
	return rs
}

// reportNow asks the client for a report and returns it (or a later one).
func (d *demo) reportNow() (clientReport, error) {
	before, err := d.reportLines()
	if err != nil {
		return clientReport{}, err
	}
	d.client.Signal(syscall.SIGUSR1)
	var rs []clientReport
	err = testbed.Poll(d.ctx, 5*time.Second, "the client's report", func() bool {
		rs, err = d.reportLines()
		return err == nil && len(rs) > len(before)
	})
	if err != nil {
		return clientReport{}, err
	}
	return rs[len(rs)-1], nil
}

// meshCounts are the greeter's requests as the sidecars count them.
type meshCounts struct {
	egress  uint64 // on A's egress listener
	toB     uint64 // sent by A to B's ingress
	ingress uint64 // on B's ingress listener
}

func (d *demo) meshCounts(bIngress string) (meshCounts, error) {
	sa, err := d.a.SidecarStats(d.ctx)
	if err != nil {
		return meshCounts{}, err
	}
	sb, err := d.b.SidecarStats(d.ctx)
	if err != nil {
		return meshCounts{}, err
	}
	return meshCounts{
		egress:  sa.Listener("egress", service).Requests,
		toB:     sa.Endpoint(service, bIngress).Requests,
		ingress: sb.Listener("ingress", service).Requests,
	}, nil
}

// figures is the client's report and the sidecars' counts at one moment.
type figures struct {
	client clientReport
	mesh   meshCounts
}

// settled finds a moment when nothing was in flight: the sidecars' counts
// the same before and after a report of the client's with inflight=0.
// Every call the report counts had then reached both sidecars, and no
// other call had.
func (d *demo) settled(bIngress string) (figures, error) {
	var f figures
	var err error
	perr := testbed.Poll(d.ctx, 20*time.Second, "a moment with no call in flight", func() bool {
		var before, after meshCounts
		if before, err = d.meshCounts(bIngress); err != nil {
			return false
		}
		if f.client, err = d.reportNow(); err != nil || f.client.inflight != 0 {
			return false
		}
		if after, err = d.meshCounts(bIngress); err != nil {
			return false
		}
		f.mesh = after
		return before == after
	})
	if perr != nil && err != nil {
		return f, err
	}
	return f, perr
}
