package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGateHoldsAccept: a successor's listener accepts only once open is
// called (its snapshot is in place); Close unblocks a held Accept.
func TestGateHoldsAccept(t *testing.T) {
	s := newSockets()
	s.gate = make(chan struct{})
	ln, err := s.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		got <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String()) // waits in the backlog
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-got:
		t.Fatalf("accepted before open: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	s.open()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("not accepted after open")
	}

	s2 := newSockets()
	s2.gate = make(chan struct{})
	ln2, err := s2.listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _, err := ln2.Accept(); got <- err }()
	ln2.Close()
	select {
	case err := <-got:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not unblock Accept")
	}
	if len(s2.ls) != 0 {
		t.Fatalf("closed listener still recorded: %v", s2.ls)
	}
}

// TestReloadWithoutSidecar: --reload with nothing to signal fails, says
// why, and exits 1.
func TestReloadWithoutSidecar(t *testing.T) {
	t.Setenv("MAINPID", "")
	var out, errb bytes.Buffer
	if code := reload(filepath.Join(t.TempDir(), "none.pid"), time.Second, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no serving sidecar") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// TestReloadReportsFailure: a hand-over the serving process recorded as
// failed makes --reload exit 1 with its reason.
func TestReloadReportsFailure(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "sidecar.pid")
	// This test process stands in for the serving sidecar (SIGHUP caught);
	// reload removes the status file before signalling, so a goroutine
	// keeps writing the failure as the old process would.
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	t.Setenv("MAINPID", "")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				os.WriteFile(handoverStatusFile(pidFile), []byte("hand-over failed: test"), 0o644)
			}
		}
	}()
	ignoreHUP(t)
	var out, errb bytes.Buffer
	if code := reload(pidFile, 10*time.Second, &out, &errb); code != 1 || !strings.Contains(errb.String(), "hand-over failed: test") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// ignoreHUP keeps the test binary alive when a test signals itself.
func ignoreHUP(t *testing.T) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigHandover)
	t.Cleanup(func() { signal.Stop(ch) })
}
