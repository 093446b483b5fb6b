package dubbogo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// hostB is the provider's simulated host, as in the integration suite
// (Linux routes all of 127/8 to lo). The consumer takes no address: see
// cmd/dubbo-consumer.
const hostB = "127.0.0.3"

// TestProviderConsumer runs the real dubbo-go provider and consumer against
// the ZooKeeper at DETOUR_ZK_ADDR, through a decoding proxy each, for
// interface-level, application-level and both, over the dubbo protocol and
// over Triple: at least 100 calls, none failed, and the provider's entry
// gone after its SIGTERM. With -v it logs what the apps left in ZooKeeper
// and the ZooKeeper operations each sent.
func TestProviderConsumer(t *testing.T) {
	zkAddr := os.Getenv("DETOUR_ZK_ADDR")
	if zkAddr == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DETOUR_ZK_ADDR is not set: run `bash scripts/with-servers.sh bash scripts/dubbogo.sh test` at the repo root")
		}
		t.Skip("DETOUR_ZK_ADDR is not set: run `bash scripts/with-servers.sh bash scripts/dubbogo.sh test` at the repo root (or set it to a ZooKeeper)")
	}
	bin := buildApps(t)
	for _, tc := range []struct{ typ, proto string }{
		{"interface", "dubbo"}, {"service", "dubbo"}, {"all", "dubbo"},
		{"interface", "tri"}, {"service", "tri"},
	} {
		t.Run(tc.typ+"-"+tc.proto, func(t *testing.T) { runPair(t, zkAddr, bin, tc.typ, tc.proto) })
	}
}

// buildApps returns the folder holding dubbo-provider and dubbo-consumer:
// DUBBOGO_BIN when set (scripts/dubbogo.sh build DIR), else built here
// into a temporary folder with the default, warm, build cache.
func buildApps(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("DUBBOGO_BIN"); dir != "" {
		for _, b := range []string{"dubbo-provider", "dubbo-consumer"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				t.Fatalf("DUBBOGO_BIN=%s: %v", dir, err)
			}
		}
		return dir
	}
	dir := t.TempDir()
	start := time.Now()
	out, err := exec.Command("go", "build", "-o", dir+"/", "./cmd/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	t.Logf("built the apps in %v", time.Since(start).Round(time.Millisecond))
	return dir
}

var totalLine = regexp.MustCompile(`dubbo-client: total ok=(\d+) failed=(\d+)`)

func runPair(t *testing.T, zkAddr, bin, typ, proto string) {
	tag := randomTag(t)
	iface := "org.detour." + tag + ".Greeter"
	provApp, consApp := "dubbo-provider-"+tag, "dubbo-consumer-"+tag
	zc := zkConnect(t, zkAddr)
	provSpy, consSpy := startZKSpy(t, zkAddr), startZKSpy(t, zkAddr)

	port := freePort(t, hostB)
	prov := startApp(t, bin, "dubbo-provider",
		"--host", hostB, "--port", strconv.Itoa(port),
		"--registry", "zookeeper://"+provSpy.addr(), "--registry-type", typ, "--protocol", proto,
		"--app", provApp, "--interface", iface, "--name", "provider-"+tag,
		"--shutdown-wait", "1s")
	regPath := "/services/" + provApp
	if typ != "service" {
		regPath = "/dubbo/" + iface + "/providers"
	}
	waitFor(t, 30*time.Second, "the provider's entry under "+regPath, prov, func() bool {
		kids, _, err := zc.Children(regPath)
		return err == nil && len(kids) > 0
	})

	cons := startApp(t, bin, "dubbo-consumer",
		"--registry", "zookeeper://"+consSpy.addr(), "--registry-type", typ, "--protocol", proto,
		"--app", consApp, "--interface", iface,
		"--rate", "100", "--duration", "5s", "--wait", "15s")
	waitFor(t, 30*time.Second, "the consumer's first report", cons, func() bool {
		return bytes.Contains(cons.output(), []byte("dubbo-client: ok="))
	})
	dump, err := zkDump(zc, "/dubbo/"+iface, "/dubbo/mapping/"+iface, "/dubbo/"+provApp, "/dubbo/"+consApp,
		"/services/"+provApp, "/services/"+consApp, "/dubbo/config")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ZooKeeper with both apps up (%s, %s):\n%s", typ, proto, dump)

	if err := cons.wait(60 * time.Second); err != nil {
		t.Errorf("consumer: %v", err)
	}
	m := totalLine.FindSubmatch(cons.output())
	if m == nil {
		t.Fatalf("consumer printed no total line:\n%s", tail(cons.output()))
	}
	ok, _ := strconv.Atoi(string(m[1]))
	failed, _ := strconv.Atoi(string(m[2]))
	t.Logf("figure: dubbo-go registry-type %s, protocol %s: ok=%d failed=%d in 5s at 100/s", typ, proto, ok, failed)
	if ok < 100 || failed != 0 {
		t.Errorf("consumer: ok=%d failed=%d, want ok >= 100 and failed = 0\n%s", ok, failed, tail(cons.output()))
	}

	// SIGTERM: dubbo-go's graceful shutdown unregisters, then exits.
	start := time.Now()
	prov.signal(syscall.SIGTERM)
	waitFor(t, 15*time.Second, "the provider's entry to go after SIGTERM", nil, func() bool {
		kids, _, err := zc.Children(regPath)
		return err == zk.ErrNoNode || (err == nil && len(kids) == 0)
	})
	gone := time.Since(start)
	if err := prov.wait(20 * time.Second); err != nil {
		t.Errorf("provider after SIGTERM: %v", err)
	}
	t.Logf("figure: provider SIGTERM: entry gone after %v, exited after %v", gone.Round(time.Millisecond), prov.end.Sub(start).Round(time.Millisecond))
	t.Logf("ZooKeeper ops of the provider (%s, %s):\n%s", typ, proto, provSpy.report())
	t.Logf("ZooKeeper ops of the consumer (%s, %s):\n%s", typ, proto, consSpy.report())
}

// app is a started app; its stdout and stderr go to one file.
type app struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error     // set before done closes
	end  time.Time // when it exited; set before done closes
}

func startApp(t *testing.T, bin, name string, args ...string) *app {
	t.Helper()
	a := &app{t: t, name: name, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{})}
	f, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	a.cmd = exec.Command(filepath.Join(bin, name), args...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	if err := a.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		a.err = a.cmd.Wait()
		a.end = time.Now()
		f.Close()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			a.cmd.Process.Kill()
			<-a.done
		}
		if t.Failed() {
			t.Logf("%s log (last lines):\n%s", name, tail(a.output()))
		}
	})
	return a
}

func (a *app) output() []byte {
	b, _ := os.ReadFile(a.log)
	return b
}

func (a *app) signal(s os.Signal) { a.cmd.Process.Signal(s) }

func (a *app) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// wait waits for the app to exit and returns its error (nil for exit 0).
func (a *app) wait(d time.Duration) error {
	select {
	case <-a.done:
		return a.err
	case <-time.After(d):
		return fmt.Errorf("%s still running after %v", a.name, d)
	}
}

// waitFor polls cond every 50ms until it holds; it fails the test after d,
// or at once when a (if not nil) has exited.
func waitFor(t *testing.T, d time.Duration, what string, a *app, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if a != nil && a.exited() {
			t.Fatalf("waiting for %s: %s exited (%v):\n%s", what, a.name, a.err, tail(a.output()))
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, d)
		}
		<-time.After(50 * time.Millisecond) // the poll interval, under the deadline above
	}
}

func freePort(t *testing.T, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomTag(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b)
}

// tail is the last 40 lines of out.
func tail(out []byte) string {
	lines := bytes.Split(bytes.TrimRight(out, "\n"), []byte("\n"))
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
