// Package report turns benchmark results into docs/BENCHMARKS.md: it reads
// `go test -bench` output and renders Markdown tables.
package report

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Bench is one line of `go test -bench` output.
type Bench struct {
	Pkg     string // the import path go test printed before it ("pkg: ...")
	Name    string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	N       int64
	Metrics []Metric // in the order printed
}

// Metric is one value/unit pair of a benchmark line.
type Metric struct {
	Value float64
	Unit  string
}

// Get returns the value of unit and whether the line has it.
func (b Bench) Get(unit string) (float64, bool) {
	for _, m := range b.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// ParseGoBench reads the benchmark lines of `go test -bench` output and
// ignores everything else (PASS, ok, log lines).
func ParseGoBench(out string) ([]Bench, error) {
	var res []Bench
	var pkg string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue // a log line that starts with a benchmark's name
		}
		if len(f)%2 != 0 {
			return nil, fmt.Errorf("benchmark line %q: values and units do not pair", sc.Text())
		}
		b := Bench{Pkg: pkg, Name: trimProcs(strings.TrimPrefix(f[0], "Benchmark")), N: n}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("benchmark line %q: %w", sc.Text(), err)
			}
			b.Metrics = append(b.Metrics, Metric{v, f[i+1]})
		}
		res = append(res, b)
	}
	return res, sc.Err()
}

// trimProcs drops the "-2" that go test appends for GOMAXPROCS.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}
