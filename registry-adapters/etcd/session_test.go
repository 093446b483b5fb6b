package etcd_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// TestResumeWritesNothing: the restarted client keeps the old lease, and
// registering an adopted endpoint again unchanged leaves its key as it is
// (same revision: no event for any watcher); changed, it is one put
// under the same lease.
func TestResumeWritesNothing(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	path := filepath.Join(t.TempDir(), "session")
	first := registrytest.NewFileStore(path)
	r1 := newRegistry(t, srv, etcd.WithSessionStore(first))
	ep := registry.Endpoint{Service: registrytest.Service(t), Addr: "127.0.0.2:9000", Metadata: map[string]string{"v": "1"}}
	mustRegister(t, r1, ep)
	key := etcd.DefaultPrefix + "/" + ep.Service + "/" + ep.Addr
	before := getKV(t, raw, key)
	crash(t, r1)
	first.Freeze()

	r2 := newRegistry(t, srv, etcd.WithSessionStore(registrytest.NewFileStore(path)))
	if got := r2.Adopted(); len(got) != 1 || !got[0].Equal(mustNormalize(t, ep)) {
		t.Fatalf("Adopted = %s, want %s", registrytest.Format(got), ep)
	}
	mustRegister(t, r2, ep)
	if after := getKV(t, raw, key); after.ModRevision != before.ModRevision || after.Lease != before.Lease {
		t.Errorf("unchanged Register of an adopted key: revision %d → %d, lease %x → %x; want both unchanged",
			before.ModRevision, after.ModRevision, before.Lease, after.Lease)
	}
	ep.Metadata = map[string]string{"v": "2"}
	mustRegister(t, r2, ep)
	if after := getKV(t, raw, key); after.ModRevision == before.ModRevision || after.Lease != before.Lease || after.CreateRevision != before.CreateRevision {
		t.Errorf("changed Register of an adopted key: revision %d → %d, created %d → %d, lease %x → %x; want a new revision of the same key, same lease",
			before.ModRevision, after.ModRevision, before.CreateRevision, after.CreateRevision, before.Lease, after.Lease)
	}
}

// TestResumeSavesEveryLease: the store follows the lease, through a lease
// lost and replaced, and is emptied by Close.
func TestResumeSavesEveryLease(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	store := registrytest.NewFileStore(filepath.Join(t.TempDir(), "session"))
	r := newRegistry(t, srv, etcd.WithSessionStore(store))
	if n := store.Saves(); n != 0 {
		t.Errorf("%d saves before any registration, want none", n)
	}
	ep := registry.Endpoint{Service: registrytest.Service(t), Addr: "127.0.0.2:9000"}
	mustRegister(t, r, ep)
	key := etcd.DefaultPrefix + "/" + ep.Service + "/" + ep.Addr
	if got, want := storedLease(t, store), getKV(t, raw, key).Lease; got != want {
		t.Fatalf("stored lease %x, the key's %x", got, want)
	}
	old := revokeLease(t, raw, key)
	registrytest.Eventually(t, 10*time.Second, "a new lease stored", func() bool {
		kv := getKVOrNil(t, raw, key)
		return kv != nil && kv.Lease != int64(old) && storedLease(t, store) == kv.Lease
	})
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := store.Load(); err != nil || len(b) != 0 {
		t.Errorf("store after Close = %q, %v; want empty", b, err)
	}
}

// TestResumeRefusesOthers: a stored lease is taken back only if it lives,
// in the same etcd cluster, under the same prefix; anything else, a
// store that cannot be read included, starts a new lease as without a
// store. The keys of a lease taken back that are no registration of the
// layout are deleted.
func TestResumeRefusesOthers(t *testing.T) {
	srv := startServer(t)
	raw := rawClient(t, srv)
	grant, err := raw.Grant(testContext(t), 60)
	if err != nil {
		t.Fatal(err)
	}
	svc := registrytest.Service(t)
	good := registry.Endpoint{Service: svc, Addr: "127.0.0.2:9000"}
	goodValue := fmt.Sprintf(`{"Op":0,"Addr":%q,"Metadata":{"weight":"100"}}`, good.Addr)
	keys := map[string]string{
		etcd.DefaultPrefix + "/" + svc + "/" + good.Addr: goodValue,
		etcd.DefaultPrefix + "/" + svc + "/127.0.0.9:1":  "{not json",
		"elsewhere/" + svc: "x",
	}
	for k, v := range keys {
		if _, err := raw.Put(testContext(t), k, v, clientv3.WithLease(grant.ID)); err != nil {
			t.Fatal(err)
		}
	}
	state := func(lease int64, cluster uint64, prefix string) string {
		b, _ := json.Marshal(map[string]any{"lease_id": lease, "cluster_id": cluster, "prefix": prefix})
		return string(b)
	}
	for _, tc := range []struct {
		name, stored string
	}{
		{"garbage", "{not json"},
		{"no such lease", state(0x7fff0000, grant.ClusterId, etcd.DefaultPrefix)},
		{"other cluster", state(int64(grant.ID), grant.ClusterId+1, etcd.DefaultPrefix)},
		{"other prefix", state(int64(grant.ID), grant.ClusterId, "other/prefix")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := registrytest.NewFileStore(filepath.Join(t.TempDir(), "session"))
			if err := store.Save([]byte(tc.stored)); err != nil {
				t.Fatal(err)
			}
			r := newRegistry(t, srv, etcd.WithSessionStore(store))
			if got := r.Adopted(); got != nil {
				t.Errorf("Adopted = %s, want nil", registrytest.Format(got))
			}
			ep := registry.Endpoint{Service: svc, Addr: "127.0.0.3:9000"}
			mustRegister(t, r, ep)
			if kv := getKV(t, raw, etcd.DefaultPrefix+"/"+svc+"/"+ep.Addr); kv.Lease == int64(grant.ID) {
				t.Errorf("registered under the stored lease %x", grant.ID)
			}
			if err := r.Deregister(testContext(t), svc, ep.Addr); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("taken back", func(t *testing.T) {
		store := registrytest.NewFileStore(filepath.Join(t.TempDir(), "session"))
		if err := store.Save([]byte(state(int64(grant.ID), grant.ClusterId, etcd.DefaultPrefix))); err != nil {
			t.Fatal(err)
		}
		r := newRegistry(t, srv, etcd.WithSessionStore(store))
		if got, want := r.Adopted(), []registry.Endpoint{mustNormalize(t, good)}; !registry.EqualSets(got, want) {
			t.Errorf("Adopted = %s, want %s", registrytest.Format(got), registrytest.Format(want))
		}
		for k := range keys {
			if kv := getKVOrNil(t, raw, k); (kv != nil) != (k == etcd.DefaultPrefix+"/"+svc+"/"+good.Addr) {
				t.Errorf("key %s: %v; want only the registration kept", k, kv)
			}
		}
	})
}

func getKVOrNil(t testing.TB, raw *clientv3.Client, key string) *kv {
	t.Helper()
	resp, err := raw.Get(testContext(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	k := resp.Kvs[0]
	return &kv{ModRevision: k.ModRevision, CreateRevision: k.CreateRevision, Lease: k.Lease}
}

func getKV(t testing.TB, raw *clientv3.Client, key string) kv {
	t.Helper()
	k := getKVOrNil(t, raw, key)
	if k == nil {
		t.Fatalf("%s is missing", key)
	}
	return *k
}

type kv struct {
	ModRevision, CreateRevision, Lease int64
}

// storedLease reads the lease id the adapter stored.
func storedLease(t testing.TB, store registry.SessionStore) int64 {
	t.Helper()
	b, err := store.Load()
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Lease int64 `json:"lease_id"`
	}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("stored %q: %v", b, err)
		}
	}
	return st.Lease
}

func mustNormalize(t testing.TB, ep registry.Endpoint) registry.Endpoint {
	t.Helper()
	n, err := ep.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	return n
}
