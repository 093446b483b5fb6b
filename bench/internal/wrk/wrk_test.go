package wrk

import (
	"strings"
	"testing"
	"time"
)

// A report as wrk 4.1 (Debian bookworm) prints it.
const sample = `Running 10s test @ http://127.0.0.1:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   361.17us  104.75us   3.39ms   75.95%
    Req/Sec    88.13k     3.21k   91.43k    81.00%
  Latency Distribution
     50%  345.00us
     75%  398.00us
     90%  479.00us
     99%    1.12ms
  877005 requests in 10.00s, 133.82MB read
  Socket errors: connect 1, read 2, write 0, timeout 5
  Non-2xx or 3xx responses: 12
Requests/sec:  87693.77
Transfer/sec:     13.38MB
`

func TestParse(t *testing.T) {
	r, err := Parse(sample)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Requests: 877005, Duration: 10 * time.Second, RPS: 87693.77,
		P50: 345 * time.Microsecond, P99: 1120 * time.Microsecond, Errors: 8, ErrorKind: "connect 1, read 2, write 0, timeout 5", Non2xx3xx: 12}
	if r != want {
		t.Fatalf("Parse = %+v\nwant    %+v", r, want)
	}
}

func TestParseIncomplete(t *testing.T) {
	// Without --latency there is no distribution: an error, not zeros.
	cut := strings.Replace(sample, "     99%    1.12ms\n", "", 1)
	if _, err := Parse(cut); err == nil {
		t.Fatal("report without p99 parsed")
	}
	if _, err := Parse("unable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Fatal("wrk's connect failure parsed")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"345.00us": 345 * time.Microsecond, "1.26ms": 1260 * time.Microsecond,
		"2.00s": 2 * time.Second, "1.50m": 90 * time.Second,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ms", "12", "-1ms", "1.2xs", "NaNus"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q): no error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err == nil && (r.P50 < 0 || r.P99 < 0 || r.Duration < 0) {
			t.Fatalf("negative duration accepted: %+v", r)
		}
	})
}
