package shim_test

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/agent"
)

// standIn stands in for the sidecar: it speaks the control stream
// (acknowledging every snapshot once its egress listeners are bound) and
// forwards each egress listener's connections to the service's endpoints
// over plain TCP. kill closes every listener and connection at once, as
// the kernel does for a process killed with SIGKILL.
type standIn struct {
	t        *testing.T
	accepted atomic.Int64 // connections accepted on egress listeners

	mu     sync.Mutex
	sess   *agent.SidecarSession
	cancel context.CancelFunc
	done   chan struct{}
	fwd    map[string]*forwarder // by listen address
}

func newStandIn(t *testing.T, a *agent.Agent) *standIn {
	s := &standIn{t: t, fwd: map[string]*forwarder{}}
	s.reconnect(a)
	return s
}

// reconnect opens a new control stream (a sidecar started again).
func (s *standIn) reconnect(a *agent.Agent) {
	sess, err := a.SidecarConnect(&sidecarpb.Hello{AdminAddr: net.JoinHostPort(host(2), "7702"), Build: "shim test stand-in"})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	s.mu.Lock()
	s.sess, s.cancel, s.done = sess, cancel, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		for {
			snap, err := sess.Next(ctx)
			if err != nil {
				return
			}
			s.apply(snap)
			sess.Ack(snap.GetVersion())
		}
	}()
}

func (s *standIn) apply(snap *sidecarpb.Snapshot) {
	targets := map[string][]string{}
	for _, c := range snap.GetClusters() {
		for _, ep := range c.GetEndpoints() {
			addr := ep.GetAppAddr()
			if addr == "" {
				addr = ep.GetAddr()
			}
			targets[c.GetService()] = append(targets[c.GetService()], addr)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range snap.GetEgress() {
		f := s.fwd[l.GetListen()]
		if f == nil {
			ln, err := net.Listen("tcp", l.GetListen())
			if err != nil {
				s.t.Errorf("stand-in: egress %s: %v", l.GetListen(), err)
				continue
			}
			f = &forwarder{l: ln, accepted: &s.accepted, conns: map[net.Conn]struct{}{}}
			s.fwd[l.GetListen()] = f
			f.wg.Add(1)
			go f.serve()
		}
		f.setTargets(targets[l.GetService()])
	}
}

// kill closes every egress listener and connection.
func (s *standIn) kill() {
	s.mu.Lock()
	fwd := s.fwd
	s.fwd = map[string]*forwarder{}
	s.mu.Unlock()
	for _, f := range fwd {
		f.close()
	}
}

// stopSession breaks the control stream.
func (s *standIn) stopSession() {
	s.mu.Lock()
	sess, cancel, done := s.sess, s.cancel, s.done
	s.sess = nil
	s.mu.Unlock()
	if sess == nil {
		return
	}
	cancel()
	<-done
	sess.Close()
}

type forwarder struct {
	l        net.Listener
	accepted *atomic.Int64
	wg       sync.WaitGroup

	mu      sync.Mutex
	targets []string
	next    int
	conns   map[net.Conn]struct{}
	closed  bool
}

func (f *forwarder) setTargets(t []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.targets = t
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.l.Accept()
		if err != nil {
			return
		}
		f.accepted.Add(1)
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go f.pipe(c)
	}
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) pipe(down net.Conn) {
	defer f.wg.Done()
	f.mu.Lock()
	var target string
	if len(f.targets) > 0 {
		target = f.targets[f.next%len(f.targets)]
		f.next++
	}
	f.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil || !f.track(up) {
		down.Close()
		return
	}
	var once sync.Once
	done := func() { once.Do(func() { down.Close(); up.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(up, down); done() }()
	go func() { defer wg.Done(); io.Copy(down, up); done() }()
	wg.Wait()
}

func (f *forwarder) close() {
	f.l.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
