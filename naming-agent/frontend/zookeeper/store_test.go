package zookeeper

import (
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/registrytest"
)

// restartable serves a Server on one address that a test can stop and
// start again, as an agent restarts.
type restartable struct {
	t    *testing.T
	addr string
	cfg  Config
	opts []Option
	s    *Server
	done chan error
}

func (r *restartable) start(opts ...Option) *Server {
	r.t.Helper()
	var l net.Listener
	var err error
	registrytest.Eventually(r.t, wait, "listening on "+r.addr, func() bool {
		l, err = net.Listen("tcp", r.addr)
		return err == nil
	})
	r.addr = l.Addr().String()
	all := append([]Option{WithLogger(zaptest.NewLogger(r.t))}, r.opts...)
	r.s, err = New(r.cfg, append(all, opts...)...)
	if err != nil {
		r.t.Fatal(err)
	}
	r.done = make(chan error, 1)
	go func(s *Server) { r.done <- s.Serve(l) }(r.s)
	return r.s
}

func (r *restartable) stop() {
	_ = r.s.Close()
	if err := <-r.done; !errors.Is(err, ErrClosed) {
		r.t.Errorf("Serve = %v", err)
	}
}

// TestRestartKeepsSessions: an agent restart within the session timeout
// is invisible to a client: it reconnects to its session, its ephemeral
// nodes are there with their data and stat; the observer of the new run
// is told what was restored. A session nobody resumes expires as usual.
func TestRestartKeepsSessions(t *testing.T) {
	store := &memStore{}
	clock := newFakeClock()
	r := &restartable{t: t, addr: "127.0.0.1:0", cfg: testConfig(), opts: []Option{WithSessionStore(store), WithClock(clock.Now)}}
	t.Cleanup(func() { r.stop() })
	first := r.start()

	c := connectZK(t, r.addr, 60*time.Second) // outlives the orphan's 10s below
	for _, p := range []string{"/dubbo", "/dubbo/svc", "/dubbo/svc/providers"} {
		if _, err := c.Create(p, nil, 0, worldACL); err != nil {
			t.Fatal(err)
		}
	}
	eph := "/dubbo/svc/providers/dubbo%3A%2F%2F10.0.0.1%3A20880"
	if _, err := c.Create(eph, []byte("v1"), zk.FlagEphemeral, worldACL); err != nil {
		t.Fatal(err)
	}
	stBefore, err := c.Set(eph, []byte("v2"), -1)
	if err != nil {
		t.Fatal(err)
	}
	orphan := dialRaw(t, r.addr, 0, nil) // will never come back
	if h, _, _ := orphan.call(opCreate, createBody("/dubbo/orphan", nil, modeEphemeral)); h.err != codeOK {
		t.Fatal(h.err)
	}
	sid := c.SessionID()
	zxidBefore := func() int64 { first.mu.Lock(); defer first.mu.Unlock(); return first.tree.zxid }()
	// The client still says HasSession (of the first run) until it reads
	// the EOF of the stop: the session back is a HasSession after this.
	before := c.mark()
	r.stop()

	rec := &recorder{}
	second := r.start(WithObserver(rec))
	rec.waitCalls(t, []string{"restored 2"})
	rec.mu.Lock()
	restored := rec.restored
	rec.mu.Unlock()
	want := []RestoredSession{
		{ID: sid, Ephemerals: []Ephemeral{{Path: eph, Data: []byte("v2")}}},
		{ID: orphan.sid, Ephemerals: []Ephemeral{{Path: "/dubbo/orphan", Data: nil}}},
	}
	if want[0].ID > want[1].ID {
		want[0], want[1] = want[1], want[0]
	}
	if !reflect.DeepEqual(restored, want) {
		t.Fatalf("restored %+v\nwant %+v", restored, want)
	}

	// The client comes back to its session, node and all.
	c.waitStateAfter(t, before, zk.StateHasSession)
	if c.SessionID() != sid {
		t.Fatalf("session %#x after the restart, was %#x", c.SessionID(), sid)
	}
	d, st, err := c.Get(eph)
	if err != nil || string(d) != "v2" || st.EphemeralOwner != sid || st.Version != stBefore.Version ||
		st.Czxid != stBefore.Czxid || st.Mzxid != stBefore.Mzxid || st.Ctime != stBefore.Ctime {
		t.Fatalf("after the restart: %q %+v %v; before %+v", d, st, err, stBefore)
	}
	second.mu.Lock()
	zxidAfter := second.tree.zxid
	second.mu.Unlock()
	if zxidAfter>>32 <= zxidBefore>>32 {
		t.Fatalf("zxid epoch did not grow: %#x then %#x", zxidBefore, zxidAfter)
	}

	// The orphan's session expires when its timeout passes from the restart.
	clock.Advance(11 * time.Second) // past the orphan's 10s, within c's 60s
	registrytest.Eventually(t, wait, "the orphan's session to expire", func() bool {
		ok, _, _ := c.Exists("/dubbo/orphan")
		return !ok
	})
	if c.SessionID() != sid {
		t.Fatal("the client's own session expired with the orphan's")
	}
}

func TestStoreWritesOnlyOnChanges(t *testing.T) {
	store := &memStore{}
	s := startServer(t, testConfig(), WithSessionStore(store))
	c := dialRaw(t, s.addr, 0, nil)
	if h, _, _ := c.call(opCreate, createBody("/e", nil, modeEphemeral)); h.err != codeOK {
		t.Fatal(h.err)
	}
	// The reply came after the save that holds the node.
	if st, err := decodeState(mustLoad(t, store)); err != nil || len(st.Sessions) != 1 || len(st.Sessions[0].Ephemerals) != 1 {
		t.Fatalf("stored %+v %v", st, err)
	}
	store.mu.Lock()
	saves := store.saves
	store.mu.Unlock()
	for range 20 {
		c.callXid(xidPing, opPing, nil)
		c.call(opGetData, pathWatchBody("/e", false))
		c.call(opCreate, createBody("/p", nil, modePersistent)) // persistent nodes are not stored
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.saves != saves {
		t.Fatalf("%d saves for pings, reads and persistent nodes", store.saves-saves)
	}
}

func mustLoad(t *testing.T, s SessionStore) []byte {
	t.Helper()
	b, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoreUnreadableOrFailing(t *testing.T) {
	for _, bad := range []string{"{", `{"version":9}`, `{"version":1,"sessions":[{"id":1,"password":"AA==","timeout_ms":5}]}`} {
		store := &memStore{state: []byte(bad)}
		s := startServer(t, testConfig(), WithSessionStore(store))
		s.mu.Lock()
		n := len(s.sessions)
		s.mu.Unlock()
		if n != 0 {
			t.Errorf("%s: %d sessions restored", bad, n)
		}
	}
	// A store that fails to save does not stop the clients.
	store := &memStore{err: errors.New("disk full")}
	s := startServer(t, testConfig(), WithSessionStore(store))
	c := dialRaw(t, s.addr, 0, nil)
	if h, _, ok := c.call(opCreate, createBody("/e", nil, modeEphemeral)); !ok || h.err != codeOK {
		t.Fatalf("create with a failing store: %v %v", h.err, ok)
	}
}

func TestEpochAndSessionIDs(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if e := newEpoch(now, 0); e != now.Unix()-epochBase {
		t.Errorf("epoch = %d", e)
	}
	if e := newEpoch(now, 1<<30); e != 1<<30+1 {
		t.Errorf("epoch after a larger stored one = %d", e)
	}
	if e := newEpoch(time.Unix(0, 0), 0); e != 1 {
		t.Errorf("epoch before the base = %d", e)
	}
	a, b := firstSessionID(3, now), firstSessionID(3, now.Add(time.Millisecond))
	if a>>56 != 3 || b <= a || b-a != 1<<16 {
		t.Errorf("session ids %#x, %#x", a, b)
	}
}
