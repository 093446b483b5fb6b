package testbed

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Fixed ports per host are safe: every host has its own loopback address.
const (
	AgentHTTPPort = 7700
	AgentGRPCPort = 7701
	AdminPort     = 7702
	HealthPort    = 7703
	// ZooKeeperPort is where a host's agent serves its ZooKeeper front
	// end when started with --zookeeper-listen ZooKeeperAddr() (not
	// ZooKeeper's 2181, which a system ZooKeeper may hold on every
	// address).
	ZooKeeperPort = 7704
	EtcdPort      = 2379
)

// Host is one simulated machine: its address, its naming agent and its
// sidecar.
type Host struct {
	IP       string
	Dir      string
	Registry string // "embedded" or a registry URL
	Bin      string // where the naming-agent and sidecar binaries are

	// SidecarEnv is added to the sidecar's environment (benchmarks set
	// GOMAXPROCS=1).
	SidecarEnv []string
	// SidecarArgs are more sidecar flags (benchmarks add --pprof).
	SidecarArgs []string
	// AgentArgs are more naming-agent flags, after --config (a front
	// end: --zookeeper-listen).
	AgentArgs []string

	Agent   *Proc
	Sidecar *Proc
	api     *Client
}

// Spec says what a host is: its address, its registry and the agent's
// config beyond the defaults the testbed writes.
type Spec struct {
	IP       string
	Registry string // "embedded" or a registry URL
	// Prefix is registry.prefix: the etcd key prefix or ZooKeeper root,
	// so tests sharing a server do not see each other.
	Prefix string
	// ExtraConfig is YAML appended to the agent's config (keys the
	// testbed does not write, e.g. "services:").
	ExtraConfig string
	// AgentArgs are more naming-agent flags (Host.AgentArgs).
	AgentArgs []string
}

// NewHost writes the agent's config for spec under dir. Nothing is
// started.
func NewHost(bin, dir string, spec Spec) (*Host, error) {
	ip := spec.IP
	h := &Host{IP: ip, Dir: dir, Registry: spec.Registry, Bin: bin, AgentArgs: spec.AgentArgs}
	h.api = &Client{Base: fmt.Sprintf("http://%s", h.addr(AgentHTTPPort))}
	cfg := fmt.Sprintf(`host_ip: %[1]s
http_listen: %[1]s:%[2]d
grpc_listen: %[1]s:%[3]d
data_dir: %[4]s
registry:
  url: %[5]q
  prefix: %[10]q
  session_ttl: 5s
  embedded: {client_listen: "%[1]s:%[6]d", peer_listen: "%[1]s:%[7]d"}
ports:
  egress_ip: %[1]s
  app_ip: %[1]s
  health: %[8]d
sidecar:
  admin: %[1]s:%[9]d
`, ip, AgentHTTPPort, AgentGRPCPort, filepath.Join(dir, "data"), spec.Registry, EtcdPort, EtcdPort+1, HealthPort, AdminPort, spec.Prefix)
	cfg += spec.ExtraConfig
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(h.ConfigPath(), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Host) addr(port int) string { return net.JoinHostPort(h.IP, strconv.Itoa(port)) }

// ConfigPath is the agent's config file.
func (h *Host) ConfigPath() string { return filepath.Join(h.Dir, "agent.yaml") }

// API is a client of this host's agent HTTP API.
func (h *Host) API() *Client { return h.api }

// AgentGRPC is the agent's gRPC address (apps' SDK, sidecar control).
func (h *Host) AgentGRPC() string { return h.addr(AgentGRPCPort) }

// AdminAddr is the sidecar's admin address.
func (h *Host) AdminAddr() string { return h.addr(AdminPort) }

// ZooKeeperAddr is where the agent's ZooKeeper front end listens when
// AgentArgs has "--zookeeper-listen", ZooKeeperAddr().
func (h *Host) ZooKeeperAddr() string { return h.addr(ZooKeeperPort) }

// RegistryURL is the etcd URL other hosts use for this host's embedded
// registry.
func (h *Host) RegistryURL() string { return "etcd://" + h.addr(EtcdPort) }

// StartAgent starts the naming agent and waits until its API answers.
func (h *Host) StartAgent(ctx context.Context) error {
	p, err := Start("agent-"+h.IP, filepath.Join(h.Bin, "naming-agent"), filepath.Join(h.Dir, "agent.log"),
		append([]string{"--config", h.ConfigPath()}, h.AgentArgs...)...)
	if err != nil {
		return err
	}
	h.Agent = p
	return Poll(ctx, 30*time.Second, "agent on "+h.IP+" answers", func() bool {
		_, err := h.api.Status(ctx)
		return err == nil
	})
}

// StartSidecar starts the sidecar (it connects to the agent by itself).
func (h *Host) StartSidecar() error {
	p, err := StartEnv("sidecar-"+h.IP, filepath.Join(h.Bin, "sidecar"), filepath.Join(h.Dir, "sidecar.log"), h.SidecarEnv,
		append([]string{"--agent", h.AgentGRPC(), "--host-ip", h.IP, "--admin", h.AdminAddr(),
			"--agent-secret-file", filepath.Join(h.Dir, "data", "sidecar.secret")}, h.SidecarArgs...)...)
	if err != nil {
		return err
	}
	h.Sidecar = p
	return nil
}

// WaitSidecar waits until the agent reports its sidecar in state ("up",
// "down").
func (h *Host) WaitSidecar(ctx context.Context, state string) error {
	return Poll(ctx, 30*time.Second, "sidecar on "+h.IP+" "+state, func() bool {
		st, err := h.api.Status(ctx)
		return err == nil && st.Sidecar.State == state
	})
}

// WaitAnswer polls the agent's resolve until cond holds and returns that
// answer.
func (h *Host) WaitAnswer(ctx context.Context, service, what string, cond func(Answer) bool) (Answer, error) {
	var last Answer
	err := Poll(ctx, 20*time.Second, fmt.Sprintf("%s on %s: %s", service, h.IP, what), func() bool {
		a, err := h.api.Resolve(ctx, service)
		last = a
		return err == nil && cond(a)
	})
	return last, err
}

// Close kills what runs on the host.
func (h *Host) Close() {
	for _, p := range []*Proc{h.Sidecar, h.Agent} {
		if p != nil {
			_ = p.Kill()
		}
	}
}

// Poll calls cond until it holds, d passes or ctx ends.
func Poll(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for: %s", d, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(wait):
		}
	}
	return nil
}

// SidecarStats reads the sidecar's admin /stats.
func (h *Host) SidecarStats(ctx context.Context) (SidecarStats, error) {
	var st SidecarStats
	c := &Client{Base: "http://" + h.AdminAddr()}
	err := c.Do(ctx, "GET", "/stats", nil, &st)
	return st, err
}
