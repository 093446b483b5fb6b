package iperf

import "testing"

func TestParse(t *testing.T) {
	bps, err := Parse([]byte(`{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":2e10},"sum_received":{"bits_per_second":1.84e10}}}`))
	if err != nil || bps != 1.84e10 {
		t.Fatalf("Parse = %v, %v; want 1.84e10", bps, err)
	}
	for _, bad := range []string{
		`{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`,
		`{"end":{}}`,
		`{"end":{"sum_received":{"bits_per_second":0}}}`,
		`not json`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s): no error", bad)
		}
	}
}
