package zookeeper

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// countingStore is a MemoryStore that counts writes and can be made to
// fail, as a registry out of reach.
type countingStore struct {
	*frontend.MemoryStore
	mu     sync.Mutex
	writes int
	down   bool
}

var errDown = errors.New("registry unavailable (test)")

func (s *countingStore) Put(ctx context.Context, key string, data []byte, eph bool) error {
	if err := s.count(); err != nil {
		return err
	}
	return s.MemoryStore.Put(ctx, key, data, eph)
}

func (s *countingStore) Delete(ctx context.Context, key string) error {
	if err := s.count(); err != nil {
		return err
	}
	return s.MemoryStore.Delete(ctx, key)
}

func (s *countingStore) count() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	s.writes++
	return nil
}

func (s *countingStore) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

func (s *countingStore) count0() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// get reads key from the store, "" and false if missing.
func (s *countingStore) get(t *testing.T, key string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var v string
	var ok bool
	_ = s.Watch(ctx, key, nil, func(m map[string][]byte) {
		var b []byte
		b, ok = m[key]
		v = string(b)
		cancel()
	})
	return v, ok
}

func testOwns(p string) bool { return strings.Contains(p, "/providers") }

// startHost is one host's front end with its pass-through over store.
func startHost(t *testing.T, store frontend.Store, sessions SessionStore) (*testServer, *Passthrough) {
	t.Helper()
	pt := NewPassthrough(store, DefaultPassthrough(), testOwns, zaptest.NewLogger(t))
	opts := []Option{WithObserver(pt)}
	if sessions != nil {
		opts = append(opts, WithSessionStore(sessions))
	}
	srv := startServer(t, testConfig(), opts...)
	pt.Start(srv.Server)
	t.Cleanup(pt.Close)
	return srv, pt
}

// eventually polls cond until it holds, failing the test after wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(wait)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("not within %v: %s", wait, what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func dataOf(zc *zkClient, p string) string {
	b, _, err := zc.Get(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestPassthroughTwoHosts(t *testing.T) {
	store := &countingStore{MemoryStore: frontend.NewMemoryStore()}
	a, _ := startHost(t, store, nil)
	b, ptB := startHost(t, store, nil)
	za := connectZK(t, a.addr, 10*time.Second)
	zb := connectZK(t, b.addr, 10*time.Second)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{"/dubbo", "/dubbo/mapping", "/dubbo/org.x.S", "/dubbo/org.x.S/consumers", "/dubbo/org.x.S/providers"} {
		if _, err := za.Create(p, nil, 0, acl); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	if _, err := za.Create("/dubbo/mapping/org.x.S", []byte("app"), 0, acl); err != nil {
		t.Fatal(err)
	}
	consumer := "/dubbo/org.x.S/consumers/consumer%3A%2F%2F10.0.0.1"
	if _, err := za.Create(consumer, []byte("c"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := za.Create("/dubbo/org.x.S/providers/p1", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := za.Create("/local", nil, 0, acl); err != nil { // not under a root
		t.Fatal(err)
	}

	eventually(t, "B reads A's mapping", func() bool { return dataOf(zb, "/dubbo/mapping/org.x.S") == "app" })
	eventually(t, "B reads A's consumer", func() bool { return dataOf(zb, consumer) == "c" })
	if v, ok := store.get(t, "/dubbo/mapping/org.x.S"); !ok || v != "app" {
		t.Errorf("store has mapping %q %v, want app", v, ok)
	}
	for _, p := range []string{"/dubbo/org.x.S/providers/p1", "/dubbo/org.x.S/providers", "/local"} {
		if _, ok := store.get(t, p); ok {
			t.Errorf("store has %s: the rewrite layer's or not under a root", p)
		}
		if ok, _, _ := zb.Exists(p); ok {
			t.Errorf("B has %s", p)
		}
	}
	// NodeExists on B, as on one ZooKeeper.
	if _, err := zb.Create("/dubbo/mapping/org.x.S", []byte("other"), 0, acl); !errors.Is(err, zk.ErrNodeExists) {
		t.Errorf("B's create of A's node = %v, want NodeExists", err)
	}
	// No echo: B's mirror wrote nothing.
	written := store.count0()
	if written != 6 {
		t.Errorf("store writes = %d, want 6 (A's nodes under /dubbo, but providers)", written)
	}
	if ptB.Pending() != 0 {
		t.Errorf("B has %d writes pending, want 0", ptB.Pending())
	}

	// A watch on B fires for A's change.
	_, _, ch, err := zb.GetW("/dubbo/mapping/org.x.S")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := za.Set("/dubbo/mapping/org.x.S", []byte("app,app2"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-ch.EvtCh:
		if ev.Type != zk.EventNodeDataChanged {
			t.Errorf("B's watch: %v, want NodeDataChanged", ev.Type)
		}
	case <-time.After(wait):
		t.Fatal("B's data watch did not fire")
	}
	if got := dataOf(zb, "/dubbo/mapping/org.x.S"); got != "app,app2" {
		t.Errorf("B reads %q", got)
	}

	// B's write comes back to A.
	if _, err := zb.Set("/dubbo/mapping/org.x.S", []byte("app3"), -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A reads B's change", func() bool { return dataOf(za, "/dubbo/mapping/org.x.S") == "app3" })

	// A's app session ends: its ephemeral consumer goes on B too.
	_, _, kids, err := zb.ChildrenW("/dubbo/org.x.S/consumers")
	if err != nil {
		t.Fatal(err)
	}
	za.Close()
	select {
	case ev := <-kids.EvtCh:
		if ev.Type != zk.EventNodeChildrenChanged {
			t.Errorf("B's child watch: %v", ev.Type)
		}
	case <-time.After(wait):
		t.Fatal("B's child watch did not fire when A's session ended")
	}
	if ok, _, _ := zb.Exists(consumer); ok {
		t.Error("A's ephemeral consumer still on B")
	}
	if _, ok := store.get(t, consumer); ok {
		t.Error("A's ephemeral consumer still in the store")
	}
	if got := dataOf(zb, "/dubbo/mapping/org.x.S"); got != "app3" {
		t.Errorf("persistent mapping on B after A's session ended: %q", got)
	}

	// B deletes a node A made: gone everywhere.
	if err := zb.Delete("/dubbo/mapping/org.x.S", -1); err != nil {
		t.Fatal(err)
	}
	za2 := connectZK(t, a.addr, 10*time.Second)
	eventually(t, "A sees B's delete", func() bool { ok, _, _ := za2.Exists("/dubbo/mapping/org.x.S"); return !ok })
}

func TestPassthroughOutage(t *testing.T) {
	store := &countingStore{MemoryStore: frontend.NewMemoryStore()}
	a, pt := startHost(t, store, nil)
	za := connectZK(t, a.addr, 10*time.Second)
	acl := zk.WorldACL(zk.PermAll)
	store.setDown(true)
	for _, p := range []string{"/dubbo", "/dubbo/config"} {
		if _, err := za.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := za.Create("/dubbo/config/app.rules", []byte("v1"), 0, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := za.Set("/dubbo/config/app.rules", []byte("v2"), -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "writes queued", func() bool { return pt.Pending() == 3 })
	// The app reads its own writes meanwhile.
	if got := dataOf(za, "/dubbo/config/app.rules"); got != "v2" {
		t.Errorf("app reads %q during the outage", got)
	}
	store.setDown(false)
	eventually(t, "writes made after the outage", func() bool { return pt.Pending() == 0 })
	if v, ok := store.get(t, "/dubbo/config/app.rules"); !ok || v != "v2" {
		t.Errorf("store has %q %v, want v2", v, ok)
	}
	if got := dataOf(za, "/dubbo/config/app.rules"); got != "v2" {
		t.Errorf("app reads %q after the outage", got)
	}
}

func TestPassthroughRestart(t *testing.T) {
	store := &countingStore{MemoryStore: frontend.NewMemoryStore()}
	sessions := &memStore{}
	srv, pt := startHost(t, store, sessions)
	zc := connectZK(t, srv.addr, 30*time.Second)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{"/dubbo", "/dubbo/org.x.S", "/dubbo/org.x.S/consumers"} {
		if _, err := zc.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	consumer := "/dubbo/org.x.S/consumers/c1"
	if _, err := zc.Create(consumer, []byte("c"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	eventually(t, "consumer written", func() bool { _, ok := store.get(t, consumer); return ok })
	// The agent stops; the app's session lives on in the session store.
	_ = srv.Close()
	pt.Close()
	zc.Close()
	// The registry lost the key meanwhile (a new registry session).
	_ = store.Delete(context.Background(), consumer)

	// The next run restores the app's session, and writes its ephemeral
	// node again; the app's persistent nodes, read back from the store,
	// are in the tree.
	srv2, _ := startHost(t, store, sessions)
	eventually(t, "restored ephemeral written again", func() bool { v, ok := store.get(t, consumer); return ok && v == "c" })
	zc2 := connectZK(t, srv2.addr, 30*time.Second)
	eventually(t, "tree has the nodes back", func() bool { return dataOf(zc2, consumer) == "c" })
	if ok, _, _ := zc2.Exists("/dubbo/org.x.S/consumers"); !ok {
		t.Error("persistent parent not read back from the store")
	}
}

// TestPassthroughForeignKeys: what the store holds that this front end
// must not serve (the rewrite layer's paths, keys that are no ZooKeeper
// path, the server's own /zookeeper) is left out; the rest is served.
func TestPassthroughForeignKeys(t *testing.T) {
	store := frontend.NewMemoryStore()
	ctx := context.Background()
	for _, k := range []string{"/dubbo/S/providers/p1", "/dubbo/a//b", "/dubbo/./b", "/dubbo/a\x00b", "/dubbo/", "/zookeeper/quota/x", "/dubbo/ok"} {
		_ = store.Put(ctx, k, []byte("v"), false)
	}
	srv, _ := startHost(t, store, nil)
	zc := connectZK(t, srv.addr, 10*time.Second)
	eventually(t, "the good key served", func() bool { return dataOf(zc, "/dubbo/ok") == "v" })
	kids, _, err := zc.Children("/dubbo")
	if err != nil {
		t.Fatal(err)
	}
	if len(kids) != 1 || kids[0] != "ok" {
		t.Errorf("/dubbo has %q, want only ok", kids)
	}
}

func TestPassthroughConfig(t *testing.T) {
	if err := DefaultPassthrough().Validate(); err != nil {
		t.Errorf("default: %v", err)
	}
	if err := (PassthroughConfig{Roots: []string{"/"}}).Validate(); err != nil {
		t.Errorf("[/]: %v", err)
	}
	cfg := Default()
	cfg.Passthrough.Roots = []string{"dubbo", "/zookeeper/x", "/a", "/a/b", "/c/"}
	err := cfg.Validate()
	for _, want := range []string{
		`passthrough.roots[0]: "dubbo" is not a ZooKeeper path`,
		`passthrough.roots[1]: "/zookeeper/x" is the server's own`,
		`passthrough.roots[3]: "/a/b" overlaps roots[2] "/a"`,
		`passthrough.roots[4]: "/c/" is not a ZooKeeper path`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}
