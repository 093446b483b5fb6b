package zookeeper

import (
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// An emptied container stays until the next check, as on ZooKeeper
// (ContainerManager, every minute by default), then goes with
// ZooKeeper's events; one that never had a child, or has one again by
// then, stays; a container its child's deletion empties goes at the
// check after.
func TestContainersGoAtTheCheck(t *testing.T) {
	s := startServer(t, testConfig(), WithContainerCheck(time.Hour)) // the test calls the checks
	raw := dialRaw(t, s.addr, 0, nil)
	zc := connectZK(t, s.addr, 10*time.Second)
	for _, p := range []string{"/box", "/never", "/refilled", "/outer", "/outer/inner"} {
		if h, _, _ := raw.call(opCreateContainer, createBody(p, nil, modeContainer)); h.err != codeOK {
			t.Fatalf("createContainer %s: %v", p, h.err)
		}
	}
	for _, p := range []string{"/box/item", "/refilled/a", "/outer/inner/item"} {
		if _, err := zc.Create(p, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"/box/item", "/refilled/a", "/outer/inner/item"} {
		if err := zc.Delete(p, -1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := zc.Create("/refilled/b", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool {
		t.Helper()
		ok, _, err := zc.Exists(p)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for _, p := range []string{"/box", "/never", "/refilled", "/outer", "/outer/inner"} {
		if !exists(p) {
			t.Errorf("%s went before the check", p)
		}
	}
	_, _, boxW, err := zc.ExistsW("/box")
	if err != nil {
		t.Fatal(err)
	}
	s.reapContainers()
	select {
	case ev := <-boxW.EvtCh:
		if ev.Type != zk.EventNodeDeleted || ev.Path != "/box" {
			t.Errorf("watch on /box: %+v, want NodeDeleted", ev)
		}
	case <-time.After(wait):
		t.Fatal("no NodeDeleted for /box")
	}
	for p, want := range map[string]bool{"/box": false, "/never": true, "/refilled": true, "/outer/inner": false, "/outer": true} {
		if got := exists(p); got != want {
			t.Errorf("after the check: %s exists %v, want %v", p, got, want)
		}
	}
	s.reapContainers()
	if exists("/outer") {
		t.Error("/outer, emptied by the first check, is still there after the second")
	}
}

// The checks run on their own every WithContainerCheck.
func TestContainerCheckRuns(t *testing.T) {
	s := startServer(t, testConfig(), WithContainerCheck(10*time.Millisecond))
	raw := dialRaw(t, s.addr, 0, nil)
	zc := connectZK(t, s.addr, 10*time.Second)
	if h, _, _ := raw.call(opCreateContainer, createBody("/box", nil, modeContainer)); h.err != codeOK {
		t.Fatalf("createContainer: %v", h.err)
	}
	if _, err := zc.Create("/box/item", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, _, w, err := zc.ExistsW("/box")
	if err != nil {
		t.Fatal(err)
	}
	if err := zc.Delete("/box/item", -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.EvtCh:
		if ev.Type != zk.EventNodeDeleted {
			t.Errorf("watch on /box: %+v, want NodeDeleted", ev)
		}
	case <-time.After(wait):
		t.Fatal("the emptied container was not deleted")
	}
}
