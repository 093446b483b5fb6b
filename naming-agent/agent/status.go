package agent

import (
	"maps"
	"slices"
)

// Status describes the agent now.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Status{
		HostIP:        a.cfg.HostIP,
		Registry:      RegistryStatus{URL: a.cfg.Registry.URL, OK: a.regErr == nil},
		Sidecar:       a.sidecarStatusLocked(),
		Publications:  []Publication{},
		Subscriptions: []Subscription{},
		MeshDisabled:  []string{},
	}
	if a.regErr != nil {
		since := a.regSince
		st.Registry.Error, st.Registry.ErrorSince = a.regErr.Error(), &since
	}
	for _, svc := range slices.Sorted(maps.Keys(a.pubs)) {
		st.Publications = append(st.Publications, a.publicationLocked(a.pubs[svc]))
	}
	disabled := map[string]bool{}
	for _, svc := range slices.Sorted(maps.Keys(a.subs)) {
		s := a.subs[svc]
		sub := Subscription{
			Service: svc, Answer: s.answer, Subscribers: s.waiters, EgressPort: s.egress,
			MeshEnabled: a.meshEnabledLocked(svc), FromCache: s.fromCache,
		}
		if s.err != nil {
			sub.Error = s.err.Error()
		}
		st.Subscriptions = append(st.Subscriptions, sub)
	}
	for svc := range a.subs {
		disabled[svc] = !a.meshEnabledLocked(svc)
	}
	for svc := range a.pubs {
		disabled[svc] = !a.meshEnabledLocked(svc)
	}
	for svc := range a.cfg.Services {
		disabled[svc] = !a.meshEnabledLocked(svc)
	}
	for svc := range a.meshFlag {
		disabled[svc] = !a.meshEnabledLocked(svc)
	}
	for _, svc := range slices.Sorted(maps.Keys(disabled)) {
		if disabled[svc] {
			st.MeshDisabled = append(st.MeshDisabled, svc)
		}
	}
	return st
}

func (a *Agent) sidecarStatusLocked() SidecarStatus {
	sc := &a.sc
	out := SidecarStatus{
		State:             "down",
		Connected:         sc.connected,
		AdminAddr:         sc.adminAddr,
		SentVersion:       sc.sentVersion,
		AckedVersion:      sc.ackedVersion,
		LastNack:          sc.lastNack,
		ConsecutiveReady:  sc.okStreak,
		ConsecutiveFailed: sc.failStreak,
		Since:             sc.since,
	}
	if sc.up {
		out.State = "up"
	}
	if sc.status != nil {
		for _, l := range sc.status.Listeners {
			out.Listeners = append(out.Listeners, ListenerState{Listen: l.Listen, Service: l.Service, Up: l.Up, Error: l.Error})
		}
		for _, e := range sc.status.Endpoints {
			out.Endpoints = append(out.Endpoints, EndpointHealth{Service: e.Service, Addr: e.Addr, State: e.State.String()})
		}
	}
	return out
}

// MeshEnabled reports the mesh flag of service on this host.
func (a *Agent) MeshEnabled(service string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.meshEnabledLocked(service)
}
