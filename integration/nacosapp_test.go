package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// nacosApp is nacos-sdk-go's naming client on the Nacos front end of a
// host, in a process of its own (integration/internal/nacosapp, built
// without -race: the SDK races with itself on every reconnect, and the
// race detector would fail the test for it).
type nacosApp struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan nacosEvent // all but the callbacks
	exited chan struct{}
}

// nacosEvent is one line of the app's stdout.
type nacosEvent struct {
	Event     string          `json:"event"`
	At        time.Time       `json:"at"`
	OK        bool            `json:"ok"`
	Error     string          `json:"error"`
	Instances []nacosInstance `json:"instances"`
}

type nacosInstance struct {
	IP          string            `json:"ip"`
	Port        uint64            `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata"`
}

func (i nacosInstance) addr() string { return net.JoinHostPort(i.IP, strconv.FormatUint(i.Port, 10)) }

// startNacosApp starts the app on the front end of the host at ip with
// args (its flags but --server); onCallback, if not nil, gets every
// Subscribe callback, in order. t.Cleanup closes the client and, if the
// test failed, prints the app's stderr.
func startNacosApp(t *testing.T, ip string, onCallback func(nacosEvent), args ...string) *nacosApp {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "nacosapp.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"--server", net.JoinHostPort(ip, strconv.Itoa(nacosPort)), "--dir", dir}, args...)
	cmd := exec.Command(filepath.Join(bin, "nacosapp"), args...)
	cmd.Stderr = logf
	// Pdeathsig: the app dies with the test, even a test killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &nacosApp{cmd: cmd, stdin: stdin, events: make(chan nacosEvent, 16), exited: make(chan struct{})}
	go func() {
		defer close(a.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e nacosEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				fmt.Fprintf(logf, "test: undecodable line %q: %v\n", sc.Text(), err)
				continue
			}
			if e.Event == "callback" {
				if onCallback != nil {
					onCallback(e)
				}
				continue
			}
			a.events <- e
		}
		_ = cmd.Wait()
		logf.Close()
	}()
	t.Cleanup(func() {
		a.close(t)
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("--- nacosapp %v log ---\n%s", args, out)
		}
	})
	return a
}

// next waits for the app's next event (callbacks aside), which must be
// what.
func (a *nacosApp) next(t *testing.T, what string) nacosEvent {
	t.Helper()
	select {
	case e := <-a.events:
		if e.Event != what {
			t.Fatalf("nacosapp: %q, want %q: %+v", e.Event, what, e)
		}
		return e
	case <-a.exited:
		t.Fatalf("nacosapp exited waiting for %q", what)
	case <-time.After(30 * time.Second):
		t.Fatalf("nacosapp: no %q in 30 s", what)
	}
	return nacosEvent{}
}

// selectInstances is the SDK's SelectInstances (healthy only) in the app.
func (a *nacosApp) selectInstances(t *testing.T, service, clusters string) ([]nacosInstance, string) {
	t.Helper()
	if _, err := fmt.Fprintf(a.stdin, "select %s %s\n", service, clusters); err != nil {
		t.Fatal(err)
	}
	e := a.next(t, "selected")
	return e.Instances, e.Error
}

// close has the app close its client (SIGTERM: CloseClient) and waits
// for it to exit; SIGKILL after 10 s.
func (a *nacosApp) close(t *testing.T) {
	t.Helper()
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
		t.Errorf("nacosapp did not exit in 10 s after SIGTERM")
	}
}
