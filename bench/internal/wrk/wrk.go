// Package wrk runs the wrk HTTP load generator and reads its report.
package wrk

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Result is what one wrk run reports.
type Result struct {
	Requests  int64
	Duration  time.Duration
	RPS       float64
	P50, P99  time.Duration
	Errors    int64  // socket errors of every kind
	ErrorKind string // wrk's line, "connect 0, read 0, write 0, timeout 32", when there were any
	Non2xx3xx int64
}

// Options are the load generator's settings, the same for every row.
type Options struct {
	Threads, Conns int
	Duration       time.Duration
	CPU            string // taskset CPU list; empty: not pinned
}

// Args is wrk's command line for url.
func (o Options) Args(url string) []string {
	args := []string{"wrk", "-t" + strconv.Itoa(o.Threads), "-c" + strconv.Itoa(o.Conns),
		"-d" + strconv.Itoa(int(o.Duration.Seconds())) + "s", "--latency", url}
	if o.CPU != "" {
		args = append([]string{"taskset", "-c", o.CPU}, args...)
	}
	return args
}

// Run runs wrk against url.
func Run(ctx context.Context, o Options, url string) (Result, error) {
	args := o.Args(url)
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	r, err := Parse(string(out))
	if err != nil {
		return Result{}, fmt.Errorf("wrk %s: %w\n%s", url, err, out)
	}
	return r, nil
}

// Parse reads wrk's text report (run with --latency).
func Parse(out string) (Result, error) {
	var r Result
	var haveRPS, haveP50, haveP99, haveReqs bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("requests/sec %q: %w", f[1], err)
			}
			r.RPS, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := ParseDuration(f[1])
			if err != nil {
				return r, err
			}
			if f[0] == "50%" {
				r.P50, haveP50 = d, true
			} else {
				r.P99, haveP99 = d, true
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("requests %q: %w", f[0], err)
			}
			d, err := ParseDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, err
			}
			r.Requests, r.Duration, haveReqs = n, d, true
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			r.ErrorKind = strings.Join(f[2:], " ")
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("socket errors: %w", err)
				}
				r.Errors += n
			}
		case len(f) == 5 && f[0] == "Non-2xx":
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("non-2xx: %w", err)
			}
			r.Non2xx3xx = n
		}
	}
	if !haveRPS || !haveP50 || !haveP99 || !haveReqs {
		return r, fmt.Errorf("wrk report incomplete (run with --latency?)")
	}
	return r, nil
}

// ParseDuration reads wrk's durations: "345.00us", "1.26ms", "2.00s",
// "1.50m".
func ParseDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || !(v >= 0 && v <= 1e6) { // also refuses NaN
				return 0, fmt.Errorf("wrk duration %q: not a number of %s", s, u.suffix)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("wrk duration %q: unknown unit", s)
}
