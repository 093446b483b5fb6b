package nacostestserver

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// serviceKey names a service as Nacos does: namespace, group, name.
type serviceKey struct {
	namespace, group, name string
}

func newServiceKey(namespace, group, name string) serviceKey {
	if namespace == "" {
		namespace = nacoswire.DefaultNamespace
	}
	if group == "" {
		group = nacoswire.DefaultGroup
	}
	return serviceKey{namespace, group, name}
}

func (k serviceKey) grouped() string { return nacoswire.GroupedName(k.group, k.name) }

// service is the server's state of one service.
type service struct {
	// owned holds the instances each connection published, by connection
	// ID. A connection's publication is replaced whole by each register or
	// batch register and removed whole by a deregister, as Nacos 2.x does
	// (one InstancePublishInfo per client and service).
	owned map[string][]model.Instance
	// raw holds instances written with PutRawInstance, by instance ID.
	raw map[string]model.Instance
	// subscribers maps a subscribing connection's ID to the clusters it
	// asked for ("" for all).
	subscribers map[string]string
	// refTime is the lastRefTime of the current state, strictly
	// increasing across every change of every service.
	refTime uint64
}

// push is one NotifySubscriberRequest to send once Server.mu is released.
type push struct {
	c *conn
	p *nacoswire.NotifyRequest
}

// clusterName is Nacos's NamingUtils cluster name pattern.
var clusterName = regexp.MustCompile(`^[0-9a-zA-Z-]+$`)

// checkInstance refuses what Nacos's InstanceRequestHandler refuses, for
// the instances the test server supports (ephemeral only).
func checkInstance(in model.Instance) error {
	if !in.Ephemeral {
		return fmt.Errorf("nacostestserver: persistent instances are not supported (ephemeral=false)")
	}
	if in.Weight < 0 || in.Weight > 10000 {
		return fmt.Errorf("instance format invalid: The weights range from 0.0 to 10000.0")
	}
	if in.ClusterName != "" && !clusterName.MatchString(in.ClusterName) {
		return fmt.Errorf("instance format invalid: cluster name %q must match %s", in.ClusterName, clusterName)
	}
	return nil
}

// normalize fills in what Nacos fills in: cluster, grouped service name,
// instance ID (ip#port#cluster#group@@service, Nacos's default generator)
// and the heartbeat fields the SDK's model carries.
func normalize(k serviceKey, in model.Instance) model.Instance {
	if in.ClusterName == "" {
		in.ClusterName = nacoswire.DefaultCluster
	}
	in.ServiceName = k.grouped()
	if in.InstanceId == "" {
		in.InstanceId = in.Ip + "#" + strconv.FormatUint(in.Port, 10) + "#" + in.ClusterName + "#" + in.ServiceName
	}
	in.Metadata = maps.Clone(in.Metadata)
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	in.InstanceHeartBeatInterval = 5000
	in.InstanceHeartBeatTimeOut = 15000
	in.IpDeleteTimeout = 30000
	return in
}

// serviceLocked returns the state of k, creating it.
func (s *Server) serviceLocked(k serviceKey) *service {
	svc := s.services[k]
	if svc == nil {
		svc = &service{
			owned:       map[string][]model.Instance{},
			raw:         map[string]model.Instance{},
			subscribers: map[string]string{},
		}
		s.services[k] = svc
	}
	return svc
}

// nextRefTimeLocked returns a lastRefTime later than every one handed out
// so far: the current time in milliseconds, or one more than the last.
func (s *Server) nextRefTimeLocked() uint64 {
	now := uint64(time.Now().UnixMilli())
	s.refClock = max(now, s.refClock+1)
	return s.refClock
}

// changedLocked gives k a new lastRefTime and returns the pushes that
// tell its subscribers.
func (s *Server) changedLocked(k serviceKey) []push {
	svc := s.serviceLocked(k)
	svc.refTime = s.nextRefTimeLocked()
	pushes := make([]push, 0, len(svc.subscribers))
	for id, clusters := range svc.subscribers {
		c := s.conns[id]
		if c == nil {
			continue
		}
		s.pushSeq++
		pushes = append(pushes, push{c: c, p: &nacoswire.NotifyRequest{
			RequestID:   strconv.FormatUint(s.pushSeq, 10),
			Namespace:   k.namespace,
			ServiceName: k.name,
			GroupName:   k.group,
			Module:      "naming",
			ServiceInfo: s.serviceInfoLocked(k, clusters, false),
		}})
	}
	return pushes
}

// publishLocked replaces what c published under k with insts (none:
// deregister).
func (s *Server) publishLocked(c *conn, k serviceKey, insts []model.Instance) []push {
	svc := s.serviceLocked(k)
	if len(insts) == 0 {
		if _, ok := svc.owned[c.id]; !ok {
			return nil
		}
		delete(svc.owned, c.id)
		delete(c.published, k)
		return s.changedLocked(k)
	}
	norm := make([]model.Instance, len(insts))
	for i, in := range insts {
		norm[i] = normalize(k, in)
	}
	svc.owned[c.id] = norm
	c.published[k] = true
	return s.changedLocked(k)
}

// subscribeLocked adds or removes c as a subscriber of k and returns the
// service as c now sees it.
func (s *Server) subscribeLocked(c *conn, k serviceKey, clusters string, on bool) model.Service {
	svc := s.serviceLocked(k)
	if on {
		svc.subscribers[c.id] = clusters
		c.subscribed[k] = true
	} else {
		delete(svc.subscribers, c.id)
		delete(c.subscribed, k)
	}
	return s.serviceInfoLocked(k, clusters, false)
}

// forgetLocked removes everything c published and every subscription it
// held, as Nacos does when a connection is unregistered.
func (s *Server) forgetLocked(c *conn) []push {
	var pushes []push
	for _, k := range slices.SortedFunc(maps.Keys(c.subscribed), compareKeys) {
		delete(s.serviceLocked(k).subscribers, c.id)
	}
	for _, k := range slices.SortedFunc(maps.Keys(c.published), compareKeys) {
		delete(s.serviceLocked(k).owned, c.id)
		pushes = append(pushes, s.changedLocked(k)...)
	}
	clear(c.subscribed)
	clear(c.published)
	return pushes
}

func compareKeys(a, b serviceKey) int {
	return cmp.Or(cmp.Compare(a.namespace, b.namespace), cmp.Compare(a.group, b.group), cmp.Compare(a.name, b.name))
}

// allLocked returns every instance of k, owned and raw, sorted by
// instance ID. The Metadata maps are shared and must not be changed.
func (s *Server) allLocked(k serviceKey) []model.Instance {
	svc := s.services[k]
	if svc == nil {
		return nil
	}
	var all []model.Instance
	for _, insts := range svc.owned {
		all = append(all, insts...)
	}
	for _, in := range svc.raw {
		all = append(all, in)
	}
	slices.SortFunc(all, func(a, b model.Instance) int { return cmp.Compare(a.InstanceId, b.InstanceId) })
	return all
}

// serviceInfoLocked builds the ServiceInfo a query, a subscription or a
// push returns: enabled instances only (Nacos's enableOnly), of the given
// comma-separated clusters ("" for all), healthy ones only if asked.
func (s *Server) serviceInfoLocked(k serviceKey, clusters string, healthyOnly bool) model.Service {
	var want map[string]bool
	if clusters != "" {
		want = map[string]bool{}
		for _, c := range strings.Split(clusters, ",") {
			want[strings.TrimSpace(c)] = true
		}
	}
	hosts := []model.Instance{}
	for _, in := range s.allLocked(k) {
		if !in.Enable || (healthyOnly && !in.Healthy) || (want != nil && !want[in.ClusterName]) {
			continue
		}
		hosts = append(hosts, in)
	}
	var ref uint64
	if svc := s.services[k]; svc != nil {
		ref = svc.refTime
	}
	if ref == 0 {
		// A service nobody wrote yet: any time before the first change.
		ref = s.refClock
	}
	return model.Service{
		Name:        k.name,
		GroupName:   k.group,
		Clusters:    clusters,
		CacheMillis: 10000,
		Hosts:       hosts,
		LastRefTime: ref,
		Valid:       true,
	}
}

// serviceNamesLocked lists the services of namespace and group that
// have had an instance, sorted: Nacos creates a service at its first
// registration.
func (s *Server) serviceNamesLocked(namespace, group string) []string {
	want := newServiceKey(namespace, group, "")
	var names []string
	for k, svc := range s.services {
		if k.namespace == want.namespace && k.group == want.group && (svc.refTime != 0 || len(svc.owned)+len(svc.raw) > 0) {
			names = append(names, k.name)
		}
	}
	slices.Sort(names)
	return names
}

// page is page pageNo (from 1) of pageSize names, as Nacos pages its
// service list; everything if pageSize <= 0.
func page(names []string, pageNo, pageSize int) []string {
	if pageSize <= 0 {
		return append([]string{}, names...)
	}
	start := len(names)
	if pageNo = max(pageNo, 1); pageNo-1 <= len(names)/pageSize { // no overflow
		start = min((pageNo-1)*pageSize, len(names))
	}
	return append([]string{}, names[start:min(start+pageSize, len(names))]...)
}
