package integration

import (
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// TestPassthrough is issue 14's item 5 on two hosts: what a Dubbo app
// writes beside its providers (the interface-app mapping, a metadata
// report, its consumer node) goes through its host's ZooKeeper front end
// to the registry, and the other host's apps read and watch it through
// theirs; with ZooKeeper upstream it is in the real ZooKeeper at the
// same path, for apps outside the mesh too. The ephemeral consumer node
// goes on both hosts, and in ZooKeeper, when A's app session ends. What
// an app writes while its host cannot reach the registry is written when
// it can again.
func TestPassthrough(t *testing.T) { every(t, false, passthrough) }

func passthrough(t *testing.T, be *backend) {
	a := be.host(t, ipA, "", frontEndArgs(ipA)...)
	b := be.host(t, ipB, "", frontEndArgs(ipB)...)
	svc := unique("org.detour.pt.S")
	app := unique("pt-app-")
	mapping := "/dubbo/mapping/" + svc
	meta := "/dubbo/metadata/" + app + "/rev1"
	consumers := "/dubbo/" + svc + "/consumers"
	consumer := consumers + "/" + url.QueryEscape("consumer://"+ipA+"/"+svc+"?application="+app+"&side=consumer")
	var raw *ptConn // the real ZooKeeper, when upstream
	if be.zkAddr != "" {
		raw = ptDial(t, be.zkAddr)
		t.Cleanup(func() {
			for _, p := range []string{mapping, meta, "/dubbo/metadata/" + app, consumers, "/dubbo/" + svc} {
				_ = raw.Delete(p, -1)
			}
		})
	}

	za, zb := ptDial(t, a.ZooKeeperAddr()), ptDial(t, b.ZooKeeperAddr())
	ptCreate(t, za, mapping, "app", 0)
	ptCreate(t, za, meta, `{"app":"`+app+`"}`, 0)
	ptCreate(t, za, consumer, "", zk.FlagEphemeral)

	read := func(c *ptConn, p string) string {
		d, _, err := c.Get(p)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(d)
	}
	start := time.Now()
	eventually(t, 20*time.Second, "B's front end has A's nodes", func() bool {
		return read(zb, mapping) == "app" && read(zb, meta) == `{"app":"`+app+`"}` && read(zb, consumer) == ""
	})
	t.Logf("figure: A's three nodes readable through B's front end %v after A's creates", time.Since(start).Round(time.Millisecond))
	if raw != nil {
		if got := read(raw, mapping); got != "app" {
			t.Errorf("real ZooKeeper %s = %q, want app", mapping, got)
		}
		_, st, err := raw.Get(consumer)
		if err != nil || st.EphemeralOwner == 0 {
			t.Errorf("real ZooKeeper %s: %+v %v, want an ephemeral node", consumer, st, err)
		}
	}
	if _, err := zb.Create(mapping, []byte("other"), 0, zk.WorldACL(zk.PermAll)); !errors.Is(err, zk.ErrNodeExists) {
		t.Errorf("B's create of A's node = %v, want NodeExists", err)
	}

	// B's app watches; A's app changes the mapping.
	_, _, w, err := zb.GetW(mapping)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := za.Set(mapping, []byte("app,app2"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.EvtCh:
		if ev.Type != zk.EventNodeDataChanged {
			t.Errorf("B's watch: %v, want NodeDataChanged", ev.Type)
		}
		t.Logf("figure: B's data watch fired %v after A's setData", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("B's watch did not fire")
	}

	// A's app session ends: its consumer node goes everywhere.
	_, _, cw, err := zb.ChildrenW(consumers)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	za.Close()
	select {
	case <-cw.EvtCh:
		t.Logf("figure: B's child watch fired %v after A's app closed its session", time.Since(start).Round(time.Millisecond))
	case <-time.After(20 * time.Second):
		t.Fatal("B's child watch did not fire when A's app session ended")
	}
	if ok, _, _ := zb.Exists(consumer); ok {
		t.Error("A's consumer node still on B")
	}
	if raw != nil {
		eventually(t, 10*time.Second, "the consumer node gone from ZooKeeper", func() bool {
			ok, _, err := raw.Exists(consumer)
			return err == nil && !ok
		})
	}
	if got := read(zb, mapping); got != "app,app2" {
		t.Errorf("persistent mapping on B after A's session ended: %q", got)
	}
	if strings.Contains(read(zb, meta), "<") {
		t.Error("metadata gone from B with A's session")
	}

	// B's registry out of reach (ZooKeeper: every host's; etcd: B's, A
	// runs it): what B's app writes meanwhile is kept and written when
	// the registry is back; B's app reads its own write throughout.
	za2 := ptDial(t, a.ZooKeeperAddr())
	rule := "/dubbo/config/dubbo/" + app + ".configurators"
	if raw != nil {
		t.Cleanup(func() { _ = raw.Delete(rule, -1) })
	}
	be.net.Cut()
	ptCreate(t, zb, rule, "v1", 0)
	if _, err := zb.Set(rule, []byte("v2"), -1); err != nil {
		t.Fatal(err)
	}
	if got := read(zb, rule); got != "v2" {
		t.Errorf("B's app reads %q during the outage", got)
	}
	if be.zkAddr == "" { // etcd: A reaches its registry, and has no v2
		if got := read(za2, rule); got == "v2" {
			t.Errorf("A reads B's write during B's outage")
		}
	}
	start = time.Now()
	be.net.Restore()
	eventually(t, 60*time.Second, "B's write during the outage on A", func() bool { return read(za2, rule) == "v2" })
	t.Logf("figure: B's write during the outage on A %v after the registry came back", time.Since(start).Round(time.Millisecond))
}

// ptConn is a go-zookeeper client whose Close may be called twice (the
// library's panics the second time).
type ptConn struct {
	*zk.Conn
	once sync.Once
}

func (c *ptConn) Close() { c.once.Do(c.Conn.Close) }

func ptDial(t *testing.T, addr string) *ptConn {
	t.Helper()
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZK{}))
	if err != nil {
		t.Fatal(err)
	}
	c := &ptConn{Conn: conn}
	t.Cleanup(c.Close)
	eventually(t, 20*time.Second, "a session with "+addr, func() bool { return conn.State() == zk.StateHasSession })
	return c
}

// ptCreate creates p with data and flags, its missing parents persistent.
func ptCreate(t *testing.T, c *ptConn, p, data string, flags int32) {
	t.Helper()
	acl := zk.WorldACL(zk.PermAll)
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			if _, err := c.Create(p[:i], nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				t.Fatalf("create %s: %v", p[:i], err)
			}
		}
	}
	if _, err := c.Create(p, []byte(data), flags, acl); err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
}

// TestPassthroughAgentRestart: B's agent SIGKILLed and started again
// while B's app keeps its ZooKeeper session: what the app wrote stays in
// the registry and on A throughout; after the restart B's front end has
// the app's ephemeral node (its session restored) and its persistent
// node (read back from the registry), and the app's delete reaches A.
func TestPassthroughAgentRestart(t *testing.T) { every(t, false, passthroughAgentRestart) }

func passthroughAgentRestart(t *testing.T, be *backend) {
	a := be.host(t, ipA, "", frontEndArgs(ipA)...) // for etcd, the host that runs the registry
	b := be.host(t, ipB, "", frontEndArgs(ipB)...)
	svc := unique("org.detour.pt.R")
	consumers := "/dubbo/" + svc + "/consumers"
	consumer := consumers + "/" + url.QueryEscape("consumer://"+ipB+"/"+svc+"?side=consumer")
	rule := "/dubbo/" + svc + "/configurators/override"
	if be.zkAddr != "" {
		raw := ptDial(t, be.zkAddr)
		t.Cleanup(func() {
			for _, p := range []string{rule, "/dubbo/" + svc + "/configurators", consumers, "/dubbo/" + svc} {
				_ = raw.Delete(p, -1)
			}
		})
	}
	za, zb := ptDial(t, a.ZooKeeperAddr()), ptDial(t, b.ZooKeeperAddr())
	ptCreate(t, zb, consumer, "c", zk.FlagEphemeral)
	ptCreate(t, zb, rule, "weight=50", 0)
	has := func(c *ptConn, p, want string) bool {
		d, _, err := c.Get(p)
		return err == nil && string(d) == want
	}
	eventually(t, 20*time.Second, "A reads B's nodes", func() bool { return has(za, consumer, "c") && has(za, rule, "weight=50") })

	if err := b.Agent.Kill(); err != nil {
		t.Fatal(err)
	}
	if !has(za, consumer, "c") || !has(za, rule, "weight=50") {
		t.Error("A lost B's nodes when B's agent was killed")
	}
	start := time.Now()
	if err := b.StartAgent(b.ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "B's app back on its session, its nodes on B", func() bool {
		return zb.State() == zk.StateHasSession && has(zb, consumer, "c") && has(zb, rule, "weight=50")
	})
	t.Logf("figure: B's app reads its nodes %v after B's agent was started again", time.Since(start).Round(time.Millisecond))
	if !has(za, consumer, "c") || !has(za, rule, "weight=50") {
		t.Error("A lost B's nodes over B's agent restart")
	}
	if err := zb.Delete(consumer, -1); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "B's app's delete on A", func() bool { ok, _, err := za.Exists(consumer); return err == nil && !ok })
}
