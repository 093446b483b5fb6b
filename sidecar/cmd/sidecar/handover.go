package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// A sidecar upgrade hands the listening sockets over (the pattern of
// cloudflare/tableflip, hand-written: one exec, fds passed as ExtraFiles).
// On SIGHUP the serving process starts its own binary again (the path it
// was started as, so a package upgrade runs the new one) with its admin
// and data-path listeners, its applied snapshot and its control-stream
// instance; the new process applies the snapshot on the inherited
// sockets, says ready, and the old one stops accepting and drains. The
// same instance makes the agent treat the new control stream as a
// reconnect of its sidecar: it never flips clients to the real endpoints.

// handoverEnv carries the description of the inherited fds to the child.
const handoverEnv = "DETOUR_SIDECAR_HANDOVER"

// handover is what a new process inherits: fd numbers (3 + ExtraFiles
// index) and the instance name.
type handover struct {
	Instance  string         `json:"instance"`
	Admin     int            `json:"admin"`
	Snapshot  int            `json:"snapshot"`
	Ready     int            `json:"ready"`
	Listeners map[string]int `json:"listeners"`
}

// sockets binds the data path's listeners, from inherited fds when there
// are, and remembers them so they can be handed over in turn.
type sockets struct {
	mu        sync.Mutex
	ls        map[string]*net.TCPListener
	inherited map[string]*os.File
	// gate, when set, holds Accept back until open: a successor's
	// listeners are added before the rest of its first snapshot (its
	// clusters) is in place, and on an inherited socket a connection may
	// be waiting already; meanwhile the old process accepts it.
	gate     chan struct{}
	gateOnce sync.Once
}

// open lets the listeners accept.
func (s *sockets) open() {
	if s.gate != nil {
		s.gateOnce.Do(func() { close(s.gate) })
	}
}

func newSockets() *sockets {
	return &sockets{ls: map[string]*net.TCPListener{}, inherited: map[string]*os.File{}}
}

func (s *sockets) listen(network, addr string) (net.Listener, error) {
	s.mu.Lock()
	f := s.inherited[addr]
	delete(s.inherited, addr)
	s.mu.Unlock()
	var ln net.Listener
	var err error
	if f != nil {
		ln, err = net.FileListener(f)
		f.Close()
	} else {
		ln, err = net.Listen(network, addr)
	}
	if err != nil {
		return nil, err
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return ln, nil
	}
	s.mu.Lock()
	s.ls[addr] = tl
	s.mu.Unlock()
	return &trackedListener{TCPListener: tl, s: s, addr: addr, done: make(chan struct{})}, nil
}

// closeUnused closes inherited sockets the snapshot did not ask for.
func (s *sockets) closeUnused() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for a, f := range s.inherited {
		f.Close()
		delete(s.inherited, a)
	}
}

type trackedListener struct {
	*net.TCPListener
	s     *sockets
	addr  string
	done  chan struct{}
	close sync.Once
}

func (t *trackedListener) Accept() (net.Conn, error) {
	if t.s.gate != nil {
		select {
		case <-t.s.gate:
		case <-t.done:
			return nil, net.ErrClosed
		}
	}
	return t.TCPListener.Accept()
}

func (t *trackedListener) Close() error {
	t.close.Do(func() { close(t.done) })
	t.s.mu.Lock()
	if t.s.ls[t.addr] == t.TCPListener {
		delete(t.s.ls, t.addr)
	}
	t.s.mu.Unlock()
	return t.TCPListener.Close()
}

// inherit reads handoverEnv (and unsets it, so it is not passed on).
func inherit() (*handover, error) {
	v, ok := os.LookupEnv(handoverEnv)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(handoverEnv)
	var h handover
	if err := json.Unmarshal([]byte(v), &h); err != nil {
		return nil, fmt.Errorf("%s: %w", handoverEnv, err)
	}
	return &h, nil
}

func fdFile(fd int, name string) *os.File { return os.NewFile(uintptr(fd), name) }

// readSnapshot reads the snapshot the old process applied (its /config).
func readSnapshot(fd int) (*sidecarpb.Snapshot, error) {
	f := fdFile(fd, "snapshot")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var c struct {
		Snapshot json.RawMessage `json:"snapshot"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, err
	}
	if len(c.Snapshot) == 0 || string(c.Snapshot) == "null" {
		return nil, nil
	}
	snap := &sidecarpb.Snapshot{}
	if err := protojson.Unmarshal(c.Snapshot, snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// startSuccessor starts the new process with everything it inherits and
// waits until it says ready (nil) or fails, exits or times out (an
// error; the caller keeps serving). The child is left running on success.
func startSuccessor(ctx context.Context, admin *net.TCPListener, s *sockets, instance string, config []byte, wait time.Duration) (int, error) {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	add := func(f *os.File) int { files = append(files, f); return 2 + len(files) }
	h := handover{Instance: instance, Listeners: map[string]int{}}
	af, err := admin.File()
	if err != nil {
		return 0, fmt.Errorf("admin socket: %w", err)
	}
	h.Admin = add(af)
	s.mu.Lock()
	for addr, l := range s.ls {
		f, err := l.File()
		if err != nil {
			s.mu.Unlock()
			return 0, fmt.Errorf("socket %s: %w", addr, err)
		}
		h.Listeners[addr] = add(f)
	}
	s.mu.Unlock()
	tmp, err := os.CreateTemp("", "detour-sidecar-snapshot-*")
	if err != nil {
		return 0, err
	}
	os.Remove(tmp.Name()) // the fd is enough
	if _, err := tmp.Write(config); err != nil {
		tmp.Close()
		return 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return 0, err
	}
	h.Snapshot = add(tmp)
	pr, pw, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer pr.Close()
	h.Ready = add(pw)
	env, _ := json.Marshal(h)

	bin := os.Args[0]
	if !filepath.IsAbs(bin) {
		if bin, err = exec.LookPath(bin); err != nil {
			return 0, err
		}
	}
	cmd := exec.Command(bin, os.Args[1:]...)
	cmd.Env = append(os.Environ(), handoverEnv+"="+string(env))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start %s: %w", bin, err)
	}
	for _, f := range files {
		f.Close() // the child has its copies; pr must see EOF if it dies
	}
	files = nil
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err == nil && line == "ready\n" {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("the new process exited before it was ready (%v)", err)
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	fail := func(err error) (int, error) {
		cmd.Process.Kill()
		return 0, err
	}
	select {
	case err := <-ready:
		if err != nil {
			return fail(err)
		}
		return cmd.Process.Pid, nil
	case err := <-exited:
		return 0, fmt.Errorf("the new process exited: %v", err)
	case <-t.C:
		return fail(fmt.Errorf("the new process was not ready within %s", wait))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
}

// sayReady tells the old process (when there is one) that this one serves.
func sayReady(h *handover) error {
	if h == nil {
		return nil
	}
	f := fdFile(h.Ready, "ready")
	defer f.Close()
	_, err := f.WriteString("ready\n")
	return err
}

// handoverStatusFile is where a failed hand-over is recorded for
// `sidecar --reload`, next to the PID file.
func handoverStatusFile(pidFile string) string { return pidFile + ".handover" }

// reload is `sidecar --reload`: SIGHUP to the serving sidecar ($MAINPID,
// else the PID file), then wait until the PID file names its successor
// (0) or the hand-over is reported failed or times out (1; the old
// process still serves).
func reload(pidFile string, wait time.Duration, stdout, stderr io.Writer) int {
	old := 0
	if v := os.Getenv("MAINPID"); v != "" {
		old, _ = strconv.Atoi(v)
	}
	if old <= 0 && pidFile != "" {
		old = readPID(pidFile)
	}
	if old <= 0 {
		fmt.Fprintln(stderr, "sidecar --reload: no serving sidecar: $MAINPID unset and no PID in --pid-file")
		return 1
	}
	if pidFile == "" {
		fmt.Fprintln(stderr, "sidecar --reload: needs --pid-file to see the new process")
		return 1
	}
	status := handoverStatusFile(pidFile)
	os.Remove(status)
	p, err := os.FindProcess(old)
	if err == nil {
		err = p.Signal(sigHandover)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sidecar --reload: signal %d: %v\n", old, err)
		return 1
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(status); err == nil {
			fmt.Fprintf(stderr, "sidecar --reload: %s (pid %d keeps serving)\n", b, old)
			return 1
		}
		if pid := readPID(pidFile); pid > 0 && pid != old {
			fmt.Fprintf(stdout, "sidecar --reload: pid %d took over from %d\n", pid, old)
			return 0
		}
		<-time.After(50 * time.Millisecond)
	}
	fmt.Fprintf(stderr, "sidecar --reload: no new process within %s\n", wait)
	return 1
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(string(trimNL(b)))
	return n
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}
