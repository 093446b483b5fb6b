package zookeeper

import (
	"errors"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
)

// Tests with dubbo-go's own ZooKeeper client, github.com/dubbogo/go-zookeeper.

// netSwitch is a go-zookeeper dialer whose network a test can cut.
type netSwitch struct {
	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

func (n *netSwitch) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.down {
		return nil, errors.New("network down (test)")
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err == nil {
		n.conns = append(n.conns, c)
	}
	return c, err
}

// cut closes every connection made so far; with down, new ones fail.
func (n *netSwitch) cut(down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down = down
	for _, c := range n.conns {
		_ = c.Close()
	}
	n.conns = nil
}

func (n *netSwitch) up() {
	n.mu.Lock()
	n.down = false
	n.mu.Unlock()
}

func waitWatch(t *testing.T, w *zk.Watcher, want zk.EventType, path string) {
	t.Helper()
	select {
	case e := <-w.EvtCh:
		if e.Type != want || e.Path != path {
			t.Fatalf("event %v %s, want %v %s", e.Type, e.Path, want, path)
		}
	case <-time.After(wait):
		t.Fatalf("no %v on %s within %v", want, path, wait)
	}
}

func TestClientOperations(t *testing.T) {
	s := startServer(t, testConfig())
	c := connectZK(t, s.addr, 10*time.Second)

	mustCreate := func(path string, data []byte, flags int32) string {
		t.Helper()
		p, err := c.Create(path, data, flags, worldACL)
		if err != nil {
			t.Fatalf("create %s: %v", path, err)
		}
		return p
	}
	mustCreate("/dubbo", nil, 0)
	mustCreate("/dubbo/svc", []byte("meta"), 0)
	mustCreate("/dubbo/svc/providers", nil, 0)
	got := []string{
		mustCreate("/dubbo/svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880", []byte("p"), zk.FlagEphemeral),
		mustCreate("/dubbo/svc/seq-", nil, zk.FlagSequence),
		mustCreate("/dubbo/svc/eseq-", nil, zk.FlagEphemeral|zk.FlagSequence),
	}
	want := []string{"/dubbo/svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880", "/dubbo/svc/seq-0000000001", "/dubbo/svc/eseq-0000000002"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("created %v, want %v", got, want)
	}
	if _, err := c.Create("/dubbo/svc", nil, 0, worldACL); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("create twice: %v", err)
	}
	if _, err := c.Create("/nope/x", nil, 0, worldACL); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("create without parent: %v", err)
	}
	data, st, err := c.Get("/dubbo/svc")
	if err != nil || string(data) != "meta" || st.NumChildren != 3 || st.Cversion != 3 || st.DataLength != 4 {
		t.Fatalf("get = %q %+v %v", data, st, err)
	}
	if _, err := c.Set("/dubbo/svc", []byte("m2"), 1); !errors.Is(err, zk.ErrBadVersion) {
		t.Fatalf("set at a wrong version: %v", err)
	}
	if st, err = c.Set("/dubbo/svc", []byte("m2"), 0); err != nil || st.Version != 1 {
		t.Fatalf("set = %+v %v", st, err)
	}
	kids, _, err := c.Children("/dubbo/svc")
	slices.Sort(kids)
	if err != nil || !reflect.DeepEqual(kids, []string{"eseq-0000000002", "providers", "seq-0000000001"}) {
		t.Fatalf("children = %v %v", kids, err)
	}
	_, st, _ = c.Get("/dubbo/svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880")
	if st.EphemeralOwner != c.SessionID() {
		t.Fatalf("ephemeral owner %#x, session %#x", st.EphemeralOwner, c.SessionID())
	}

	// Watches: exist, data, child; each fires once.
	_, _, ew, _ := c.ExistsW("/dubbo/new")
	_, _, dw, _ := c.GetW("/dubbo/svc")
	_, _, cw, _ := c.ChildrenW("/dubbo/svc/providers")
	mustCreate("/dubbo/new", nil, 0)
	waitWatch(t, ew, zk.EventNodeCreated, "/dubbo/new")
	if _, err := c.Set("/dubbo/svc", nil, -1); err != nil {
		t.Fatal(err)
	}
	waitWatch(t, dw, zk.EventNodeDataChanged, "/dubbo/svc")
	if err := c.Delete("/dubbo/svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880", -1); err != nil {
		t.Fatal(err)
	}
	waitWatch(t, cw, zk.EventNodeChildrenChanged, "/dubbo/svc/providers")

	// Multi: all or nothing.
	res, err := c.Multi(
		&zk.CreateRequest{Path: "/m", Acl: worldACL},
		&zk.SetDataRequest{Path: "/m", Data: []byte("x"), Version: 0},
		&zk.CheckVersionRequest{Path: "/m", Version: 1},
	)
	if err != nil || len(res) != 3 || res[0].String != "/m" || res[1].Stat.Version != 1 {
		t.Fatalf("multi = %+v %v", res, err)
	}
	if _, err := c.Multi(&zk.DeleteRequest{Path: "/m", Version: -1}, &zk.DeleteRequest{Path: "/m", Version: -1}); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("failing multi: %v", err)
	}
	if ok, _, _ := c.Exists("/m"); !ok {
		t.Fatal("a failed multi deleted /m")
	}
	if p, err := c.Sync("/m"); err != nil || p != "/m" {
		t.Fatalf("sync = %q %v", p, err)
	}
	if err := c.Delete("/dubbo", -1); !errors.Is(err, zk.ErrNotEmpty) {
		t.Fatalf("delete a parent: %v", err)
	}
	if err := c.Delete("/m", -1); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := c.Exists("/m"); ok || err != nil {
		t.Fatalf("exists after delete = %v %v", ok, err)
	}
}

// TestSessionExpiry: a client cut off for longer than its session
// timeout loses its session and its ephemeral nodes; others' watches
// fire; when it comes back it is told its session expired.
func TestSessionExpiry(t *testing.T) {
	clock := newFakeClock()
	s := startServer(t, testConfig(), WithClock(clock.Now))
	sw := &netSwitch{}
	a := connectZK(t, s.addr, 2*time.Second, sw.dial)
	b := connectZK(t, s.addr, 60*time.Second)
	if _, err := a.Create("/e", nil, zk.FlagEphemeral, worldACL); err != nil {
		t.Fatal(err)
	}
	_, _, w, err := b.ExistsW("/e")
	if err != nil {
		t.Fatal(err)
	}
	sw.cut(true)
	clock.Advance(5 * time.Second) // past a's 2s, within b's 60s
	waitWatch(t, w, zk.EventNodeDeleted, "/e")
	sw.up()
	a.waitState(t, zk.StateExpired)
	if ok, _, _ := b.Exists("/e"); ok {
		t.Fatal("the expired session's ephemeral node is still there")
	}
}

// TestReconnectToSession: a client whose connection breaks reconnects to
// its session on a new connection; its ephemeral nodes stay, and the
// watches it set again fire for what changed meanwhile.
func TestReconnectToSession(t *testing.T) {
	s := startServer(t, testConfig())
	sw := &netSwitch{}
	a := connectZK(t, s.addr, 10*time.Second, sw.dial)
	b := connectZK(t, s.addr, 10*time.Second)
	for _, p := range []string{"/r", "/r/data"} {
		if _, err := a.Create(p, nil, 0, worldACL); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Create("/r/eph", nil, zk.FlagEphemeral, worldACL); err != nil {
		t.Fatal(err)
	}
	_, _, dw, _ := a.GetW("/r/data")
	_, _, cw, _ := a.ChildrenW("/r")
	sid := a.SessionID()

	sw.cut(true) // a is off the network
	a.waitState(t, zk.StateDisconnected)
	if _, err := b.Set("/r/data", []byte("while away"), -1); err != nil {
		t.Fatal(err)
	}
	sw.up()
	waitWatch(t, dw, zk.EventNodeDataChanged, "/r/data") // setWatches: changed since its last zxid
	if a.SessionID() != sid {
		t.Fatalf("session %#x after reconnect, was %#x", a.SessionID(), sid)
	}
	_, st, err := b.Get("/r/eph")
	if err != nil || st.EphemeralOwner != sid {
		t.Fatalf("ephemeral after reconnect: %+v %v", st, err)
	}
	if _, err := b.Create("/r/new", nil, 0, worldACL); err != nil {
		t.Fatal(err)
	}
	waitWatch(t, cw, zk.EventNodeChildrenChanged, "/r") // the child watch was set again
}

// TestSessionTakeoverAndBadPassword at the wire: a second connection with
// the session's id and password takes it over (the first is closed); a
// wrong password or an unknown id gets ZooKeeper's answer and a close.
func TestSessionTakeoverAndBadPassword(t *testing.T) {
	s := startServer(t, testConfig())
	first := dialRaw(t, s.addr, 0, nil)
	if first.sid == 0 || len(first.passwd) != 16 || first.tmo != 10000 {
		t.Fatalf("session %#x, password %x, timeout %d", first.sid, first.passwd, first.tmo)
	}
	second := dialRaw(t, s.addr, first.sid, first.passwd)
	if second.sid != first.sid {
		t.Fatalf("takeover got session %#x", second.sid)
	}
	if !first.closed() {
		t.Fatal("the first connection is still open after a takeover")
	}
	if h, _, ok := second.call(opExists, pathWatchBody("/", false)); !ok || h.err != codeOK {
		t.Fatalf("request on the taken-over session: %+v %v", h, ok)
	}
	wrong := append([]byte{}, first.passwd...)
	wrong[0] ^= 1
	for name, c := range map[string]*rawClient{
		"wrong password": dialRaw(t, s.addr, first.sid, wrong),
		"unknown id":     dialRaw(t, s.addr, 12345, first.passwd),
	} {
		if c.sid != 0 || c.tmo != 0 || len(c.passwd) != 16 {
			t.Errorf("%s: session %#x timeout %d password %x, want 0, 0, 16 zero bytes", name, c.sid, c.tmo, c.passwd)
		}
		if !c.closed() {
			t.Errorf("%s: connection not closed", name)
		}
	}
}

func TestTimeoutNegotiation(t *testing.T) {
	cfg := testConfig()
	cfg.MinSessionTimeout, cfg.MaxSessionTimeout = 4*time.Second, 40*time.Second
	s := startServer(t, cfg)
	for asked, want := range map[int32]int32{0: 4000, 1000: 4000, 10000: 10000, 100000: 40000, -5: 4000} {
		c := dialRawConn(t, s.addr)
		w := newWriter()
		w.int32(0)
		w.int64(0)
		w.int32(asked)
		w.int64(0)
		w.buffer(make([]byte, 16))
		c.sendFrame(w.frame())
		r := c.readFrame()
		r.int32()
		if got := r.int32(); got != want {
			t.Errorf("asked %d ms, got %d, want %d", asked, got, want)
		}
		if r.int64(); r.buffer() == nil || r.left() != 0 {
			t.Errorf("asked %d: response without readOnly byte has %d bytes left", asked, r.left())
		}
	}
}
