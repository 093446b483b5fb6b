// Package iperf runs an iperf3 client and reads its JSON report: bulk TCP
// throughput through whatever sits between client and server.
package iperf

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"time"
)

// Run sends for d to an iperf3 server at host:port and returns the
// received throughput in bits per second. cpu, if set, pins the client.
func Run(ctx context.Context, host string, port int, d time.Duration, cpu string) (float64, error) {
	args := []string{"iperf3", "-c", host, "-p", strconv.Itoa(port), "-t", strconv.Itoa(int(d.Seconds())), "-J"}
	if cpu != "" {
		args = append([]string{"taskset", "-c", cpu}, args...)
	}
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		// iperf3 -J reports its own errors inside the JSON.
		_, why := Parse(out)
		return 0, fmt.Errorf("iperf3 %s:%d: %w (%v)", host, port, err, why)
	}
	return Parse(out)
}

// Parse reads iperf3's -J report.
func Parse(b []byte) (float64, error) {
	var rep struct {
		Error string `json:"error"`
		End   struct {
			SumReceived *struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return 0, fmt.Errorf("iperf3 report: %w", err)
	}
	if rep.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", rep.Error)
	}
	if rep.End.SumReceived == nil || !(rep.End.SumReceived.BitsPerSecond > 0) {
		return 0, fmt.Errorf("iperf3 report: no received throughput")
	}
	return rep.End.SumReceived.BitsPerSecond, nil
}
