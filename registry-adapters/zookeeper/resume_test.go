package zookeeper

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// crashed registers eps on a Registry with a store at path, crashes it
// and returns its session id and what it stored.
func crashed(t *testing.T, env *zkEnv, path string, eps ...registry.Endpoint) (int64, storedSession) {
	t.Helper()
	store := registrytest.NewFileStore(path)
	r, _ := env.newRegistryWith(t, []Option{WithSessionStore(store)})
	for _, ep := range eps {
		mustRegister(t, r, ep)
	}
	sid := r.conn.SessionID()
	env.crash(t, r)
	store.Freeze()
	var st storedSession
	b, err := store.Load()
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Fatalf("stored session %q: %v", b, err)
	}
	if st.SessionID != sid || len(st.Password) != 16 {
		t.Fatalf("stored session %x with a %d-byte password; want %x and 16 bytes", st.SessionID, len(st.Password), sid)
	}
	return sid, st
}

// TestResumeLeavesNodesAlone: the restarted client has the old session,
// and registering an adopted endpoint again unchanged leaves its node as
// it is; with other metadata it is swapped for a new node of the same
// session.
func TestResumeLeavesNodesAlone(t *testing.T) {
	env := newEnv(t)
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000", Metadata: map[string]string{"version": "1.0.0"}}
	path := filepath.Join(t.TempDir(), "session")
	sid, st := crashed(t, env, path, ep)
	node := st.Nodes[0]
	_, before, err := env.raw.Get(node)
	if err != nil {
		t.Fatal(err)
	}

	r, _ := env.newRegistryWith(t, []Option{WithSessionStore(registrytest.NewFileStore(path))})
	if got := r.conn.SessionID(); got != sid {
		t.Fatalf("session after the restart %x, want the old %x", got, sid)
	}
	if got := r.Adopted(); !registry.EqualSets(got, normalized(t, ep)) {
		t.Fatalf("Adopted = %s, want %s", registrytest.Format(got), ep)
	}
	mustRegister(t, r, ep)
	_, after, err := env.raw.Get(node)
	if err != nil || after.Czxid != before.Czxid || after.EphemeralOwner != sid {
		t.Errorf("node after Register unchanged: %+v, %v; want the same node (czxid %d) of session %x", after, err, before.Czxid, sid)
	}
	ep.Metadata = map[string]string{"version": "2.0.0"}
	mustRegister(t, r, ep)
	children, _, err := env.raw.Children(r.providersPath(svc))
	if err != nil || len(children) != 1 || r.providersPath(svc)+"/"+children[0] == node {
		t.Fatalf("providers after Register changed = %v, %v; want one new node", children, err)
	}
	if ok, _, _ := env.raw.Exists(node); ok {
		t.Errorf("old node %s still there", node)
	}
}

// TestResumeDeletesStrays: nodes of the stored session that are no
// registration of this layout, or a second node of one address, are
// deleted after the restart; the registrations stay.
func TestResumeDeletesStrays(t *testing.T) {
	env := newEnv(t)
	svc := registrytest.Service(t)
	ep := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	path := filepath.Join(t.TempDir(), "session")
	store := registrytest.NewFileStore(path)
	r1, _ := env.newRegistryWith(t, []Option{WithSessionStore(store)})
	mustRegister(t, r1, ep)
	// Nodes of r1's session that the store names, as if an earlier run
	// had made them: one elsewhere, an older node of ep's address.
	elsewhere := env.root + "/elsewhere/x"
	older := r1.providersPath(svc) + "/" + providerURL(mustNormal(t, ep), "dubbo", time.UnixMilli(1)).NodeName()
	if err := createAll(env.raw, env.root+"/elsewhere"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{elsewhere, older} {
		if _, err := r1.conn.Create(p, nil, zk.FlagEphemeral, worldACL()); err != nil {
			t.Fatalf("create %s: %v", p, err)
		}
	}
	b, _ := store.Load()
	var st storedSession
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	kept := st.Nodes[0]
	st.Nodes = append(st.Nodes, elsewhere, older, env.root+"/gone")
	b, _ = json.Marshal(st)
	env.crash(t, r1)
	if err := store.Save(b); err != nil {
		t.Fatal(err)
	}
	store.Freeze()

	r2, _ := env.newRegistryWith(t, []Option{WithSessionStore(registrytest.NewFileStore(path))})
	if got := r2.Adopted(); !registry.EqualSets(got, normalized(t, ep)) {
		t.Fatalf("Adopted = %s, want %s", registrytest.Format(got), ep)
	}
	poll(t, 10*time.Second, "the strays deleted", func() bool {
		a, _, _ := env.raw.Exists(elsewhere)
		b, _, _ := env.raw.Exists(older)
		return !a && !b
	})
	if ok, stat, err := env.raw.Exists(kept); err != nil || !ok || stat.EphemeralOwner != st.SessionID {
		t.Errorf("registration %s: %v, %+v, %v; want it kept", kept, ok, stat, err)
	}
}

// TestResumeLate: the server cannot be reached while New waits for it, so
// nothing is adopted; when it can, the client gets the stored session
// after all, and deletes the nodes nobody registered again.
func TestResumeLate(t *testing.T) {
	env := newEnv(t)
	svc := registrytest.Service(t)
	e1 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	e2 := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9001"}
	path := filepath.Join(t.TempDir(), "session")
	sid, st := crashed(t, env, path, e1, e2)

	sw := &netSwitch{down: true, conns: map[*switchedConn]struct{}{}}
	cfg := env.config()
	cfg.RequestTimeout = 200 * time.Millisecond
	r, err := New(cfg, WithLogger(zaptest.NewLogger(t)), WithDialer(sw.dial), WithSessionStore(registrytest.NewFileStore(path)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if got := r.Adopted(); got != nil {
		t.Errorf("Adopted without an answer = %s, want nil", registrytest.Format(got))
	}
	sw.restore()
	waitSession(t, r)
	if got := r.conn.SessionID(); got != sid {
		t.Fatalf("session %x, want the stored %x taken back late", got, sid)
	}
	poll(t, 10*time.Second, "the stored nodes deleted", func() bool {
		children, _, err := env.raw.Children(r.providersPath(svc))
		return err == nil && len(children) == 0
	})
	mustRegister(t, r, e1)
	children, _, err := env.raw.Children(r.providersPath(svc))
	if err != nil || len(children) != 1 || slices.Contains(st.Nodes, r.providersPath(svc)+"/"+children[0]) {
		t.Errorf("providers = %v, %v; want one new node", children, err)
	}
	if err := r.Deregister(testCtx(t), svc, e2.Addr); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Deregister of a node not adopted = %v, want ErrNotFound", err)
	}
}

func mustNormal(t *testing.T, ep registry.Endpoint) registry.Endpoint {
	t.Helper()
	return normalized(t, ep)[0]
}
