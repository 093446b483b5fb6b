package rig

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// tool finds nginx or haproxy; CI installs them (scripts/bench-deps.sh),
// so there a missing one fails the test.
func tool(t *testing.T, name string) string {
	p, err := lookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// TestConfigsParse has nginx and haproxy check the configurations the rig
// writes, at one worker and at four, gRPC listeners included.
func TestConfigsParse(t *testing.T) {
	ip := addrs{client: "127.0.0.2", server: "127.0.0.3", proxy: "127.0.0.9"}
	for _, workers := range []int{1, 4} {
		dir := t.TempDir()
		for _, sub := range []string{"nginx/tmp", "origin/tmp", "haproxy"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for name, conf := range map[string]string{"nginx": proxyNginx(dir, ip, workers), "origin": originNginx(dir, ip, workers)} {
			if !strings.Contains(conf, "worker_processes "+strconv.Itoa(workers)+";") {
				t.Errorf("%s: no worker_processes %d:\n%s", name, workers, conf)
			}
			path := filepath.Join(dir, name+".conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(tool(t, "nginx"), "-t", "-q", "-c", path, "-e", filepath.Join(dir, name, "error.log"),
				"-g", "daemon off;").CombinedOutput(); err != nil {
				t.Errorf("nginx -t %s (%d workers): %v\n%s\n%s", name, workers, err, out, conf)
			}
		}
		conf := haproxyConf(dir, ip, workers)
		for _, want := range []string{"bind 127.0.0.9:19103 proto h2", "server app 127.0.0.3:18090 proto h2", "nbthread " + strconv.Itoa(workers)} {
			if !strings.Contains(conf, want) {
				t.Errorf("haproxy config lacks %q:\n%s", want, conf)
			}
		}
		path := filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(tool(t, "haproxy"), "-c", "-q", "-f", path).CombinedOutput(); err != nil {
			t.Errorf("haproxy -c (%d threads): %v\n%s\n%s", workers, err, out, conf)
		}
	}
}
