package integration

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// zkCliPath finds ZooKeeper's own Java command line client (Debian's
// zookeeper package, or $ZKCLI); without it or java the test fails in CI
// (CI=true) and skips elsewhere.
func zkCliPath(t *testing.T) string {
	t.Helper()
	_, javaErr := exec.LookPath("java")
	for _, p := range []string{os.Getenv("ZKCLI"), "/usr/share/zookeeper/bin/zkCli.sh"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil && javaErr == nil {
			return p
		}
	}
	if p, err := exec.LookPath("zkCli.sh"); err == nil && javaErr == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("zkCli.sh or java is missing and CI=true: install Debian's zookeeper package")
	}
	t.Skip("zkCli.sh or java not found (Debian's zookeeper package at /usr/share/zookeeper/bin, or set ZKCLI)")
	return ""
}

// zkCliOnFrontEnd: ZooKeeper's own Java client against A's front end
// reads the providers as A's consumers do (the provider's URL at A's
// egress), and writes and deletes an ephemeral node of its own.
func zkCliOnFrontEnd(t *testing.T, m *dubboMesh) {
	cli := zkCliPath(t)
	name := m.viewNow()[0]
	if providerAddr(name) != m.egress {
		t.Fatalf("A's front end answers %s, want the egress %s", name, m.egress)
	}
	node := dubboProviders + "/" + name
	probe := "/dubbo/" + m.service + "/consumers/zkcli-probe"
	script := strings.Join([]string{
		"ls " + dubboProviders,
		"get " + node,
		"stat " + node,
		"create -e " + probe + " from-zkcli",
		"get " + probe,
		"stat " + probe,
		"delete " + probe,
		"ls /dubbo/" + m.service + "/consumers",
		"quit",
	}, "\n") + "\n"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	started := time.Now()
	cmd := exec.CommandContext(ctx, cli, "-server", m.a.ZooKeeperAddr())
	cmd.Stdin = strings.NewReader(script)
	cmd.Env = append(os.Environ(), "ZOO_LOG_DIR="+t.TempDir(), "CLIENT_JVMFLAGS=-Xshare:auto -XX:TieredStopAtLevel=1")
	b, err := cmd.CombinedOutput()
	out := string(b)
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // it exits 1 when its last command failed
		t.Fatalf("zkCli against %s: %v\n%s", m.a.ZooKeeperAddr(), err, out)
	}
	t.Logf("zkCli against A's front end took %v", time.Since(started).Round(time.Millisecond))
	for _, want := range []string{
		"\n[" + name + "]\n",       // ls: the one provider, at A's egress
		"\nephemeralOwner = 0x0\n", // stat of a node the agent answers: no owner,
		"\ndataLength = 0\n",       // no data (Dubbo's provider nodes have none)
		"\nCreated " + probe + "\n",
		"\nfrom-zkcli\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("zkCli's output lacks %q", want)
		}
	}
	for _, bad := range []string{"Node does not exist", "KeeperErrorCode", "Exception"} {
		if strings.Contains(out, bad) {
			t.Errorf("zkCli's output has %q", bad)
		}
	}
	if i := strings.LastIndex(out, "\n["); i < 0 || strings.Contains(out[i:], "zkcli-probe") || !strings.Contains(out[i:], "consumer%3A%2F%2F") {
		t.Errorf("the last ls of consumers should show the dubbo-go consumer's node and not the deleted probe")
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("zkCli's output:\n%s", out)
	}
}
