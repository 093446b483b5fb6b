package zookeeper

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

var _ registry.Resumer = (*Registry)(nil)

// storedSession is what the Registry keeps in its SessionStore: its
// session, and every node path that session may own (the registrations,
// a node being written, nodes waiting to be deleted), so that the next
// run can tell which nodes are its own.
type storedSession struct {
	SessionID int64    `json:"session_id"`
	Password  []byte   `json:"password"`
	Nodes     []string `json:"nodes"`
}

// Adopted returns the registrations New took back with the stored session
// (see registry.Resumer), sorted by service and address: what they were
// at New; it does not change afterwards. Nil when no session was taken
// back; empty when one was, holding nothing.
func (r *Registry) Adopted() []registry.Endpoint {
	if r.adopted == nil {
		return nil
	}
	return cloneEndpoints(r.adopted)
}

// loadSession reads the store; nil when it holds no session or cannot be
// read, which is logged: the Registry then starts a new session.
func (r *Registry) loadSession() *storedSession {
	raw, err := r.store.Load()
	if err != nil {
		r.log.Warn("cannot read the stored session; starting a new one", zap.Error(err))
		return nil
	}
	if len(raw) == 0 {
		return nil
	}
	var st storedSession
	if err := json.Unmarshal(raw, &st); err != nil || st.SessionID == 0 {
		r.log.Warn("stored session unreadable; starting a new one", zap.ByteString("stored", raw), zap.Error(err))
		return nil
	}
	return &st
}

// adopt waits for the server's answer to the resume request, up to
// RequestTimeout, and if it gave the stored session back, adopts the
// stored nodes it still owns. Nodes it owns that are no registration of
// this layout, or a second one of the same address, are left to the
// keeper to delete. Without an answer in time the Registry starts with
// nothing adopted; if the session is taken back later, the keeper deletes
// the stored nodes it owns that nobody has registered again. It runs in
// New, before the keeper.
func (r *Registry) adopt(st *storedSession) {
	log := r.log.With(zap.String("session_id", sessionHex(st.SessionID)))
	timer := time.NewTimer(r.cfg.RequestTimeout)
	defer timer.Stop()
	select {
	case <-r.hs.answered:
	case <-timer.C:
		log.Warn("no answer from ZooKeeper within request_timeout; nothing of the stored session adopted",
			zap.Duration("request_timeout", r.cfg.RequestTimeout))
		r.addStale(st.Nodes)
		return
	}
	if r.hs.outcome() != st.SessionID {
		log.Info("stored session has expired; starting a new one")
		return // its nodes went with it
	}
	sid := st.SessionID
	var (
		best  = map[regKey]*registration{}
		stale []string
	)
	for _, path := range st.Nodes {
		ok, stat, err := r.conn.Exists(path)
		switch {
		case err != nil:
			log.Warn("cannot read a node of the stored session; it will be deleted if it is ours", zap.String("node", path), zap.Error(err))
			stale = append(stale, path)
			continue
		case !ok || stat.EphemeralOwner != sid:
			continue // deleted meanwhile; or another client's now
		}
		reg, err := r.parseOwnNode(path)
		if err != nil {
			log.Warn("node of the stored session is no registration; deleting it", zap.String("node", path), zap.Error(err))
			stale = append(stale, path)
			continue
		}
		key := regKey{reg.ep.Service, reg.ep.Addr}
		if cur := best[key]; cur != nil {
			// Two nodes of one address: keep the later, as readers do.
			if cmp.Or(reg.registered.Compare(cur.registered), strings.Compare(reg.path, cur.path)) < 0 {
				reg, cur = cur, reg
			}
			stale = append(stale, cur.path)
		}
		best[key] = reg
	}
	adopted := make([]registry.Endpoint, 0, len(best))
	r.mu.Lock()
	for key, reg := range best {
		r.regs[key] = reg
		adopted = append(adopted, reg.ep)
	}
	r.mu.Unlock()
	r.addStale(stale)
	slices.SortFunc(adopted, func(a, b registry.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Addr, b.Addr))
	})
	r.adopted = cloneEndpoints(adopted)
	log.Info("zookeeper session taken back from the previous run", zap.Int("registrations", len(adopted)), zap.Int("stale", len(stale)))
}

// parseOwnNode reads a node path this adapter writes,
// ROOT/SERVICE/providers/NAME, as a registration.
func (r *Registry) parseOwnNode(path string) (*registration, error) {
	if app, id, ok := dubboapp.InstanceNode(path); ok {
		return r.parseOwnInstance(path, app, id)
	}
	rest, ok := strings.CutPrefix(path, r.cfg.Root+"/")
	if !ok {
		return nil, fmt.Errorf("not under %s", r.cfg.Root)
	}
	service, name, ok := strings.Cut(rest, "/providers/")
	if !ok || strings.Contains(name, "/") {
		return nil, errors.New("not a provider node")
	}
	if err := registry.ValidateService(service); err != nil {
		return nil, err
	}
	p, err := parseProvider(service, name)
	if err != nil {
		return nil, err
	}
	if !p.serving {
		return nil, errors.New("not serving")
	}
	ep, err := p.ep.Normalized()
	if err != nil {
		return nil, err
	}
	return &registration{ep: ep, path: path, registered: time.UnixMilli(p.timestamp)}, nil
}

// parseOwnInstance reads an instance node this adapter wrote,
// /services/APP/HOST:PORT, as a registration of APP:PROTOCOL.
func (r *Registry) parseOwnInstance(path, app, id string) (*registration, error) {
	data, _, err := r.conn.Get(path)
	if err != nil {
		return nil, err
	}
	in, err := dubboapp.Parse(data)
	if err != nil {
		return nil, err
	}
	eps, err := in.Endpoints()
	if err != nil {
		return nil, err
	}
	if len(eps) != 1 || in.Name != app || in.Addr() != id {
		return nil, errors.New("not an instance node of this adapter's")
	}
	ep, ok, err := readInstance(dubboapp.ServiceName(app, eps[0].Protocol), data)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("its protocol is not carried")
	}
	return &registration{ep: ep, path: path, data: data, registered: time.UnixMilli(in.RegisteredMs)}, nil
}

func (r *Registry) addStale(paths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range paths {
		r.stale[p] = struct{}{}
	}
}

// dropStale deletes node path, left by the previous run, if the current
// session owns it and no registration uses it, and forgets it. The
// caller holds the write lock.
func (r *Registry) dropStale(path string, inUse bool) error {
	if !inUse {
		ok, stat, err := r.conn.Exists(path)
		if err != nil {
			return err
		}
		if ok && stat.EphemeralOwner == r.conn.SessionID() {
			if err := r.conn.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
			r.log.Info("deleted a node of the previous run", zap.String("node", path))
		}
	}
	r.mu.Lock()
	delete(r.stale, path)
	r.mu.Unlock()
	return nil
}

// saveSession stores the session and every node path it may own, and
// pending, a node about to be written. Nothing without a store or a
// session. The caller holds the write lock (or is the keeper after a new
// session), so the stored nodes are never fewer than the server's. The
// store's errors are logged: a Registry works without it, only a restart
// then starts a new session.
func (r *Registry) saveSession(pending string) {
	if r.store == nil {
		return
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	sid, passwd := r.hs.session()
	if sid == 0 {
		return
	}
	r.savedSID = sid
	st := storedSession{SessionID: sid, Password: passwd}
	r.mu.Lock()
	for _, reg := range r.regs {
		st.Nodes = append(st.Nodes, reg.path)
	}
	for p := range r.orphans {
		st.Nodes = append(st.Nodes, p)
	}
	for p := range r.stale {
		st.Nodes = append(st.Nodes, p)
	}
	r.mu.Unlock()
	if pending != "" {
		st.Nodes = append(st.Nodes, pending)
	}
	slices.Sort(st.Nodes)
	st.Nodes = slices.Compact(st.Nodes)
	b, err := json.Marshal(st)
	if err == nil {
		err = r.store.Save(b)
	}
	if err != nil {
		r.log.Warn("cannot store the session; a restart will start a new one",
			zap.String("session_id", sessionHex(sid)), zap.Error(err))
	}
}

// clearSession empties the store: the session has ended.
func (r *Registry) clearSession() {
	if r.store == nil {
		return
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.savedSID = 0
	if err := r.store.Save(nil); err != nil {
		r.log.Warn("cannot empty the session store", zap.Error(err))
	}
}

// sessionChanged reports whether the session differs from the one last
// stored.
func (r *Registry) sessionChanged() bool {
	if r.store == nil {
		return false
	}
	sid, _ := r.hs.session()
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return sid != r.savedSID
}
