// Package config is the naming agent's configuration: one YAML file, the
// defaults every field takes when it is left out, and the validation whose
// errors name the field path ("ports.ingress.from: must be 1-65535").
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/detourmesh/detour/api/agentjson"
	etcdfe "github.com/detourmesh/detour/naming-agent/frontend/etcd"
	"github.com/detourmesh/detour/naming-agent/frontend/nacos"
	"github.com/detourmesh/detour/naming-agent/frontend/zookeeper"
)

// Config is the whole agent configuration. Durations are written as
// strings ("30s"). Every field has a default (see Default); a file needs
// only what differs.
type Config struct {
	// HostIP is the address other hosts reach this host at. Published
	// services are registered on it, and the sidecar's ingress and health
	// listeners bind it.
	HostIP string `yaml:"host_ip"`
	// HTTPListen and GRPCListen are the local API addresses. Loopback
	// unless an API token is set (api.token_file).
	HTTPListen string `yaml:"http_listen"`
	GRPCListen string `yaml:"grpc_listen"`
	// DataDir keeps the port assignment and the endpoint cache (and the
	// embedded registry's data).
	DataDir string `yaml:"data_dir"`

	Registry    Registry           `yaml:"registry"`
	Ports       Ports              `yaml:"ports"`
	Sidecar     Sidecar            `yaml:"sidecar"`
	HealthCheck HealthCheck        `yaml:"health_check"`
	Outlier     Outlier            `yaml:"outlier"`
	API         API                `yaml:"api"`
	Defaults    Service            `yaml:"service_defaults"`
	Services    map[string]Service `yaml:"services"`
	Frontends   Frontends          `yaml:"frontends"`
}

// Frontends are the registries the agent serves to this host's apps, so
// that an app takes part by changing one line, its registry address. Each
// is off until its listen address is set.
type Frontends struct {
	// ZooKeeper serves ZooKeeper's client protocol: the registry of Java
	// Dubbo (Curator) and dubbo-go apps (naming-agent/frontend/zookeeper).
	ZooKeeper zookeeper.Config `yaml:"zookeeper"`
	// Nacos serves Nacos's naming API, 2.x gRPC on listen's port + 1000
	// and 1.x HTTP on listen (naming-agent/frontend/nacos).
	Nacos nacos.Config `yaml:"nacos"`
	// Etcd serves etcd's v3 API in front of the registry's etcd
	// (naming-agent/frontend/etcd).
	Etcd etcdfe.Config `yaml:"etcd"`
}

// Registry says which registry to use and how.
type Registry struct {
	// URL is "embedded", "etcd://h:p[,h:p]", "zookeeper://h:p[,h:p]" or
	// "nacos://h:p?namespace=N&group=G".
	URL string `yaml:"url"`
	// Prefix is the etcd key prefix or the ZooKeeper root; empty means the
	// adapter's default.
	Prefix string `yaml:"prefix"`
	// SessionTTL is how long registrations outlive a crashed agent (etcd
	// lease TTL, ZooKeeper session timeout).
	SessionTTL time.Duration `yaml:"session_ttl"`
	// DialTimeout and RequestTimeout bound connecting and each request.
	DialTimeout    time.Duration `yaml:"dial_timeout"`
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Embedded configures the in-process etcd of URL "embedded".
	Embedded Embedded `yaml:"embedded"`
	// Username logs in to an etcd with auth on, a Nacos with auth on, or
	// ZooKeeper (digest); the URL's "user@" sets it too. The password
	// comes from PasswordFile, else $DETOUR_REGISTRY_PASSWORD: never
	// from the URL, which shows in ps and logs.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// TLS to etcd (etcd:// URLs): client certificates and the CA.
	TLS RegistryTLS `yaml:"tls"`
	// Password is read by LoadTokens, never from YAML.
	Password Secret `yaml:"-"`
}

// Embedded configures the embedded etcd server.
type Embedded struct {
	// ClientListen is where the embedded etcd serves clients; other agents
	// can use it as "etcd://ADDR".
	ClientListen string `yaml:"client_listen"`
	// PeerListen is the embedded etcd's peer address.
	PeerListen string `yaml:"peer_listen"`
}

// PortRange is an inclusive range of TCP ports.
type PortRange struct {
	From int `yaml:"from"`
	To   int `yaml:"to"`
}

// Size is the number of ports in the range.
func (r PortRange) Size() int { return r.To - r.From + 1 }

// Contains reports whether p is in the range.
func (r PortRange) Contains(p int) bool { return p >= r.From && p <= r.To }

// Ports are the sidecar ports the agent hands out.
type Ports struct {
	// Ingress ports (one per published service) bind HostIP.
	Ingress PortRange `yaml:"ingress"`
	// Egress ports (one per subscribed service) bind EgressIP.
	Egress PortRange `yaml:"egress"`
	// EgressIP is where egress listeners bind: 127.0.0.1, or a host's own
	// loopback address when several hosts share one machine.
	EgressIP string `yaml:"egress_ip"`
	// AppIP is where the sidecar reaches the apps published on this host
	// (ingress target and stage-1 check, APP_IP:PORT): 127.0.0.1, or a
	// host's own loopback address when several hosts share one machine.
	AppIP string `yaml:"app_ip"`
	// Health is the sidecar's health port on HostIP (GET /healthz/S).
	Health int `yaml:"health"`
	// UnusedEgressTTL drops a subscription that no app has resolved or
	// watched for this long and that has had no endpoints for as long (a
	// typo, a service gone for good), releasing its egress port. One with
	// endpoints is kept until unsubscribed: an app may dial its egress
	// without resolving again. 0 keeps every subscription.
	UnusedEgressTTL time.Duration `yaml:"unused_egress_ttl"`
}

// Sidecar says how the agent watches its sidecar.
type Sidecar struct {
	// Admin is the sidecar's admin address, probed at GET /ready, used
	// until the sidecar announces its own in its Hello.
	Admin string `yaml:"admin"`
	// ProbeInterval and ProbeTimeout pace the /ready probe.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`
	// ReadyThreshold consecutive good probes (with the control stream up
	// and a snapshot acknowledged) bring the mesh back after a fallback.
	ReadyThreshold int `yaml:"ready_threshold"`
	// DownThreshold consecutive failed probes declare the sidecar down
	// even while its stream is up (a hung sidecar).
	DownThreshold int `yaml:"down_threshold"`
	// StreamGrace is how long a sidecar whose stream broke but whose
	// /ready still answers has to reconnect before it is declared down.
	StreamGrace time.Duration `yaml:"stream_grace"`
}

// HealthCheck is the check of published apps (stage 1, by the sidecar, or
// by the agent itself while the sidecar does not) and the default the
// sidecar uses for remote endpoints (stage 2).
type HealthCheck struct {
	Interval           time.Duration `yaml:"interval"`
	Timeout            time.Duration `yaml:"timeout"`
	UnhealthyThreshold int           `yaml:"unhealthy_threshold"`
	HealthyThreshold   int           `yaml:"healthy_threshold"`
}

// Outlier is the outlier-ejection policy handed to the sidecar.
type Outlier struct {
	ConsecutiveFailures int           `yaml:"consecutive_failures"`
	BaseEjectionTime    time.Duration `yaml:"base_ejection_time"`
	MaxEjectionTime     time.Duration `yaml:"max_ejection_time"`
	MaxEjectionPercent  int           `yaml:"max_ejection_percent"`
	// PanicThreshold: below this percentage of healthy endpoints the
	// sidecar routes to all of them.
	PanicThreshold int `yaml:"panic_threshold"`
	// FirstByteTimeout (L4): no first response byte this long after the
	// client sent data counts as a failure. 0 disables it.
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
}

// API bounds the local API.
type API struct {
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxWait caps the wait of a blocking resolve.
	MaxWait time.Duration `yaml:"max_wait"`
	// InitialWait is how long the first resolve of a service waits for
	// the registry's first answer.
	InitialWait time.Duration `yaml:"initial_wait"`
	// TokenFile holds the API token (else $DETOUR_API_TOKEN). With a
	// token, every mutation (publish, unpublish, mesh, unsubscribe) over
	// HTTP or gRPC must carry it. See security.go and docs/SECURITY.md.
	TokenFile string `yaml:"token_file"`
	// ScopedTokens may mutate only the services and ports they name.
	ScopedTokens []ScopedToken `yaml:"scoped_tokens"`
	// TokenForReads asks any valid token of reads too (resolve, status,
	// metrics, Subscribe): a resolve subscribes and takes an egress port.
	TokenForReads bool `yaml:"token_for_reads"`
	// AllowedPorts, when set, are the only app ports anyone (API or front
	// end) may publish. The agent's and sidecar's own ports are refused
	// always.
	AllowedPorts []PortRange `yaml:"allowed_ports"`
	// Token is read by LoadTokens, never from YAML.
	Token Secret `yaml:"-"`
}

// Service holds per-service settings (and, as service_defaults, the
// values services without their own take).
type Service struct {
	// Mesh false keeps the service out of the mesh on this host. Unset
	// means true.
	Mesh *bool `yaml:"mesh"`
	// Protocol is "tcp", "http" or "grpc": what the sidecar may assume of
	// the traffic when this host subscribes. Publications say their own.
	Protocol string `yaml:"protocol"`
	// Timeout is the per-request (L7) or first-byte (L4) timeout the
	// sidecar enforces, handed to apps as governance timeout_ms.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how often the sidecar retries a failed request.
	Retries *int `yaml:"retries"`
	// Routes (services only, not defaults): subsets, splits and L7
	// rules the client-side sidecars apply; the API may override them.
	Routes *agentjson.Routes `yaml:"routes"`
	// Limits (services only): the inbound cap at the server-side sidecar.
	Limits *agentjson.Limit `yaml:"limits"`
}

// Default returns the configuration of an agent with no file: one host on
// 127.0.0.1, the embedded registry, data in /var/lib/detour.
func Default() Config {
	yes, two := true, 2
	return Config{
		HostIP:     "127.0.0.1",
		HTTPListen: "127.0.0.1:7700",
		GRPCListen: "127.0.0.1:7701",
		DataDir:    "/var/lib/detour",
		Registry: Registry{
			URL:            "embedded",
			SessionTTL:     10 * time.Second,
			DialTimeout:    5 * time.Second,
			RequestTimeout: 5 * time.Second,
			Embedded:       Embedded{ClientListen: "127.0.0.1:2379", PeerListen: "127.0.0.1:2380"},
		},
		Ports: Ports{
			Ingress:         PortRange{From: 20000, To: 20999},
			Egress:          PortRange{From: 30000, To: 30999},
			EgressIP:        "127.0.0.1",
			AppIP:           "127.0.0.1",
			Health:          7703,
			UnusedEgressTTL: 10 * time.Minute,
		},
		Sidecar: Sidecar{
			Admin:          "127.0.0.1:7702",
			ProbeInterval:  200 * time.Millisecond,
			ProbeTimeout:   200 * time.Millisecond,
			ReadyThreshold: 3,
			DownThreshold:  3,
			StreamGrace:    3 * time.Second,
		},
		HealthCheck: HealthCheck{
			Interval:           time.Second,
			Timeout:            500 * time.Millisecond,
			UnhealthyThreshold: 3,
			HealthyThreshold:   2,
		},
		Outlier: Outlier{
			ConsecutiveFailures: 5,
			BaseEjectionTime:    30 * time.Second,
			MaxEjectionTime:     300 * time.Second,
			MaxEjectionPercent:  10,
			PanicThreshold:      50,
		},
		API: API{
			MaxBodyBytes: 64 << 10,
			MaxWait:      5 * time.Minute,
			InitialWait:  2 * time.Second,
		},
		Defaults:  Service{Mesh: &yes, Protocol: "tcp", Timeout: 3 * time.Second, Retries: &two},
		Frontends: Frontends{ZooKeeper: zookeeperOff(), Nacos: nacosOff(), Etcd: etcdOff()},
	}
}

// zookeeperOff is the ZooKeeper front end's defaults, off (no listen
// address): a host may run a real ZooKeeper on 2181, the usual address.
func zookeeperOff() zookeeper.Config {
	c := zookeeper.Default()
	c.Listen = ""
	return c
}

// nacosOff is the Nacos front end's defaults, off: a host may run a real
// Nacos on 8848.
func nacosOff() nacos.Config {
	c := nacos.Default()
	c.Listen = ""
	return c
}

// Load reads the YAML file at path over Default(). Unknown keys are
// errors. It does not validate: flags may still override fields.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML over Default(). Unknown keys are errors; an empty
// document is the default configuration.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document")
	}
	return c, nil
}

// ServiceSettings returns the effective settings of service: its own
// entry over service_defaults. Mesh and Retries are never nil.
func (c Config) ServiceSettings(service string) Service {
	s := c.Defaults
	if s.Mesh == nil {
		t := true
		s.Mesh = &t
	}
	if s.Retries == nil {
		z := 0
		s.Retries = &z
	}
	o, ok := c.Services[service]
	if !ok {
		return s
	}
	if o.Mesh != nil {
		s.Mesh = o.Mesh
	}
	if o.Protocol != "" {
		s.Protocol = o.Protocol
	}
	if o.Timeout != 0 {
		s.Timeout = o.Timeout
	}
	if o.Retries != nil {
		s.Retries = o.Retries
	}
	return s
}
