package dubbogo

import (
	"bytes"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	dubboapp "github.com/detourmesh/detour/integration/dubbogo/internal/app"
)

// TestProvidersChurn is dubbo-go v3.3.1's known race on a real ZooKeeper,
// no detour anywhere: a Triple provider and a consumer at 500 calls/s
// while a second provider node (the provider's URL with another
// timestamp, so dubbo-go keys it apart) is created and deleted every
// 50 ms, as providers joining and leaving do. Each deletion destroys an
// invoker, possibly under a call: v3.3.1 then panics in that call (the
// unmodified consumer died in every run, README "surprises"). The
// consumer must live to print its total; the calls that failed and the
// panics it recovered are figures.
func TestProvidersChurn(t *testing.T) {
	zkAddr := os.Getenv("DETOUR_ZK_ADDR")
	if zkAddr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DETOUR_ZK_ADDR is not set: run `bash scripts/with-servers.sh bash scripts/dubbogo.sh test` at the repo root")
		}
		t.Skip("DETOUR_ZK_ADDR is not set (see TestProviderConsumer)")
	}
	bin := buildApps(t)
	tag := randomTag(t)
	iface := "org.detour." + tag + ".Greeter"
	dir := "/dubbo/" + iface + "/providers"
	zc := zkConnect(t, zkAddr)

	prov := startApp(t, bin, "dubbo-provider", "--host", hostB, "--port", strconv.Itoa(freePort(t, hostB)),
		"--registry", "zookeeper://"+zkAddr, "--protocol", "tri", "--interface", iface, "--name", "provider-"+tag,
		"--shutdown-wait", "1s")
	var real string
	waitFor(t, 30*time.Second, "the provider's node", prov, func() bool {
		kids, _, err := zc.Children(dir)
		if err == nil && len(kids) == 1 {
			real = kids[0]
		}
		return real != ""
	})
	cons := startApp(t, bin, "dubbo-consumer", "--registry", "zookeeper://"+zkAddr, "--protocol", "tri",
		"--interface", iface, "--rate", "500", "--wait", "15s")
	waitFor(t, 30*time.Second, "the consumer's first report", cons, func() bool {
		return bytes.Contains(cons.output(), []byte("dubbo-client: ok="))
	})

	u, err := url.QueryUnescape(real)
	if err != nil {
		t.Fatal(err)
	}
	stamp := regexp.MustCompile(`timestamp=\d+`)
	const flips = 100
	for i := range flips {
		other := dir + "/" + url.QueryEscape(stamp.ReplaceAllString(u, "timestamp="+strconv.Itoa(1_000_000+i)))
		if _, err := zc.Create(other, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
		<-time.After(50 * time.Millisecond) // the churn's pace, not a wait for anything
		if err := zc.Delete(other, -1); err != nil {
			t.Fatal(err)
		}
		<-time.After(50 * time.Millisecond)
		if cons.exited() {
			t.Fatalf("the consumer ended after %d flips (%v):\n%s", i+1, cons.err, tail(cons.output()))
		}
	}

	cons.signal(syscall.SIGTERM)
	err = cons.wait(30 * time.Second)
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 1) { // 1: a call failed
		t.Fatalf("consumer: %v:\n%s", err, tail(cons.output()))
	}
	out := cons.output()
	m := totalLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("consumer printed no total line:\n%s", tail(out))
	}
	recovered := bytes.Count(out, []byte(dubboapp.PanicMark))
	t.Logf("figure: %d flips of a second provider node at 500 calls/s: ok=%s failed=%s, of them dubbo-go's known panic %d",
		flips, m[1], m[2], recovered)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, dubboapp.PanicMark) || strings.Contains(line, "call failed") {
			t.Logf("  %s", line)
		}
	}
	if ok, _ := strconv.Atoi(string(m[1])); ok == 0 {
		t.Error("no call succeeded")
	}
	prov.signal(syscall.SIGTERM)
	if err := prov.wait(20 * time.Second); err != nil {
		t.Errorf("provider after SIGTERM: %v", err)
	}
}
