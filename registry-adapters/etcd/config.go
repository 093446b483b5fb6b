package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// DefaultPrefix is the key prefix services live under when Config.Prefix is
// empty. A gRPC client resolves service S at etcd:///detour/services/S.
const DefaultPrefix = "detour/services"

// Config configures a Registry. Durations are written as strings in YAML
// ("10s").
type Config struct {
	// Endpoints are the etcd client URLs, "host:port" or
	// "http://host:port". Not needed with WithClient.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is the key prefix, without leading or trailing '/'.
	Prefix string `yaml:"prefix"`
	// DialTimeout bounds connecting to etcd.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// LeaseTTL is the TTL of the lease registrations are bound to: how long
	// they outlive a crashed process. Whole seconds, at least 1s (etcd
	// raises it to its own minimum, about 1.5 election timeouts).
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// RequestTimeout bounds each request to etcd (a put, a list, a lease
	// grant) within the caller's context.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Username and Password log in to an etcd with auth on; the caller
	// reads the password from a file or the environment, never a flag.
	Username string `yaml:"username"`
	Password string `yaml:"-"`
	// TLS, when set, secures the connection (client certificates, CA).
	TLS *tls.Config `yaml:"-"`
}

// Default returns the configuration used for fields left zero, with
// Endpoints pointing at a local etcd.
func Default() Config {
	return Config{
		Endpoints:      []string{"127.0.0.1:2379"},
		Prefix:         DefaultPrefix,
		DialTimeout:    5 * time.Second,
		LeaseTTL:       10 * time.Second,
		RequestTimeout: 5 * time.Second,
	}
}

// withDefaults fills zero fields from Default, except Endpoints.
func (c Config) withDefaults() Config {
	d := Default()
	if c.Prefix == "" {
		c.Prefix = d.Prefix
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = d.DialTimeout
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	return c
}

// Validate checks c as New would use it (zero fields take their defaults)
// and names the field of every problem it finds.
func (c Config) Validate() error { return c.withDefaults().validate(true) }

func (c Config) validate(needEndpoints bool) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if needEndpoints && len(c.Endpoints) == 0 {
		bad("endpoints", "must not be empty")
	}
	for i, ep := range c.Endpoints {
		if ep == "" || strings.ContainsAny(ep, " \t\n,") {
			bad(fmt.Sprintf("endpoints[%d]", i), "%q is not host:port or a URL", ep)
		}
	}
	switch p := c.Prefix; {
	case strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/"):
		bad("prefix", "%q must not start or end with '/'", p)
	case strings.Contains(p, "//"):
		bad("prefix", "%q has an empty segment", p)
	case strings.ContainsAny(p, " \t\n"):
		bad("prefix", "%q must not contain spaces", p)
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout", "must be > 0")
	}
	if c.LeaseTTL < time.Second || c.LeaseTTL%time.Second != 0 {
		bad("lease_ttl", "%v must be a whole number of seconds, at least 1s", c.LeaseTTL)
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "must be > 0")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("etcd config: %w", err)
	}
	return nil
}

// Option configures New.
type Option func(*options)

type options struct {
	logger      *zap.Logger
	onMalformed registry.MalformedFunc
	client      *clientv3.Client
	store       registry.SessionStore
}

// WithLogger sets the logger; the adapter logs under "registry.etcd".
// The default discards everything.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMalformedFunc sets the function told about every entry skipped
// because it cannot be parsed, once per distinct key and value.
func WithMalformedFunc(f registry.MalformedFunc) Option {
	return func(o *options) { o.onMalformed = f }
}

// WithClient makes the Registry use c instead of dialling
// Config.Endpoints. The Registry does not close c; the caller closes it
// after the Registry.
func WithClient(c *clientv3.Client) Option {
	return func(o *options) { o.client = c }
}

// WithSessionStore makes the Registry keep its lease id in s, so that the
// next run of the process, given the same store, takes the lease back and
// with it the registrations this run leaves there (see registry.Resumer).
// Every new lease is saved; New, finding a lease in s that etcd still
// holds, keeps it alive instead of granting a new one and adopts the
// registrations attached to it (Adopted); Close empties s. New then waits
// for etcd up to RequestTimeout; when etcd cannot be reached, or the lease
// has expired, it starts as it would without a store.
func WithSessionStore(s registry.SessionStore) Option {
	return func(o *options) { o.store = s }
}
