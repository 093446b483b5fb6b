package etcd

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// etcdctlPath is etcdctl ($ETCDCTL, else PATH; scripts/etcdctl.sh
// installs Debian's). Missing, the test skips, or fails when CI=true.
func etcdctlPath(t *testing.T) string {
	p := os.Getenv("ETCDCTL")
	if p == "" {
		p, _ = exec.LookPath("etcdctl")
	}
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("etcdctl is missing (bash scripts/etcdctl.sh installs it)")
		}
		t.Skip("etcdctl is missing (bash scripts/etcdctl.sh installs it)")
	}
	return p
}

// leaseID: lease ids are the server's own numbering, so they are
// compared as placeholders.
var leaseID = regexp.MustCompile(`\b[0-9a-f]{16}\b`)

// TestEtcdctl runs the same etcdctl session (put, get, del, watch, lease,
// txn, compaction errors) against the front end and against a real etcd
// of its own, on pass-through keys: the outputs are equal.
func TestEtcdctl(t *testing.T) {
	bin := etcdctlPath(t)
	f := newFixture(t)
	direct := startEtcd(t)
	session := [][]string{
		{"put", "/config/a", "1"},
		{"put", "/config/a", "2", "--prev-kv"},
		{"put", "/config/b", "3"},
		{"get", "/config/", "--prefix"},
		{"get", "/config/", "--prefix", "-w", "fields"},
		{"get", "/config/", "--prefix", "--limit", "1", "--keys-only"},
		{"get", "/config/", "--prefix", "--count-only", "-w", "fields"},
		{"get", "/config/a", "--rev", "2"},
		{"get", "/config/a", "--rev", "100"},
		{"get", "/config/", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"},
		{"txn", "<", "mod(\"/config/a\") = \"3\"\n\nput /config/c 4\n\nget /config/b\n\n"},
		{"txn", "<", "value(\"/config/a\") = \"x\"\n\nput /config/c 5\n\nget /config/b\n\n"},
		{"lease", "grant", "30"},
		{"del", "/config/", "--prefix", "--prev-kv"},
		{"watch", "/config/", "--prefix", "--rev", "1", "--prev-kv"},
		{"compaction", "3"},
		{"get", "/config/a", "--rev", "2"},
		{"endpoint", "health"},
	}
	run := func(endpoint string, args []string) string {
		stdin := ""
		if len(args) > 1 && args[1] == "<" {
			args, stdin = args[:1], args[2]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		timeout := "5s"
		if args[0] == "watch" {
			ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second) // watch runs until killed
			defer cancel()
		}
		cmd := exec.CommandContext(ctx, bin, append([]string{"--endpoints", endpoint, "--command-timeout", timeout}, args...)...)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		cmd.Stdin = strings.NewReader(stdin)
		out, _ := cmd.CombinedOutput()
		s := regexp.MustCompile(`(?m)^\{"level":.*\n`).ReplaceAllString(string(out), "") // the client's own log, with times
		s = leaseID.ReplaceAllString(s, "LEASE")
		s = regexp.MustCompile(`"(cluster_id|member_id|raft_term)":\d+`).ReplaceAllString(s, "")
		s = regexp.MustCompile(`"(ClusterID|MemberID|RaftTerm)" : \d+`).ReplaceAllString(s, "")
		s = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "ADDR")
		s = regexp.MustCompile(`took = [^\n]*`).ReplaceAllString(s, "took")
		return s
	}
	for _, args := range session {
		fe, real := run(f.addr, args), run(strings.TrimPrefix(direct, "http://"), args)
		if fe != real {
			t.Errorf("etcdctl %q\nfront end:\n%s\netcd:\n%s", args, fe, real)
		}
	}
}
