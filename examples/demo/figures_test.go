package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/detourmesh/detour/examples/internal/load"
)

// idle issues nothing.
type idle struct{}

func (idle) Issue(int) bool { return true }
func (idle) Wait()          {}

// TestReportsParse: the demo reads the report lines examples/internal/load
// writes, in flight count included (without it the demo cannot tell a
// moment when the client's counts and the sidecars' agree).
func TestReportsParse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run reports once and gives its total at once
	var out bytes.Buffer
	var n load.Counts
	load.Run(ctx, &out, "greeter-client", 50, &n, &load.Follower{}, idle{})
	rs := parseReports(out.Bytes())
	want := clientReport{ok: 0, failed: 0, inflight: 0, mesh: false, via: "-", from: ""}
	if len(rs) != 1 || rs[0] != want {
		t.Fatalf("parsed %+v from %q, want [%+v]", rs, out.String(), want)
	}
}
