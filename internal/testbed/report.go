package testbed

import (
	"os"
	"regexp"
	"strconv"
)

// Report is one line of an example client's output (examples/internal/load).
type Report struct {
	OK, Failed int
	Mesh       bool
	Via, From  string
	// Inflight is the calls sent and not yet answered, when the client
	// reports it (the dubbo-go consumer does).
	Inflight int
	Final    bool // the "total" line printed on exit
}

var (
	reportLine  = regexp.MustCompile(`[a-z-]+-client: ok=(\d+) failed=(\d+) mesh=(true|false) via=(\S*) from=(\S*)(?: inflight=(\d+))?`)
	reportTotal = regexp.MustCompile(`[a-z-]+-client: total ok=(\d+) failed=(\d+)`)
)

// LastReport reads an example client's log and returns its last report: the total line if it has exited, else the last periodic line.
// The zero value means no report yet.
func LastReport(logPath string) (Report, error) {
	out, err := os.ReadFile(logPath)
	if err != nil {
		return Report{}, err
	}
	if m := reportTotal.FindSubmatch(out); m != nil {
		ok, _ := strconv.Atoi(string(m[1]))
		failed, _ := strconv.Atoi(string(m[2]))
		return Report{OK: ok, Failed: failed, Final: true}, nil
	}
	all := reportLine.FindAllSubmatch(out, -1)
	if len(all) == 0 {
		return Report{}, nil
	}
	m := all[len(all)-1]
	ok, _ := strconv.Atoi(string(m[1]))
	failed, _ := strconv.Atoi(string(m[2]))
	inflight, _ := strconv.Atoi(string(m[6]))
	return Report{OK: ok, Failed: failed, Mesh: string(m[3]) == "true", Via: string(m[4]), From: string(m[5]), Inflight: inflight}, nil
}
