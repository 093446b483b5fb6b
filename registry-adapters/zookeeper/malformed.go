package zookeeper

import (
	"slices"
	"sync"
)

// malformedLog remembers which malformed provider nodes were reported, so
// each is reported once however often it is listed, by List and watchers
// alike. It forgets a node once a listing no longer has it, so it stays as
// small as the garbage present.
type malformedLog struct {
	mu   sync.Mutex
	seen map[string]*reported // by service
}

type reported struct {
	names map[string]struct{}
	pzxid int64 // of the newest listing that pruned names
}

func newMalformedLog() *malformedLog {
	return &malformedLog{seen: map[string]*reported{}}
}

// fresh takes the malformed children of one full listing of service and
// returns those not reported before, sorted, marking them reported.
//
// A node name is its content, so a reported node still present is in bad
// again, and one that is not has gone: it is forgotten. pzxid (the
// providers node's Pzxid, which grows with every change to its children)
// keeps a listing older than one already used from forgetting a node that
// a newer listing reported, which would report it twice.
func (m *malformedLog) fresh(service string, bad map[string]error, pzxid int64) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := m.seen[service]
	if len(bad) == 0 && rep == nil {
		return nil
	}
	if rep == nil {
		rep = &reported{names: map[string]struct{}{}}
		m.seen[service] = rep
	}
	var out []string
	for name := range bad {
		if _, ok := rep.names[name]; !ok {
			rep.names[name] = struct{}{}
			out = append(out, name)
		}
	}
	if pzxid >= rep.pzxid {
		rep.pzxid = pzxid
		for name := range rep.names {
			if _, ok := bad[name]; !ok {
				delete(rep.names, name)
			}
		}
	}
	slices.Sort(out)
	return out
}
