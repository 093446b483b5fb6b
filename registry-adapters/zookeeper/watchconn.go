package zookeeper

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"
)

// watchConn is the ZooKeeper connection the watchers use, apart from the
// registration session, which never holds a watch.
//
// It never reconnects within a session: when the connection drops, it is
// retired (its dialer refuses from then on) and replaced by a new
// connection with a new session, on which the watchers list and arm their
// watches again. The reason is a data race in go-zookeeper v1.0.3: on a
// reconnect within the same session the library re-sends the watches it
// holds, and in doing so reads a field its receive loop writes without
// synchronization (Conn.lastZxid). A session that holds no watches skips
// that code (the registration session), and so does a session that never
// reconnects (this one). A watch session has nothing worth keeping:
// watchers re-list after any reconnect anyway.
type watchConn struct {
	r *Registry

	mu      sync.Mutex
	cur     *watchSession // nil until the first get
	state   zk.State      // of cur
	gen     uint64        // bumped when a new watch session is established
	changed chan struct{} // closed and replaced on every change
	closed  bool

	retire chan struct{} // a session dropped; buffered, 1
	wg     sync.WaitGroup
}

// watchSession is one connection of watchConn, good for one session.
type watchSession struct {
	conn       *zk.Conn // nil until zk.Connect returns
	events     <-chan zk.Event
	retired    atomic.Bool
	hadSession bool        // guarded by watchConn.mu
	authed     atomic.Bool // digest auth answered, or none needed
}

var errRetired = errors.New("watch connection retired after a disconnect")

func newWatchConn(r *Registry) *watchConn {
	return &watchConn{r: r, state: zk.StateDisconnected, changed: make(chan struct{}), retire: make(chan struct{}, 1)}
}

// get returns the current connection, its state, the session generation,
// and a channel closed at the next change. It starts the first connection.
// conn is nil unless state is StateHasSession.
func (wc *watchConn) get() (*zk.Conn, zk.State, uint64, <-chan struct{}) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.cur == nil && !wc.closed {
		wc.startLocked()
		wc.wg.Add(1)
		go wc.replaceRetired()
	}
	if wc.cur == nil || wc.cur.conn == nil || wc.state != zk.StateHasSession || !wc.cur.authed.Load() {
		st := wc.state
		if st == zk.StateHasSession {
			st = zk.StateConnected // established, but Connect has not returned yet
		}
		return nil, st, wc.gen, wc.changed
	}
	return wc.cur.conn, wc.state, wc.gen, wc.changed
}

// startLocked opens a new connection and makes it current; wc.mu is held.
// The library may report events before zk.Connect returns, hence the
// session is current before it has a conn.
func (wc *watchConn) startLocked() {
	s := &watchSession{}
	wc.cur = s
	wc.state = zk.StateDisconnected
	dial := wc.r.dialer
	conn, events, err := zk.Connect(wc.r.cfg.Servers, wc.r.cfg.SessionTimeout,
		zk.WithDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
			if s.retired.Load() {
				return nil, errRetired
			}
			return dial(network, addr, timeout)
		}),
		zk.WithLogger(zkLogger{wc.r.log.Sugar()}),
		zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession {
				wc.onState(s, ev.State)
			}
		}),
	)
	if err != nil {
		// Only a server list that does not resolve gets here, and New has
		// connected with the same list. Retire it; the next try may work.
		wc.r.log.Warn("zookeeper: watch connection", zap.Error(err))
		s.retired.Store(true)
		wc.signalRetire()
		return
	}
	s.conn, s.events = conn, events
	if cred := wc.r.cfg.digest(); cred != nil {
		wc.wg.Add(1)
		go wc.authenticate(s, cred)
	} else {
		s.authed.Store(true)
	}
	wc.wakeLocked()
}

// authenticate adds the digest credentials to s and then hands s to the
// watchers (get); a session closed first is dropped.
func (wc *watchConn) authenticate(s *watchSession, cred []byte) {
	defer wc.wg.Done()
	if err := addAuth(s.conn, cred, wc.r.done); err != nil {
		if !errors.Is(err, zk.ErrClosing) {
			wc.r.log.Warn("zookeeper: watch connection digest auth", zap.Error(err))
		}
		return
	}
	s.authed.Store(true)
	wc.mu.Lock()
	if wc.cur == s {
		wc.wakeLocked()
	}
	wc.mu.Unlock()
}

// onState is the library's event callback for session s. It must not
// block: it runs on the library's goroutine.
func (wc *watchConn) onState(s *watchSession, st zk.State) {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	if wc.cur != s {
		return // a retired session's last words
	}
	wc.state = st
	switch {
	case st == zk.StateHasSession:
		s.hadSession = true
		wc.gen++
	case s.hadSession && !s.retired.Load():
		s.retired.Store(true) // before the library dials again
		wc.signalRetire()
	}
	wc.wakeLocked()
}

func (wc *watchConn) signalRetire() {
	select {
	case wc.retire <- struct{}{}:
	default:
	}
}

func (wc *watchConn) wakeLocked() {
	close(wc.changed)
	wc.changed = make(chan struct{})
}

// replaceRetired replaces each retired connection with a new one and
// closes the old one, until close.
func (wc *watchConn) replaceRetired() {
	defer wc.wg.Done()
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		select {
		case <-wc.retire:
		case <-wc.r.done:
			return
		}
		wc.mu.Lock()
		if wc.closed {
			wc.mu.Unlock()
			return
		}
		old := wc.cur
		wc.startLocked()
		wc.mu.Unlock()
		wc.wg.Add(1)
		go func() {
			defer wc.wg.Done()
			closeConn(old, wc.r.log)
		}()
		// A server that accepts connections and drops them at once would
		// otherwise have us spin.
		t := time.NewTimer(bo.delay())
		select {
		case <-t.C:
		case <-wc.r.done:
			t.Stop()
			return
		}
		wc.mu.Lock()
		if wc.state == zk.StateHasSession {
			bo.reset()
		}
		wc.mu.Unlock()
	}
}

// close closes the current connection and waits for the retired ones.
func (wc *watchConn) close() {
	wc.mu.Lock()
	wc.closed = true
	cur := wc.cur
	wc.cur = nil
	wc.wakeLocked()
	wc.mu.Unlock()
	closeConn(cur, wc.r.log)
	wc.wg.Wait()
}

// closeConn closes a session's connection and waits until the library's
// goroutines are done (it closes its event channel then).
func closeConn(s *watchSession, log *zap.Logger) {
	if s == nil || s.conn == nil {
		return
	}
	s.retired.Store(true)
	s.conn.Close()
	drainEvents(s.events, log)
}

// drainEvents waits, up to 5s, for the library to close its event channel,
// which it does when all its goroutines are done.
func drainEvents(events <-chan zk.Event, log *zap.Logger) {
	timeout := time.NewTimer(5 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-timeout.C:
			log.Warn("zookeeper client library still running 5s after close")
			return
		}
	}
}
