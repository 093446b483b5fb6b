package nacos

import (
	"context"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// service is one Nacos service the server watches for its apps.
type service struct {
	key  key
	mesh string
	// first is closed at the first known view.
	first chan struct{}

	// Guarded by Server.mu.
	view        frontend.View
	refTime     uint64
	subscribers map[*conn]bool
	udp         map[udpTarget]time.Time // 1.x clients pushed to by UDP, until then
	lastAsked   time.Time
	cancel      context.CancelFunc
}

// idleWatch is how long the watch of a service that was only queried
// (no subscriber) is kept after its last query.
const idleWatch = time.Minute

// watched returns k's state, starting its watch at the first call.
// Server.mu is held.
func (s *Server) watchedLocked(k key, mesh string) *service {
	s.known[k] = true
	svc := s.services[k]
	if svc != nil {
		svc.lastAsked = s.now()
		return svc
	}
	ctx, cancel := context.WithCancel(s.ctx)
	svc = &service{
		key: k, mesh: mesh, first: make(chan struct{}),
		subscribers: map[*conn]bool{}, lastAsked: s.now(), cancel: cancel,
		refTime: s.nextRefTimeLocked(),
	}
	s.services[k] = svc
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.watch(ctx, svc)
	}()
	return svc
}

// watch follows svc's view until ctx ends; each change is pushed to its
// subscribers at once.
func (s *Server) watch(ctx context.Context, svc *service) {
	for ctx.Err() == nil {
		err := s.core.Watch(ctx, svc.mesh, func(v frontend.View) {
			s.mu.Lock()
			svc.view = v
			svc.refTime = s.nextRefTimeLocked()
			for c := range svc.subscribers {
				c.pending[svc.key] = true
				select {
				case c.wake <- struct{}{}:
				default:
				}
			}
			udp := s.udpPushesLocked(svc)
			s.mu.Unlock()
			s.sendUDP(udp)
			if v.Known {
				select {
				case <-svc.first:
				default:
					close(svc.first)
				}
			}
		})
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("watch of a service for its subscribers failed; retrying", zap.String("service", svc.mesh), zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// waitFirst waits, up to FirstWait, for svc's first known view.
func (s *Server) waitFirst(ctx context.Context, svc *service) {
	select {
	case <-svc.first:
		return
	default:
	}
	t := time.NewTimer(FirstWait)
	defer t.Stop()
	select {
	case <-svc.first:
	case <-t.C:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}

// infoLocked is svc as an app asking for clusters sees it.
func (s *Server) infoLocked(svc *service, clusters string) model.Service {
	return model.Service{
		Name:        svc.key.name,
		GroupName:   svc.key.group,
		Clusters:    clusters,
		CacheMillis: 10000,
		Hosts:       instancesOf(svc.key, svc.view, wantClusters(clusters)),
		LastRefTime: svc.refTime,
		Valid:       true,
	}
}

// query answers a service query (also a subscription's first answer).
func (s *Server) query(ctx context.Context, k key, mesh, clusters string) model.Service {
	s.mu.Lock()
	svc := s.watchedLocked(k, mesh)
	s.mu.Unlock()
	s.waitFirst(ctx, svc)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked(svc, clusters)
}

// subscribe adds or removes c as a subscriber of k and answers with the
// service as c sees it now.
func (s *Server) subscribe(ctx context.Context, c *conn, k key, mesh, clusters string, on bool) model.Service {
	if !on {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(c.subscribed[k], clusters)
		svc := s.services[k]
		if len(c.subscribed[k]) == 0 {
			delete(c.subscribed, k)
			if svc != nil {
				delete(svc.subscribers, c)
			}
		}
		if svc == nil {
			return model.Service{Name: k.name, GroupName: k.group, Clusters: clusters, Hosts: []model.Instance{}, Valid: true}
		}
		return s.infoLocked(svc, clusters)
	}
	s.mu.Lock()
	svc := s.watchedLocked(k, mesh)
	if !c.gone {
		svc.subscribers[c] = true
		if c.subscribed[k] == nil {
			c.subscribed[k] = map[string]bool{}
		}
		c.subscribed[k][clusters] = true
		s.startPushLocked(c)
	}
	s.mu.Unlock()
	s.waitFirst(ctx, svc)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked(svc, clusters)
}

// sweepIdle ends the watches of services nobody subscribes to that were
// not queried for idleWatch, so one-off queries of many names do not
// keep the registry watched.
func (s *Server) sweepIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var swept []key
	for k, svc := range s.services {
		if len(svc.subscribers) == 0 && now.Sub(svc.lastAsked) > idleWatch {
			svc.cancel()
			delete(s.services, k)
			swept = append(swept, k)
		}
	}
	if len(swept) == 0 {
		return
	}
	// The service list forgets names only asked for (so a client asking
	// for many names grows nothing for long); registered ones stay.
	registered := map[key]bool{}
	for _, c := range s.conns {
		for _, k := range c.published {
			registered[k] = true
		}
	}
	for _, b := range s.beats {
		registered[b.key] = true
	}
	for _, k := range swept {
		if !registered[k] {
			delete(s.known, k)
		}
	}
}
