package zookeeper

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// recorder is an Observer that writes down what it is told.
type recorder struct {
	mu       sync.Mutex
	calls    []string
	restored []RestoredSession
	onCall   func(string) // called outside mu, from the Server's goroutine
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	f := r.onCall
	r.mu.Unlock()
	if f != nil {
		f(s)
	}
}

func (r *recorder) NodeCreated(session int64, path string, data []byte, eph bool) {
	r.add(fmt.Sprintf("created %s %q ephemeral=%v session=%v", path, data, eph, session != 0))
}
func (r *recorder) NodeDataChanged(session int64, path string, data []byte) {
	r.add(fmt.Sprintf("changed %s %q", path, data))
}
func (r *recorder) NodeDeleted(session int64, path string) {
	r.add(fmt.Sprintf("deleted %s session=%v", path, session != 0))
}
func (r *recorder) SessionEnded(session int64) { r.add("ended") }
func (r *recorder) SessionsRestored(s []RestoredSession) {
	r.mu.Lock()
	r.restored = s
	r.mu.Unlock()
	r.add(fmt.Sprintf("restored %d", len(s)))
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// waitCalls waits until the recorder has been told exactly want.
func (r *recorder) waitCalls(t *testing.T, want []string) {
	t.Helper()
	registrytest.Eventually(t, wait, fmt.Sprintf("observer calls %q", want), func() bool {
		return len(r.snapshot()) >= len(want)
	})
	if got := r.snapshot(); !reflect.DeepEqual(got, want) {
		t.Fatalf("observer calls:\n got %q\nwant %q", got, want)
	}
}

func TestObserver(t *testing.T) {
	rec := &recorder{}
	s := startServer(t, testConfig(), WithObserver(rec))
	var changed atomic.Int32
	rec.waitCalls(t, []string{`restored 0`}) // at New, before the hook below is set
	rec.mu.Lock()
	rec.onCall = func(string) { // calling back into the Server must not deadlock
		s.OverlayChanged("/from-observer")
		changed.Add(1)
	}
	rec.mu.Unlock()
	c := connectZK(t, s.addr, 10*time.Second)
	_, _ = c.Create("/p", []byte("1"), 0, worldACL)
	_, _ = c.Create("/p/e", []byte("2"), zk.FlagEphemeral, worldACL)
	_, _ = c.Set("/p/e", []byte("3"), -1)
	_, _ = c.Create("/p/gone", nil, 0, worldACL)
	_ = c.Delete("/p/gone", -1)
	_, _ = c.Multi(&zk.CreateRequest{Path: "/m", Acl: worldACL}, &zk.DeleteRequest{Path: "/nope", Version: -1}) // fails: nothing told
	c.Close()
	rec.waitCalls(t, []string{
		`restored 0`, // always first, even when nothing was restored
		`created /p "1" ephemeral=false session=true`,
		`created /p/e "2" ephemeral=true session=true`,
		`changed /p/e "3"`,
		`created /p/gone "" ephemeral=false session=true`,
		`deleted /p/gone session=true`,
		`deleted /p/e session=true`,
		`ended`,
	})
	if changed.Load() != 7 {
		t.Fatalf("observer callbacks done: %d", changed.Load())
	}
}

// testOverlay serves a snapshot a test replaces.
type testOverlay struct {
	snap atomic.Pointer[overlaySnap]
}

type overlaySnap struct {
	kids map[string][]string
	data map[string][]byte
}

func (o *testOverlay) set(kids map[string][]string, data map[string][]byte) {
	o.snap.Store(&overlaySnap{kids: kids, data: data})
}

func (o *testOverlay) Children(p string) ([]string, bool) {
	s := o.snap.Load()
	k, ok := s.kids[p]
	return k, ok
}

func (o *testOverlay) Data(p string) ([]byte, bool) {
	s := o.snap.Load()
	d, ok := s.data[p]
	return d, ok
}

func TestOverlay(t *testing.T) {
	ov := &testOverlay{}
	prov := "/dubbo/svc/providers"
	ov.set(map[string][]string{prov: {"url1"}}, map[string][]byte{prov + "/url1": []byte("d1")})
	rec := &recorder{}
	s := startServer(t, testConfig(), WithOverlay(ov), WithObserver(rec))
	c := connectZK(t, s.addr, 10*time.Second)

	// The overlay's path exists, with its children, where the tree has nothing.
	kids, st, cw, err := c.ChildrenW(prov)
	if err != nil || !reflect.DeepEqual(kids, []string{"url1"}) || st.NumChildren != 1 {
		t.Fatalf("children = %v %+v %v", kids, st, err)
	}
	if ok, _, _ := c.Exists(prov); !ok {
		t.Fatal("the overlay's path does not exist")
	}
	d, _, dw, err := c.GetW(prov + "/url1")
	if err != nil || string(d) != "d1" {
		t.Fatalf("get a synthesized child = %q %v", d, err)
	}
	_, _, ew, _ := c.ExistsW(prov + "/url2")
	_, _, gw, _ := c.GetW(prov + "/url1") // set again below, after the first fires

	// A provider registers under it: the tree gets it (parents made), the
	// observer is told, and reads still show the overlay's answer.
	if _, err := c.Create(prov+"/app-url", []byte("mine"), zk.FlagEphemeral, worldACL); err != nil {
		t.Fatalf("create under the overlay: %v", err)
	}
	if kids, _, _ := c.Children(prov); !reflect.DeepEqual(kids, []string{"url1"}) {
		t.Fatalf("children after the create = %v", kids)
	}
	if d, _, _ := c.Get(prov + "/app-url"); string(d) != "mine" {
		t.Fatalf("the tree's own node: %q", d)
	}
	rec.waitCalls(t, []string{
		`restored 0`,
		`created /dubbo "" ephemeral=false session=true`,
		`created /dubbo/svc "" ephemeral=false session=true`,
		`created /dubbo/svc/providers "" ephemeral=false session=true`,
		`created /dubbo/svc/providers/app-url "mine" ephemeral=true session=true`,
	})
	waitWatch(t, cw, zk.EventNodeChildrenChanged, prov) // the tree's create fired it

	// The overlay changes: url1's data, url2 appears.
	_, _, cw, _ = c.ChildrenW(prov)
	ov.set(map[string][]string{prov: {"url1", "url2"}}, map[string][]byte{prov + "/url1": []byte("d1b"), prov + "/url2": nil})
	s.OverlayChanged(prov)
	waitWatch(t, cw, zk.EventNodeChildrenChanged, prov)
	waitWatch(t, dw, zk.EventNodeDataChanged, prov+"/url1")
	waitWatch(t, ew, zk.EventNodeCreated, prov+"/url2")
	select {
	case e := <-gw.EvtCh:
		if e.Type != zk.EventNodeDataChanged {
			t.Fatalf("second data watch: %v", e.Type)
		}
	case <-time.After(wait):
		t.Fatal("second data watch did not fire")
	}
	kids, st, _ = c.Children(prov)
	if !reflect.DeepEqual(kids, []string{"url1", "url2"}) || st.NumChildren != 2 {
		t.Fatalf("children = %v %+v", kids, st)
	}
	// url1 goes: a watch on it sees it deleted; an unchanged one is quiet.
	_, _, dw, _ = c.GetW(prov + "/url1")
	_, _, quiet, _ := c.GetW(prov + "/url2")
	ov.set(map[string][]string{prov: {"url2"}}, map[string][]byte{prov + "/url2": nil})
	s.OverlayChanged(prov)
	waitWatch(t, dw, zk.EventNodeDeleted, prov+"/url1")
	if _, err := c.Sync("/"); err != nil { // events due come before this reply
		t.Fatal(err)
	}
	select {
	case e := <-quiet.EvtCh:
		t.Fatalf("a watch on an unchanged node fired: %v", e)
	default:
	}
	// Writes to a node only the overlay has: NoNode.
	if _, err := c.Set(prov+"/url2", nil, -1); err != zk.ErrNoNode {
		t.Fatalf("set on a synthesized node: %v", err)
	}
}

// TestOverlaySetWatches: a client that reconnects after the overlay
// changed gets its child watch fired by setWatches.
func TestOverlaySetWatches(t *testing.T) {
	ov := &testOverlay{}
	ov.set(map[string][]string{"/o": {"a"}}, nil)
	s := startServer(t, testConfig(), WithOverlay(ov))
	sw := &netSwitch{}
	c := connectZK(t, s.addr, 10*time.Second, sw.dial)
	_, _, cw, err := c.ChildrenW("/o")
	if err != nil {
		t.Fatal(err)
	}
	sw.cut(true)
	c.waitState(t, zk.StateDisconnected)
	ov.set(map[string][]string{"/o": {"a", "b"}}, nil)
	s.OverlayChanged("/o")
	sw.up()
	waitWatch(t, cw, zk.EventNodeChildrenChanged, "/o")
}
