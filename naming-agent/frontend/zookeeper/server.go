package zookeeper

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("zookeeper: server closed")

// Server is a ZooKeeper server for local apps: one goroutine per
// connection reads and serves its requests in order under one lock (as
// ZooKeeper's single request pipeline does); another writes its replies
// and events from a bounded queue, so a client that does not read slows
// nobody but itself and is disconnected past the bound.
type Server struct {
	cfg      Config
	log      *zap.Logger
	now      func() time.Time
	overlay  Overlay
	notify   *notifier // nil without an Observer
	saver    *saver    // nil without a SessionStore
	started  time.Time
	received atomic.Int64 // packets, for srvr
	sent     atomic.Int64

	// mu guards the fields below and everything the tree, the watches,
	// the sessions and the connections' session fields hold. It is
	// taken by every request and by expiry; never held while calling
	// the Observer or doing I/O.
	mu        sync.Mutex
	tree      *tree
	watches   *watches
	sessions  map[int64]*session
	conns     map[*conn]struct{}
	perIP     map[string]int
	listeners map[net.Listener]struct{}
	nextID    int64               // the next session id
	ov        map[string]overlayV // OverlayChanged calls, by path
	emptied   map[string]struct{} // containers emptied since the last check
	closed    bool

	stop      chan struct{}  // closed by Close: the loops end
	connWG    sync.WaitGroup // connection goroutines
	loopWG    sync.WaitGroup // expiry and saver loops
	closeOnce sync.Once
}

// New returns a Server, with the sessions its SessionStore had restored.
// Serve starts serving.
func New(cfg Config, opts ...Option) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("zookeeper front end: %w", err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{
		cfg:       cfg,
		log:       o.logger.Named("frontend.zookeeper"),
		now:       o.now,
		overlay:   o.overlay,
		watches:   newWatches(),
		sessions:  map[int64]*session{},
		conns:     map[*conn]struct{}{},
		perIP:     map[string]int{},
		listeners: map[net.Listener]struct{}{},
		ov:        map[string]overlayV{},
		emptied:   map[string]struct{}{},
		stop:      make(chan struct{}),
	}
	s.started = s.now()
	if o.observer != nil {
		s.notify = newNotifier(o.observer)
		go s.notify.run()
	}
	s.restore(o.store) // sets tree and nextID
	if o.store != nil {
		s.saver = newSaver(o.store, s.snapshotState, s.log)
		s.saver.mark() // the new epoch, before any client sees a zxid of it
		s.loopWG.Add(1)
		go func() {
			defer s.loopWG.Done()
			s.saver.run(s.stop)
		}()
	}
	s.loopWG.Add(2)
	go s.tickLoop(s.cfg.TickTime, s.expireSessions) // sessions that sent nothing for their timeout
	go s.tickLoop(o.containerCheck, s.reapContainers)
	return s, nil
}

// Serve accepts connections on l until Close, then returns ErrClosed. It
// may be called for several listeners.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = l.Close()
		return ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("zookeeper front end: accept: %w", err)
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("delay", delay))
			select {
			case <-time.After(delay):
			case <-s.stop:
			}
			continue
		}
		delay = 0
		s.accept(nc)
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// accept starts serving nc, unless its address has MaxClientConns
// connections already: ZooKeeper then closes it without a word.
func (s *Server) accept(nc net.Conn) {
	ip := remoteIP(nc)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if s.cfg.MaxClientConns > 0 && s.perIP[ip] >= s.cfg.MaxClientConns {
		s.mu.Unlock()
		s.log.Warn("too many connections from one address; closed",
			zap.String("addr", ip), zap.Int("max_client_conns", s.cfg.MaxClientConns))
		_ = nc.Close()
		return
	}
	s.perIP[ip]++
	c := newConn(s, nc, ip)
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	s.mu.Unlock()
	go c.serve()
}

func remoteIP(nc net.Conn) string {
	addr := nc.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// dropConn forgets c once its goroutines are done.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.perIP[c.ip]--; s.perIP[c.ip] <= 0 {
		delete(s.perIP, c.ip)
	}
	s.watches.removeConn(c)
	if c.sess != nil && c.sess.conn == c {
		c.sess.conn = nil // the session lives on until its timeout
	}
}

// Close stops serving: listeners and connections are closed, the
// sessions saved (if there is a store), the Observer's pending calls
// made. Sessions are not ended: their ephemeral nodes stay for the next
// run to take back.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for l := range s.listeners {
			_ = l.Close()
		}
		for c := range s.conns {
			c.shutdown()
		}
		s.mu.Unlock()
		s.connWG.Wait()
		close(s.stop)
		s.loopWG.Wait()
		s.notify.stop()
	})
	return nil
}

// commit finishes tx: its watches fire, the Observer will be told, and
// containers it emptied are noted for the next check. It returns the save generation a reply must
// wait for (0: none). Runs under mu.
func (s *Server) commit(tx *txn) uint64 {
	for _, f := range tx.fires {
		s.watches.fire(f.path, f.ev, tx.zxid)
	}
	s.notify.push(tx.notes...)
	var gate uint64
	if tx.persist {
		gate = s.saver.mark()
	}
	s.noteEmptied(tx.emptied)
	return gate
}

// noteEmptied notes the containers among paths that have had children
// and have none left: the next check deletes those still empty. As
// ZooKeeper's ContainerManager, on a timer (every minute by default), not
// at once: Curator makes containers (x-discovery's service nodes,
// NodeCache's parents) and its caches would see one deleted under them
// within a second where ZooKeeper keeps it for up to a minute.
func (s *Server) noteEmptied(paths []string) {
	for _, p := range paths {
		if n := s.tree.get(p); n != nil && n.st.EphemeralOwner == containerOwner && len(n.kids) == 0 && n.st.Cversion > 0 {
			s.emptied[p] = struct{}{}
		}
	}
}

// tickLoop runs f every tick until the server stops; one of loopWG.
func (s *Server) tickLoop(every time.Duration, f func()) {
	defer s.loopWG.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			f()
		}
	}
}

// reapContainers deletes the containers emptied since the last check that
// are still empty, each in a transaction of its own (ZooKeeper's
// deleteContainer). A container a deletion empties goes at the next check.
func (s *Server) reapContainers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	paths := s.emptied
	s.emptied = map[string]struct{}{}
	for p := range paths {
		n := s.tree.get(p)
		if n == nil || n.st.EphemeralOwner != containerOwner || len(n.kids) > 0 {
			continue
		}
		tx := s.tree.begin(0, s.now().UnixMilli())
		tx.remove(p)
		s.commit(tx)
	}
}
