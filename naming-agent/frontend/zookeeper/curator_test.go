package zookeeper

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// curatorBin is the launcher of integration/curator's program (Java
// Dubbo's ZooKeeper use through Apache Curator): CURATOR_BIN's (make test
// builds it there), else built here by scripts/curator.sh. Without javac
// or Debian's Curator jars the test fails in CI and skips elsewhere.
func curatorBin(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("CURATOR_BIN"); dir != "" {
		p := filepath.Join(dir, "curator-dubbo")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CURATOR_BIN=%s: %v (scripts/curator.sh build %s)", dir, err, dir)
		}
		return p
	}
	_, errJava := exec.LookPath("javac")
	_, errJar := os.Stat("/usr/share/java/curator-x-discovery.jar")
	if errJava != nil || errJar != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("javac or Debian's Curator jars are missing and CI=true: run scripts/curator.sh deps")
		}
		t.Skip("javac or Debian's Curator jars not found (scripts/curator.sh deps installs them)")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "bash", "../../../scripts/curator.sh", "build", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/curator.sh build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "curator-dubbo")
}

// runCurator runs the program against addr under root and returns its
// transcript: the step lines, as printed (they carry no ids or times).
func runCurator(t *testing.T, bin, addr, root string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, addr, root)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) { // it exits 1 when a step failed
		t.Fatalf("curator against %s: %v\n%s%s", addr, err, stdout.String(), stderr.String())
	}
	if err != nil {
		t.Logf("curator against %s: %v; its log:\n%s", addr, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// curatorConfig is scripts/zookeeper.sh's zoo.cfg: the same tick and
// session bounds, so the negotiated timeouts compare.
func curatorConfig() Config {
	cfg := testConfig()
	cfg.TickTime = 500 * time.Millisecond
	cfg.MinSessionTimeout = time.Second
	cfg.MaxSessionTimeout = time.Minute
	return cfg
}

// TestCurator runs what Java Dubbo does through Curator (registry,
// subscription watcher, config caches, x-discovery, a dropped connection,
// a session expired, close) against this server and the real ZooKeeper: every step passes
// and the two transcripts are the same.
func TestCurator(t *testing.T) {
	bin := curatorBin(t)
	s := startServer(t, curatorConfig())
	var b [6]byte
	_, _ = rand.Read(b[:])
	root := "/curator-" + hex.EncodeToString(b[:])
	front := runCurator(t, bin, s.addr, root)
	for _, want := range []string{
		"step connect ok states=[CONNECTED] negotiated=60000\n",
		"step negotiate ok 500->1000 120000->60000\n",
		"step register-provider ok ephemeral(main) ",
		"step provider-added ok events=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880, dubbo://127.0.0.2:20880]]\n",
		"step provider-removed ok events=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880]]\n",
		"step config-changed ok curatorcache=[NODE_CHANGED ",
		"step metadata ok version=0 dataLength=7 then version=1 dataLength=8 data='{\"v\":22}'\n",
		// Credentials in the registry address: CREATOR_ALL_ACL made the
		// session's digest identity.
		"step auth ok whoami=[digest:dubbo, ip:127.0.0.1] node=[digest:dubbo:8D07xCOn9BwzWYcFLtUWrIItVfo=/31] ",
		// An emptied container stays until the server's check.
		"step container ok emptied=persistent\n",
		// The session came back with its nodes; the watch and caches saw
		// what changed while the client was away.
		"step reconnect ok states=[SUSPENDED][RECONNECTED] same-session=true subscription=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880, dubbo://127.0.0.3:20880]] ",
		" provider=ephemeral(main) consumer=ephemeral(main)\n",
		// Away past its session: the node went, a new session came, Dubbo
		// registered again.
		"step expire ok states=[SUSPENDED][LOST, RECONNECTED] same-session=false subscription=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880, dubbo://127.0.0.3:20880]]\n",
		"step expire-recover ok subscription=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880, dubbo://127.0.0.3:20880, dubbo://127.0.0.4:20880]] ",
		" again=NoNode mapping=absent address=kept\n", // Curator's EnsembleTracker kept the address
		// Close: the ephemeral nodes went, those watching were told.
		"step close ok events=[NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/consumers, NodeDeleted /services/demo-provider/127.0.0.1:20880] consumers=[] providers=[dubbo://127.0.0.3:20880] instance=absent\n",
		"step leftovers ok events=[]\n",
		"\ndone failures=0",
	} {
		if !strings.Contains(front, want) {
			t.Errorf("the transcript lacks %q", want)
		}
	}
	if strings.Contains(front, " fail ") {
		t.Error("a step failed")
	}
	if t.Failed() {
		t.Logf("transcript against the front end:\n%s", front)
	}
	real := os.Getenv("DETOUR_ZK_ADDR")
	if real == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DETOUR_ZK_ADDR is not set and CI=true: run under scripts/with-servers.sh")
		}
		t.Log("DETOUR_ZK_ADDR unset: the transcript is not compared with a real ZooKeeper's")
		return
	}
	if got := runCurator(t, bin, real, root); got != front {
		t.Errorf("the transcript differs from the real ZooKeeper's:\n--- real\n%s\n--- front end\n%s", got, front)
	}
}

// runRestart runs the program's restart scenario (integration/curator's
// Restart) against addr, calling restart at its pause, and returns its
// transcript.
func runRestart(t *testing.T, bin, addr, root string, restart func()) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, addr, root, "restart")
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		out = append(out, sc.Text())
		if sc.Text() == "pause restart" {
			restart()
			if _, err := io.WriteString(stdin, "go\n"); err != nil {
				t.Errorf("telling the program the server is back: %v", err)
			}
		}
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Logf("curator against %s: %v; its log:\n%s", addr, err, stderr.String())
	}
	return strings.Join(out, "\n")
}

// privateZK starts a ZooKeeper of the test's own (the suite's is shared,
// and this one is restarted) with scripts/zookeeper.sh, stopped when the
// test ends; restart stops and starts it on its address and data dir.
func privateZK(t *testing.T) (addr string, restart func()) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()
	dir := t.TempDir()
	zk := func(cmd string) string {
		c := exec.Command("bash", "../../../scripts/zookeeper.sh", cmd, dir)
		c.Env = append(os.Environ(), "ZK_PORT="+port)
		out, err := c.Output()
		if err != nil {
			t.Fatalf("scripts/zookeeper.sh %s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	out := zk("start")
	t.Cleanup(func() { zk("stop") })
	addr = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "DETOUR_ZK_ADDR="))
	return addr, func() { zk("stop"); zk("start") }
}

// TestCuratorRestart: the front end restarts (with its session store, as
// the agent does) under a Dubbo app on Curator. The app is back in its
// session with its provider and consumer nodes; its subscription watcher
// and CuratorCache, set again, see the next provider come; its close
// still removes its nodes. A ZooKeeper restarted the same way gives the
// same transcript.
func TestCuratorRestart(t *testing.T) {
	bin := curatorBin(t)
	r := &restartable{t: t, addr: "127.0.0.1:0", cfg: curatorConfig(), opts: []Option{WithSessionStore(&memStore{})}}
	r.start()
	t.Cleanup(func() { r.stop() })
	var b [6]byte
	_, _ = rand.Read(b[:])
	root := "/curator-" + hex.EncodeToString(b[:])
	front := runRestart(t, bin, r.addr, root, func() { r.stop(); r.start() })
	for _, want := range []string{
		"step register ok states=[CONNECTED] providers=[dubbo://127.0.0.1:20880]\n",
		"step restart ok states=[RECONNECTED, SUSPENDED] same-session=true provider=ephemeral(main) consumer=ephemeral(main)\n",
		"step watch-after-restart ok subscription=NodeChildrenChanged /dubbo/org.apache.dubbo.demo.DemoService/providers [dubbo://127.0.0.1:20880, dubbo://127.0.0.2:20880] curatorcache=[NODE_CREATED [dubbo://127.0.0.2:20880]]\n",
		"step close ok providers=[dubbo://127.0.0.2:20880] consumer=absent\n",
		"\ndone failures=0",
	} {
		if !strings.Contains(front, want) {
			t.Errorf("the transcript lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("transcript:\n%s", front)
	}
	if _, err := os.Stat("/usr/share/java/zookeeper.jar"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("Debian's zookeeper package is missing and CI=true")
		}
		t.Log("no /usr/share/java/zookeeper.jar: the transcript is not compared with a restarted ZooKeeper's")
		return
	}
	addr, restart := privateZK(t)
	if got := runRestart(t, bin, addr, root, restart); got != front {
		t.Errorf("the transcript differs from a restarted ZooKeeper's:\n--- real\n%s\n--- front end\n%s", got, front)
	}
}
