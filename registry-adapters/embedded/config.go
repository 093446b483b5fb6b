package embedded

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Config configures the embedded server and the registry on it. Durations
// are written as strings in YAML ("1h").
type Config struct {
	// DataDir holds etcd's WAL and database. Required; a restart on the
	// same DataDir keeps what was written.
	DataDir string `yaml:"data_dir"`
	// Name is the member's name.
	Name string `yaml:"name"`
	// ListenClient is the "host:port" clients connect to. Other agents
	// reach it only if host is an address they can route to. Port 0 picks
	// a free port (see Registry.ClientURL); then the member advertises
	// port 0 to clients that sync the member list, so use it for tests.
	ListenClient string `yaml:"listen_client"`
	// ListenPeer is the "host:port" of the peer listener; a single member
	// has no peers, but etcd needs one.
	ListenPeer string `yaml:"listen_peer"`
	// StartTimeout bounds how long New waits for the server to be ready.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// QuotaBackendBytes caps the database; past it etcd refuses writes.
	QuotaBackendBytes int64 `yaml:"quota_backend_bytes"`
	// CompactionRetention is how much revision history is kept (periodic
	// compaction). Watchers that fall further behind list again.
	CompactionRetention time.Duration `yaml:"compaction_retention"`
	// UnsafeNoFsync skips fsync: a machine crash can lose or corrupt
	// data. For tests only.
	UnsafeNoFsync bool `yaml:"unsafe_no_fsync"`
	// Registry configures the registry on the server (prefix, lease_ttl,
	// request_timeout, dial_timeout). Its endpoints are ignored.
	Registry etcd.Config `yaml:"registry"`
}

// Default returns the defaults of every field but DataDir.
func Default() Config {
	return Config{
		Name:                "detour",
		ListenClient:        "127.0.0.1:2379",
		ListenPeer:          "127.0.0.1:2380",
		StartTimeout:        10 * time.Second,
		QuotaBackendBytes:   256 << 20,
		CompactionRetention: time.Hour,
		Registry:            etcd.Config{Prefix: etcd.DefaultPrefix},
	}
}

func (c Config) withDefaults() Config {
	d := Default()
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.ListenClient == "" {
		c.ListenClient = d.ListenClient
	}
	if c.ListenPeer == "" {
		c.ListenPeer = d.ListenPeer
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = d.StartTimeout
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = d.QuotaBackendBytes
	}
	if c.CompactionRetention == 0 {
		c.CompactionRetention = d.CompactionRetention
	}
	return c
}

// Validate checks c as New would use it (zero fields take their defaults)
// and names the field of every problem it finds.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if strings.ContainsAny(c.Name, ",= \t\n") {
		bad("name", "%q must not contain ',', '=' or spaces", c.Name)
	}
	if err := checkHostPort(c.ListenClient); err != nil {
		bad("listen_client", "%v", err)
	}
	if err := checkHostPort(c.ListenPeer); err != nil {
		bad("listen_peer", "%v", err)
	}
	if c.ListenClient == c.ListenPeer && !strings.HasSuffix(c.ListenClient, ":0") {
		bad("listen_peer", "%q is also listen_client", c.ListenPeer)
	}
	if c.StartTimeout < 0 {
		bad("start_timeout", "must be > 0")
	}
	if c.QuotaBackendBytes < 0 {
		bad("quota_backend_bytes", "must be > 0")
	}
	if c.CompactionRetention < 0 {
		bad("compaction_retention", "must be > 0")
	}
	r := c.Registry
	r.Endpoints = []string{c.ListenClient} // what New points it at
	if err := r.Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("registry.%w", e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("embedded config: %w", err)
	}
	return nil
}

// unjoin splits the errors.Join inside an etcd config error into its
// parts.
func unjoin(err error) []error {
	if u, ok := errors.Unwrap(err).(interface{ Unwrap() []error }); ok {
		return u.Unwrap()
	}
	return []error{err}
}

func checkHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return fmt.Errorf("%q: %v", hp, err)
	}
	if host == "" {
		return fmt.Errorf("%q: missing host", hp)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", hp)
	}
	return nil
}

// Option configures New and StartServer.
type Option func(*options)

type options struct {
	logger      *zap.Logger
	etcdLogger  *zap.Logger
	onMalformed registry.MalformedFunc
	store       registry.SessionStore
}

// WithLogger sets the logger of the registry ("registry.etcd") and of the
// server's lifecycle ("registry.embedded"). Default: discard.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithEtcdLogger hands etcd's own server logs to l. They are many and
// verbose at info level; by default they are discarded.
func WithEtcdLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.etcdLogger = l
		}
	}
}

// WithMalformedFunc sets the registry's MalformedFunc; see
// etcd.WithMalformedFunc.
func WithMalformedFunc(f registry.MalformedFunc) Option {
	return func(o *options) { o.onMalformed = f }
}

// WithSessionStore makes the registry keep its lease in s and take it back
// at the next New; see etcd.WithSessionStore. The embedded server keeps
// its leases across a restart on the same data_dir (it gives each its
// whole TTL again when it starts), so an agent restarted with the same
// store finds its registrations still there and keeps them.
func WithSessionStore(s registry.SessionStore) Option {
	return func(o *options) { o.store = s }
}
