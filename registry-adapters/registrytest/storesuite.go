package registrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// StoreHarness is what an adapter with a registry.Store hands
// StoreSuite.
type StoreHarness struct {
	// New returns a new client of the server under test with its own
	// session; it implements registry.Store. The harness closes it in
	// t.Cleanup; closing it twice must be harmless.
	New func(t testing.TB) registry.Registry
	// LoseSession, optional, makes the server drop r's session from
	// outside (see Harness.LoseSession).
	LoseSession func(t testing.TB, r registry.Registry)
	// Timeout bounds each wait for a change. Default 10s.
	Timeout time.Duration
	// Root is the key the suite's keys go below, each test's under a
	// name of its own; the harness cleans it up. Default "/storetest".
	Root string
}

// StoreSuite runs the registry.Store contract against h.
func StoreSuite(t *testing.T, h StoreHarness) {
	if h.Timeout == 0 {
		h.Timeout = 10 * time.Second
	}
	if h.Root == "" {
		h.Root = "/storetest"
	}
	t.Run("PutWatchDelete", func(t *testing.T) { storePutWatchDelete(t, h) })
	t.Run("Invalid", func(t *testing.T) { storeInvalid(t, h) })
	t.Run("Skip", func(t *testing.T) { storeSkip(t, h) })
	t.Run("WatchRoot", func(t *testing.T) { storeWatchRoot(t, h) })
	t.Run("EphemeralEndsWithClient", func(t *testing.T) { storeEphemeralEnds(t, h) })
	if h.LoseSession != nil {
		t.Run("EphemeralAfterSessionLoss", func(t *testing.T) { storeSessionLoss(t, h) })
	}
}

func storeOf(t testing.TB, r registry.Registry) registry.Store {
	t.Helper()
	s, ok := r.(registry.Store)
	if !ok {
		t.Fatalf("%T is no registry.Store", r)
	}
	return s
}

// uniqueRoot is a key prefix no other test uses, on a shared server too.
func uniqueRoot(h StoreHarness) string {
	return fmt.Sprintf("%s/t%d", h.Root, time.Now().UnixNano())
}

// KeyWatch follows WatchKeys of one prefix for a test.
type KeyWatch struct {
	mu      sync.Mutex
	last    map[string][]byte
	calls   int
	changed chan struct{}
	timeout time.Duration
}

// WatchKeys starts following prefix on s until the test ends.
func WatchKeys(t testing.TB, s registry.Store, prefix string, timeout time.Duration) *KeyWatch {
	return WatchKeysSkip(t, s, prefix, nil, timeout)
}

// WatchKeysSkip is WatchKeys leaving out what skip reports.
func WatchKeysSkip(t testing.TB, s registry.Store, prefix string, skip func(string) bool, timeout time.Duration) *KeyWatch {
	w := &KeyWatch{changed: make(chan struct{}, 1), timeout: timeout}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.WatchKeys(ctx, prefix, skip, func(m map[string][]byte) {
			w.mu.Lock()
			w.last, w.calls = m, w.calls+1
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// Until waits for the keys to satisfy cond, failing the test after the
// timeout with what it saw last.
func (w *KeyWatch) Until(t testing.TB, what string, cond func(map[string][]byte) bool) {
	t.Helper()
	deadline := time.After(w.timeout)
	for {
		w.mu.Lock()
		last, calls := maps.Clone(w.last), w.calls
		w.mu.Unlock()
		if calls > 0 && cond(last) {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("not within %v: %s; keys: %s", w.timeout, what, showKeys(last))
		}
	}
}

func showKeys(m map[string][]byte) string {
	var b strings.Builder
	for k, v := range m {
		fmt.Fprintf(&b, "%s=%q ", k, v)
	}
	return b.String()
}

// HasKey: m has key with value want.
func HasKey(m map[string][]byte, key, want string) bool {
	v, ok := m[key]
	return ok && bytes.Equal(v, []byte(want))
}

func storePutWatchDelete(t *testing.T, h StoreHarness) {
	ctx := context.Background()
	root := uniqueRoot(h)
	s1, s2 := storeOf(t, h.New(t)), storeOf(t, h.New(t))
	mapping, consumer, beside := root+"/mapping/org.x.S", root+"/org.x.S/consumers/c%3A%2F%2Fh", root+"x/y"
	for _, kv := range []struct {
		k, v string
		eph  bool
	}{{mapping, "app", false}, {consumer, "c", true}, {beside, "no", false}} {
		if err := s1.PutKey(ctx, kv.k, []byte(kv.v), kv.eph); err != nil {
			t.Fatalf("PutKey %s: %v", kv.k, err)
		}
	}
	t.Cleanup(func() { _ = s2.DeleteKey(ctx, beside); _ = s2.DeleteKey(ctx, mapping) })
	w := WatchKeys(t, s2, root, h.Timeout)
	w.Until(t, "both keys seen by another client", func(m map[string][]byte) bool {
		return HasKey(m, mapping, "app") && HasKey(m, consumer, "c")
	})
	w.mu.Lock()
	seen := maps.Clone(w.last)
	w.mu.Unlock()
	for k, v := range seen {
		// Only the keys put, and (ZooKeeper) their ancestors made empty.
		if k != mapping && k != consumer && !(len(v) == 0 && (strings.HasPrefix(mapping, k+"/") || strings.HasPrefix(consumer, k+"/"))) {
			t.Errorf("watch of %s has %s=%q", root, k, v)
		}
	}
	if err := s1.PutKey(ctx, mapping, []byte("app,app2"), false); err != nil {
		t.Fatal(err)
	}
	w.Until(t, "new value", func(m map[string][]byte) bool { return HasKey(m, mapping, "app,app2") })
	if err := s1.DeleteKey(ctx, consumer); err != nil {
		t.Fatal(err)
	}
	w.Until(t, "deleted key gone", func(m map[string][]byte) bool { _, ok := m[consumer]; return !ok })
	if err := s1.DeleteKey(ctx, consumer); err != nil {
		t.Errorf("DeleteKey of a missing key = %v, want nil", err)
	}
	// A watch of the key itself.
	w2 := WatchKeys(t, s2, mapping, h.Timeout)
	w2.Until(t, "watch of one key", func(m map[string][]byte) bool { return len(m) == 1 && HasKey(m, mapping, "app,app2") })
}

func storeInvalid(t *testing.T, h StoreHarness) {
	s := storeOf(t, h.New(t))
	for _, k := range []string{"", "rel/ative", "/a/", "/a//b", "/a/../b", "/a\x00b"} {
		if err := s.PutKey(context.Background(), k, nil, false); !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("PutKey(%q) = %v, want ErrInvalid", k, err)
		}
	}
}

func storeEphemeralEnds(t *testing.T, h StoreHarness) {
	ctx := context.Background()
	root := uniqueRoot(h)
	r1 := h.New(t)
	s1, s2 := storeOf(t, r1), storeOf(t, h.New(t))
	eph, per := root+"/consumers/c1", root+"/config/app"
	if err := s1.PutKey(ctx, eph, []byte("e"), true); err != nil {
		t.Fatal(err)
	}
	if err := s1.PutKey(ctx, per, []byte("p"), false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s2.DeleteKey(ctx, per) })
	w := WatchKeys(t, s2, root, h.Timeout)
	w.Until(t, "both keys", func(m map[string][]byte) bool { return HasKey(m, eph, "e") && HasKey(m, per, "p") })
	if err := r1.Close(); err != nil {
		t.Logf("Close: %v", err)
	}
	w.Until(t, "the ephemeral key gone with its client, the other kept", func(m map[string][]byte) bool {
		_, ok := m[eph]
		return !ok && HasKey(m, per, "p")
	})
}

func storeSessionLoss(t *testing.T, h StoreHarness) {
	ctx := context.Background()
	root := uniqueRoot(h)
	r1 := h.New(t)
	s1, s2 := storeOf(t, r1), storeOf(t, h.New(t))
	eph := root + "/consumers/c1"
	if err := s1.PutKey(ctx, eph, []byte("e"), true); err != nil {
		t.Fatal(err)
	}
	w := WatchKeys(t, s2, root, h.Timeout)
	w.Until(t, "the key", func(m map[string][]byte) bool { return HasKey(m, eph, "e") })
	h.LoseSession(t, r1)
	// A new watch reads the server after the loss: the key is there only
	// once the client wrote it again.
	w = WatchKeys(t, s2, root, h.Timeout)
	w.Until(t, "the key written again under the new session", func(m map[string][]byte) bool { return HasKey(m, eph, "e") })
	// And it is the new session's: it goes with the client.
	_ = r1.Close()
	w.Until(t, "the key gone with its client", func(m map[string][]byte) bool { _, ok := m[eph]; return !ok })
}

func storeSkip(t *testing.T, h StoreHarness) {
	ctx := context.Background()
	root := uniqueRoot(h)
	s := storeOf(t, h.New(t))
	kept, skipped, below := root+"/S/consumers/c", root+"/S/providers", root+"/S/providers/p1"
	for _, k := range []string{kept, below} {
		if err := s.PutKey(ctx, k, []byte("v"), true); err != nil {
			t.Fatal(err)
		}
	}
	w := WatchKeysSkip(t, s, root, func(k string) bool { return k == skipped }, h.Timeout)
	w.Until(t, "the key not skipped", func(m map[string][]byte) bool { return HasKey(m, kept, "v") })
	if err := s.PutKey(ctx, below+"x", []byte("v"), true); err != nil { // a change in the skipped subtree
		t.Fatal(err)
	}
	if err := s.PutKey(ctx, kept, []byte("v2"), true); err != nil {
		t.Fatal(err)
	}
	w.Until(t, "the change", func(m map[string][]byte) bool { return HasKey(m, kept, "v2") })
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.last {
		if strings.HasPrefix(k, skipped) {
			t.Errorf("skipped %s seen", k)
		}
	}
}

// storeWatchRoot: a watch of "/" sees every key (ZooKeeper: but its own
// /zookeeper), and "/" itself is no key.
func storeWatchRoot(t *testing.T, h StoreHarness) {
	ctx := context.Background()
	k := uniqueRoot(h) + "/x"
	s := storeOf(t, h.New(t))
	if err := s.PutKey(ctx, k, []byte("v"), true); err != nil {
		t.Fatal(err)
	}
	w := WatchKeys(t, s, "/", h.Timeout)
	w.Until(t, "the key, and neither / nor /zookeeper", func(m map[string][]byte) bool {
		_, zk := m["/zookeeper"]
		_, root := m["/"]
		return HasKey(m, k, "v") && !zk && !root
	})
}
