// Package procstat reads a process tree's memory and CPU time from /proc,
// so every process is measured the same way whatever it is written in
// (proxies in the bench rig, the JVM of ZooKeeper beside the agent).
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ: the unit of utime and stime in /proc/PID/stat. It
// is 100 on every Linux architecture Go supports.
const clockTick = 100

// Tree lists pid and its descendants (nginx's master and workers, say).
func Tree(pid int) []int {
	parents := map[int][]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		child, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if ppid, ok := ppidOf(child); ok {
			parents[ppid] = append(parents[ppid], child)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, parents[out[i]]...)
	}
	return out
}

// RSS is the summed resident set size of pids, in bytes.
func RSS(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		kb, err := statusField(pid, "VmRSS:")
		if err != nil {
			return 0, err
		}
		sum += kb * 1024
	}
	return sum, nil
}

// CPU is the summed user+system CPU time of pids.
func CPU(pids []int) (time.Duration, error) {
	var ticks int64
	for _, pid := range pids {
		f, err := statFields(pid)
		if err != nil {
			return 0, err
		}
		// Fields after the command: state is [0], utime [11], stime [12].
		for _, i := range []int{11, 12} {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("procstat: pid %d: %w", pid, err)
			}
			ticks += n
		}
	}
	return time.Duration(ticks) * time.Second / clockTick, nil
}

func ppidOf(pid int) (int, bool) {
	f, err := statFields(pid)
	if err != nil {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// statFields returns /proc/PID/stat after the "(comm)" field, which may
// itself contain spaces and parentheses.
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("procstat: pid %d: malformed stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("procstat: pid %d: short stat", pid)
	}
	return f, nil
}

func statusField(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("procstat: pid %d: no %s", pid, key)
}
