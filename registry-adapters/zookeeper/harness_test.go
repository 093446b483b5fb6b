package zookeeper

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// testSessionTimeout is short so that LoseSession is quick; the test
// server (scripts/zookeeper.sh) allows sessions down to 1s.
const testSessionTimeout = 2 * time.Second

// zkEnv is one test's view of the ZooKeeper test server: its own root, a
// raw client for what the adapter cannot do, and the network switch of
// every Registry it made.
type zkEnv struct {
	addr string
	root string
	raw  *zk.Conn

	mu   sync.Mutex
	nets map[*Registry]*netSwitch
	bad  atomic.Int64 // malformed nodes written
}

func newEnv(t testing.TB) *zkEnv {
	t.Helper()
	addr := registrytest.RequireEnv(t, "DETOUR_ZK_ADDR", "run: make test, or scripts/zookeeper.sh start DIR")
	var b [6]byte
	_, _ = rand.Read(b[:])
	e := &zkEnv{
		addr: addr,
		root: "/detour-test-" + hex.EncodeToString(b[:]),
		raw:  dialRaw(t, addr),
		nets: map[*Registry]*netSwitch{},
	}
	t.Cleanup(func() {
		if err := deleteTree(e.raw, e.root); err != nil {
			t.Errorf("cleaning up %s: %v", e.root, err)
		}
	})
	return e
}

func (e *zkEnv) config() Config {
	cfg := Default()
	cfg.Servers = []string{e.addr}
	cfg.Root = e.root
	cfg.SessionTimeout = testSessionTimeout
	cfg.RequestTimeout = 10 * time.Second
	return cfg
}

// newRegistry returns a Registry whose network the test can cut, closed
// at the end of the test. change, if given, adjusts its configuration.
func (e *zkEnv) newRegistry(t testing.TB, onMalformed registry.MalformedFunc, change ...func(*Config)) (*Registry, *netSwitch) {
	t.Helper()
	return e.newRegistryWith(t, []Option{WithMalformedFunc(onMalformed)}, change...)
}

// newRegistryWith is newRegistry with options.
func (e *zkEnv) newRegistryWith(t testing.TB, opts []Option, change ...func(*Config)) (*Registry, *netSwitch) {
	t.Helper()
	sw := &netSwitch{conns: map[*switchedConn]struct{}{}}
	cfg := e.config()
	for _, f := range change {
		f(&cfg)
	}
	opts = append([]Option{WithLogger(zaptest.NewLogger(t)), WithDialer(sw.dial)}, opts...)
	r, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	e.mu.Lock()
	e.nets[r] = sw
	e.mu.Unlock()
	return r, sw
}

func (e *zkEnv) harness() registrytest.Harness {
	return registrytest.Harness{
		New: func(t testing.TB, onMalformed registry.MalformedFunc) registry.Registry {
			r, _ := e.newRegistry(t, onMalformed)
			return r
		},
		WriteMalformed: e.writeMalformed,
		LoseSession:    func(t testing.TB, r registry.Registry) { e.loseSession(t, r.(*Registry)) },
		Timeout:        10 * time.Second,
		NewWithStore: func(t testing.TB, store registry.SessionStore) registry.Registry {
			r, _ := e.newRegistryWith(t, []Option{WithSessionStore(store)})
			return r
		},
		Crash:      func(t testing.TB, r registry.Registry) { e.crash(t, r.(*Registry)) },
		SessionTTL: testSessionTimeout,
	}
}

// crash cuts r off for good, as a killed process is: its connections
// close without a closeSession and it never connects again, so the server
// keeps its session until the session timeout.
func (e *zkEnv) crash(t testing.TB, r *Registry) {
	t.Helper()
	e.mu.Lock()
	sw := e.nets[r]
	e.mu.Unlock()
	if sw == nil {
		t.Fatal("Crash: not a Registry of this harness")
	}
	sw.cut()
}

// writeMalformed writes, in turn, a node name that is no URL, a provider
// URL without a port, and a provider URL of another service.
func (e *zkEnv) writeMalformed(t testing.TB, service string) string {
	t.Helper()
	n := e.bad.Add(1)
	var name string
	switch n % 3 {
	case 1:
		name = fmt.Sprintf("garbage-%d-%%zz", n)
	case 2:
		name = url.QueryEscape(fmt.Sprintf("dubbo://10.0.0.%d/%s?interface=%s&side=provider", n%250, service, service))
	default:
		name = url.QueryEscape(fmt.Sprintf("dubbo://10.0.0.%d:20880/other.Service?interface=other.Service", n%250))
	}
	path := e.root + "/" + service + "/providers/" + name
	if err := createAll(e.raw, path); err != nil {
		t.Fatalf("writing malformed node %s: %v", path, err)
	}
	return name
}

// loseSession makes the server expire r's session: it cuts r's network
// (closing its connections and refusing new ones) until the server has
// dropped the session, then lets r reconnect, which gets "session
// expired" and a new session. It returns once r has that new session.
func (e *zkEnv) loseSession(t testing.TB, r *Registry) {
	t.Helper()
	e.mu.Lock()
	sw := e.nets[r]
	e.mu.Unlock()
	if sw == nil {
		t.Fatal("LoseSession: not a Registry of this harness")
	}
	waitSession(t, r)
	old := r.conn.SessionID()
	// An ephemeral node of r's own session shows when the server has
	// dropped the session: the server deletes it then.
	marker := fmt.Sprintf("%s/_sessions/%x", e.root, old)
	if err := createAll(e.raw, e.root+"/_sessions"); err != nil && !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("LoseSession: %v", err)
	}
	if _, err := r.conn.Create(marker, nil, zk.FlagEphemeral, worldACL()); err != nil {
		t.Fatalf("LoseSession: marker node: %v", err)
	}
	sw.cut()
	poll(t, 10*testSessionTimeout, "the server to expire the session", func() bool {
		ok, _, err := e.raw.Exists(marker)
		return err == nil && !ok
	})
	sw.restore()
	poll(t, 10*testSessionTimeout, "a new session", func() bool {
		st, _, _ := r.sess.get()
		sid := r.conn.SessionID()
		return st == zk.StateHasSession && sid != 0 && sid != old
	})
}

// netSwitch is a zk.Dialer whose connections a test can cut.
type netSwitch struct {
	mu      sync.Mutex
	down    bool
	conns   map[*switchedConn]struct{}
	refused func() // called on each dial refused, if set
}

var errCut = errors.New("network cut by the test")

func (s *netSwitch) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	if s.isDown() {
		s.mu.Lock()
		f := s.refused
		s.mu.Unlock()
		if f != nil {
			f()
		}
		return nil, errCut
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		c.Close()
		return nil, errCut
	}
	sc := &switchedConn{Conn: c, s: s}
	s.conns[sc] = struct{}{}
	return sc, nil
}

// onRefuse sets a function called on every dial refused while cut.
func (s *netSwitch) onRefuse(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused = f
}

func (s *netSwitch) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// cut closes every connection and refuses new ones until restore.
func (s *netSwitch) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for c := range s.conns {
		c.Conn.Close()
	}
	clear(s.conns)
}

func (s *netSwitch) restore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = false
}

type switchedConn struct {
	net.Conn
	s *netSwitch
}

func (c *switchedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// dialRaw connects a plain client and waits for its session; it is closed
// at the end of the test.
func dialRaw(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(zkLogger{zaptest.NewLogger(t).Sugar()}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("connecting to %s: %v", addr, err)
	}
	t.Cleanup(func() {
		conn.Close()
		for range events { // closed when the client's goroutines are done
		}
	})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-deadline:
			t.Fatalf("no session with ZooKeeper at %s after 10s (state %s)", addr, conn.State())
		}
	}
}

// createAll creates path and its missing parents as persistent nodes.
func createAll(conn *zk.Conn, path string) error {
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		_, err := conn.Create(path[:i], nil, 0, worldACL())
		if err != nil && (i == len(path) || !errors.Is(err, zk.ErrNodeExists)) {
			return err
		}
	}
	return nil
}

// deleteTree deletes path and everything below it.
func deleteTree(conn *zk.Conn, path string) error {
	children, _, err := conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteTree(conn, path+"/"+c); err != nil {
			return err
		}
	}
	if err := conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return err
	}
	return nil
}

func waitSession(t testing.TB, r *Registry) {
	t.Helper()
	poll(t, 10*time.Second, "a ZooKeeper session", func() bool {
		st, _, _ := r.sess.get()
		return st == zk.StateHasSession
	})
}

// poll checks cond until it holds, failing t after d.
func poll(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	registrytest.Eventually(t, d, what, cond)
}
