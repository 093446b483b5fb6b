package testbed

import (
	"os"
	"regexp"
	"strconv"
)

// GreeterReport is one line of the example greeter-client's output.
type GreeterReport struct {
	OK, Failed int
	Mesh       bool
	Via, From  string
	Final      bool // the "total" line printed on exit
}

var (
	greeterLine  = regexp.MustCompile(`greeter-client: ok=(\d+) failed=(\d+) mesh=(true|false) via=(\S*) from=(\S*)`)
	greeterTotal = regexp.MustCompile(`greeter-client: total ok=(\d+) failed=(\d+)`)
)

// LastGreeterReport reads the greeter client's log and returns its last
// report: the total line if it has exited, else the last periodic line.
// The zero value means no report yet.
func LastGreeterReport(logPath string) (GreeterReport, error) {
	out, err := os.ReadFile(logPath)
	if err != nil {
		return GreeterReport{}, err
	}
	if m := greeterTotal.FindSubmatch(out); m != nil {
		ok, _ := strconv.Atoi(string(m[1]))
		failed, _ := strconv.Atoi(string(m[2]))
		return GreeterReport{OK: ok, Failed: failed, Final: true}, nil
	}
	all := greeterLine.FindAllSubmatch(out, -1)
	if len(all) == 0 {
		return GreeterReport{}, nil
	}
	m := all[len(all)-1]
	ok, _ := strconv.Atoi(string(m[1]))
	failed, _ := strconv.Atoi(string(m[2]))
	return GreeterReport{OK: ok, Failed: failed, Mesh: string(m[3]) == "true", Via: string(m[4]), From: string(m[5])}, nil
}
