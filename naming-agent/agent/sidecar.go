package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/config"
)

// sidecarState is what the agent knows of its sidecar and the decision
// whether the mesh carries traffic ("up") or the agent falls back.
//
// Down to up: the control stream is connected, the sidecar acknowledged a
// snapshot on this stream, and the last ReadyThreshold /ready probes
// succeeded in a row. Up to down, whichever comes first: the stream broke
// and a probe after that failed (a killed sidecar: the break triggers an
// immediate probe, refused at once); the stream stayed broken for
// StreamGrace although /ready answers; DownThreshold probes failed in a
// row although the stream is up (a hung sidecar).
//
// Settled: since the agent started, it has learned whether its sidecar
// lives: the sidecar came up, or a probe failed with no stream, or
// StreamGrace plus ReadyThreshold probes passed. A restarted agent finds
// its sidecar still serving and redialling; until settled, the
// registrations an earlier run left in the registry stay as they are
// (registrar.go), so a restart of the agent alone changes nothing there.
type sidecarState struct {
	defaultAdmin string
	adminAddr    string
	build        string
	instance     string // Hello.instance of the sidecar the agent has

	session        uint64 // current stream, 0: none
	nextSession    uint64
	connected      bool
	disconnectedAt time.Time
	ackedInSession bool

	up      bool
	since   time.Time
	started time.Time
	settled bool

	okStreak, failStreak int

	sent         map[uint64]*sidecarpb.Snapshot
	sentVersion  uint64
	ackedVersion uint64
	lastNack     string
	acked        *sidecarpb.Snapshot
	ackedEgress  map[string]string // service -> listen, of the acked snapshot
	ackedIngress map[string]string // service -> listen+"->"+target
	status       *sidecarpb.Status
}

func newSidecarState(admin string, now time.Time) sidecarState {
	return sidecarState{defaultAdmin: admin, adminAddr: admin, since: now, started: now, sent: map[uint64]*sidecarpb.Snapshot{}}
}

// decide applies the rules above and calls onChange on a transition.
func (s *sidecarState) decide(cfg config.Sidecar, now time.Time, onChange func(up bool)) {
	defer func() {
		settleBy := cfg.StreamGrace + time.Duration(cfg.ReadyThreshold)*cfg.ProbeInterval
		if !s.settled && (s.up || (!s.connected && s.failStreak > 0) || now.Sub(s.started) >= settleBy) {
			s.settled = true
		}
	}()
	if s.up {
		brokenAndDead := !s.connected && s.failStreak > 0
		graceOver := !s.connected && now.Sub(s.disconnectedAt) >= cfg.StreamGrace
		hung := s.failStreak >= cfg.DownThreshold
		if brokenAndDead || graceOver || hung {
			s.up, s.since = false, now
			if !s.connected {
				s.setAcked(nil)
			}
			onChange(false)
		}
		return
	}
	if s.connected && s.ackedInSession && s.okStreak >= cfg.ReadyThreshold {
		s.up, s.since = true, now
		onChange(true)
	}
}

func (s *sidecarState) probed(ok bool) {
	if ok {
		s.okStreak++
		s.failStreak = 0
	} else {
		s.failStreak++
		s.okStreak = 0
	}
}

func (s *sidecarState) setAcked(snap *sidecarpb.Snapshot) {
	s.acked = snap
	s.ackedEgress, s.ackedIngress = map[string]string{}, map[string]string{}
	if snap == nil {
		return
	}
	for _, l := range snap.Egress {
		s.ackedEgress[l.Service] = l.Listen
	}
	for _, l := range snap.Ingress {
		s.ackedIngress[l.Service] = l.Listen + "->" + l.Target
	}
}

// appHealth returns the sidecar's stage-1 verdict on (service, target).
func (s *sidecarState) appHealth(service, target string) (healthy bool, reason string, ok bool) {
	if s.status == nil {
		return false, "", false
	}
	for _, h := range s.status.Apps {
		if h.Service == service && h.Target == target {
			return h.Healthy, h.Reason, true
		}
	}
	return false, "", false
}

// maxUnacked is how many versions behind the newest an Ack may name.
const maxUnacked = 16

// SidecarSession is one control stream of the sidecar, seen from the
// agent. The API layer's stream handler drives it: Next for each snapshot
// to send, Ack/Nack/Status for what arrives, Close when the stream ends.
type SidecarSession struct {
	a        *Agent
	id       uint64
	lastSent uint64
}

// SidecarConnect opens a session for a sidecar that sent hello. One
// sidecar per agent: the agent keeps the one it has. A sidecar whose
// host_ip is not the agent's is refused (ErrSidecarRefused); so is
// another instance while the connected one's last /ready probe passed (a
// second sidecar started by mistake must not take the mesh down). A
// newer stream of the same instance (a reconnect), or any sidecar while
// the connected one fails its probes, replaces the session; the older
// one's Next then returns ErrReplaced.
func (a *Agent) SidecarConnect(hello *sidecarpb.Hello) (*SidecarSession, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, ErrClosed
	}
	if hello.GetAdminAddr() != "" {
		if _, _, err := net.SplitHostPort(hello.GetAdminAddr()); err != nil {
			return nil, fmt.Errorf("%w: hello.admin_addr %q: %v", ErrInvalid, hello.GetAdminAddr(), err)
		}
	}
	if err := a.fenceLocked(hello); err != nil {
		a.log.Warn("sidecar refused", zap.String("admin_addr", hello.GetAdminAddr()), zap.String("instance", hello.GetInstance()), zap.Error(err))
		return nil, err
	}
	a.sc.instance = hello.GetInstance()
	a.sc.nextSession++
	a.sc.session = a.sc.nextSession
	a.sc.connected = true
	a.sc.ackedInSession = false
	a.sc.adminAddr = a.sc.defaultAdmin
	if hello.GetAdminAddr() != "" {
		a.sc.adminAddr = hello.GetAdminAddr()
	}
	a.sc.build = hello.GetBuild()
	a.wakeSnapLocked()
	a.log.Info("sidecar connected", zap.String("admin_addr", a.sc.adminAddr), zap.String("build", a.sc.build))
	a.kick(a.probeNow)
	a.updateLocked()
	return &SidecarSession{a: a, id: a.sc.session}, nil
}

// fenceLocked says why hello's sidecar may not have the stream, or nil.
func (a *Agent) fenceLocked(hello *sidecarpb.Hello) error {
	if ip := hello.GetHostIp(); ip != "" && ip != a.cfg.HostIP {
		return fmt.Errorf("%w: the sidecar's --host-ip is %s but this agent's host_ip is %s", ErrSidecarRefused, ip, a.cfg.HostIP)
	}
	sameInstance := hello.GetInstance() == a.sc.instance
	if a.sc.connected && !sameInstance && a.sc.failStreak == 0 {
		// The instance is not named: it is what a reconnect of the
		// connected sidecar presents.
		return fmt.Errorf("%w: another sidecar (admin %s) is connected and ready; stop one of them",
			ErrSidecarRefused, a.sc.adminAddr)
	}
	return nil
}

func (a *Agent) wakeSnapLocked() {
	close(a.snapWake)
	a.snapWake = make(chan struct{})
}

// Next returns the snapshot to send: the current one on the first call,
// then each newer one as it appears (intermediate versions that were
// superseded before being sent are skipped: each snapshot is complete).
func (s *SidecarSession) Next(ctx context.Context) (*sidecarpb.Snapshot, error) {
	a := s.a
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return nil, ErrClosed
		}
		if a.sc.session != s.id {
			a.mu.Unlock()
			return nil, ErrReplaced
		}
		snap, calm := a.currentSnapLocked()
		if calm > 0 {
			a.mu.Unlock()
			t := time.NewTimer(calm)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			continue
		}
		if snap.Version != s.lastSent {
			s.lastSent = snap.Version
			a.sc.sent[snap.Version] = snap
			a.sc.sentVersion = snap.Version
			// Keep the last few unacknowledged versions, not all of
			// them: a sidecar acks the newest it applied.
			for v := range a.sc.sent {
				if v+maxUnacked < snap.Version {
					delete(a.sc.sent, v)
				}
			}
			a.mu.Unlock()
			return snap, nil
		}
		wake := a.snapWake
		a.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack records that the sidecar applied version in full.
func (s *SidecarSession) Ack(version uint64) {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	snap, ok := a.sc.sent[version]
	if a.sc.session != s.id || !ok {
		return
	}
	for v := range a.sc.sent {
		if v <= version {
			delete(a.sc.sent, v)
		}
	}
	a.sc.ackedVersion = version
	a.sc.ackedInSession = true
	a.sc.setAcked(snap)
	a.updateLocked()
}

// Nack records that the sidecar rejected version; the previous snapshot
// stays in force.
func (s *SidecarSession) Nack(version uint64, reason string) {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sc.session != s.id {
		return
	}
	// The version stays acknowledgeable: a sidecar may apply it on a
	// retry (the port it could not bind came free).
	a.sc.lastNack = "version " + strconv.FormatUint(version, 10) + ": " + reason
	a.metrics.nacks.Inc()
	a.log.Warn("sidecar rejected a snapshot", zap.Uint64("version", version), zap.String("reason", reason))
}

// Status records the sidecar's complete status report.
func (s *SidecarSession) Status(st *sidecarpb.Status) {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sc.session != s.id {
		return
	}
	a.sc.status = st
	a.updateLocked()
}

// Close ends the session: the stream is gone. The agent probes /ready at
// once to tell a dead sidecar from a broken stream.
func (s *SidecarSession) Close() {
	a := s.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sc.session != s.id {
		return
	}
	a.sc.session = 0
	a.sc.connected = false
	a.sc.ackedInSession = false
	a.sc.disconnectedAt = a.opts.now()
	a.sc.status = nil
	a.log.Info("sidecar stream closed")
	a.kick(a.probeNow)
	a.updateLocked()
}
