package zookeeper

import (
	"errors"
	"fmt"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// run lists the children of w.path and arms a one-shot watch in the same
// request (ChildrenW, or ExistsW while the node does not exist yet), waits
// for the watch to fire or the connection to change, and starts over. It
// uses the Registry's watch connection (see watchConn), which is replaced
// after every disconnect; on each new one it lists and arms afresh. An
// outage is reported once.
func (w *watcher) run() {
	defer close(w.stopped)
	bo := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	// Until the first listing, give the client up to RequestTimeout to get
	// its first session rather than report an outage at once.
	graceTimer := time.NewTimer(w.r.cfg.RequestTimeout)
	defer graceTimer.Stop()
	grace := graceTimer.C
	var (
		armed    <-chan zk.Event // the armed watch; nil if none
		armedGen uint64          // the watch session it belongs to
	)
	for {
		conn, st, gen, changed := w.r.watch.get()
		if conn == nil {
			armed = nil
			if w.notConnected(&grace, changed, st) {
				return
			}
			continue
		}
		if armed == nil || armedGen != gen {
			children, zxid, ev, err := w.readAndArm(conn)
			if err != nil {
				armed = nil
				if w.failed(err, &bo, changed) {
					return
				}
				continue
			}
			armed, armedGen = ev, gen
			bo.reset()
			grace = nil
			w.publish(w.r.decode(w.service, children, zxid, w.cache))
		}
		select {
		case <-armed: // fired, or invalidated when its connection closed
			armed = nil
		case <-changed:
		case <-w.done:
			return
		}
	}
}

// notConnected is a pass of a watch loop without a connection: within
// the start's grace (then *grace is non-nil) it waits quietly for one;
// after, it reports the outage and waits. It reports whether the watcher
// closed.
func (w *watcher) notConnected(grace *<-chan time.Time, changed <-chan struct{}, st zk.State) (stop bool) {
	if *grace != nil {
		select {
		case <-changed:
			return false
		case <-*grace:
			*grace = nil
		case <-w.done:
			return true
		}
	}
	w.outage(fmt.Errorf("zookeeper: watch %q: not connected (state %s): %w", w.service, st, registry.ErrUnavailable))
	return w.wait(changed, nil)
}

// failed reports err as an outage and waits out the next backoff delay
// or a new connection. It reports whether the watcher closed.
func (w *watcher) failed(err error, bo *backoff, changed <-chan struct{}) (stop bool) {
	w.outage(fmt.Errorf("zookeeper: watch %q: %w: %w", w.service, registry.ErrUnavailable, err))
	retry := time.NewTimer(bo.delay())
	defer retry.Stop()
	return w.wait(changed, retry.C)
}

// wait blocks until a or b is ready or the watcher is closed, and reports
// the latter.
func (w *watcher) wait(a <-chan struct{}, b <-chan time.Time) (stop bool) {
	select {
	case <-a:
		return false
	case <-b:
		return false
	case <-w.done:
		return true
	}
}

// readAndArm lists the children and arms a watch that fires at the next
// change: a children watch, or, while the providers node does not exist, a
// watch for its creation. It returns the listing's Pzxid (0 while the node
// does not exist).
func (w *watcher) readAndArm(conn *zk.Conn) ([]string, int64, <-chan zk.Event, error) {
	for range 3 {
		children, stat, zw, err := conn.ChildrenW(w.path)
		if err == nil {
			return children, stat.Pzxid, zw.EvtCh, nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, 0, nil, err
		}
		exists, _, zw, err := conn.ExistsW(w.path)
		if err != nil {
			return nil, 0, nil, err
		}
		if !exists {
			return nil, 0, zw.EvtCh, nil
		}
		// Created between the two requests: list it. (The data watch
		// ExistsW left fires once, unread, at the node's next change.)
	}
	return nil, 0, nil, fmt.Errorf("%s keeps appearing and disappearing", w.path)
}
