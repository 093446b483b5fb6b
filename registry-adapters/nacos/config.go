package nacos

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Nacos's defaults and rules.
const (
	// DefaultNamespace is Nacos's public namespace.
	DefaultNamespace = "public"
	// DefaultGroup is Nacos's default group.
	DefaultGroup = "DEFAULT_GROUP"
	// DefaultCluster is Nacos's default cluster.
	DefaultCluster = "DEFAULT"
	// GRPCPortOffset is how far above its HTTP port Nacos 2.x listens for
	// gRPC, the port the SDK dials.
	GRPCPortOffset = 1000
)

// Config configures a Registry. Durations are written as strings in YAML
// ("3s").
type Config struct {
	// Servers are the Nacos servers, "host:port" with the HTTP port (8848
	// by default); the client talks gRPC to port+1000. IPv6 hosts in
	// brackets.
	Servers []string `yaml:"servers"`
	// Namespace is the namespace ID; "" means public.
	Namespace string `yaml:"namespace"`
	// Group is the group services are registered and looked up in.
	Group string `yaml:"group"`
	// Cluster is the cluster this client's instances are registered in.
	// Lists and watches see the instances of every cluster.
	Cluster string `yaml:"cluster"`
	// RequestTimeout bounds each request to Nacos, the SDK's retries
	// included. A watcher reports registry.ErrUnavailable once the
	// connection has been down this long.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Username and Password log in to a Nacos with authentication on
	// (over HTTP, on the server's HTTP port). Empty: no login.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// SDKLogLevel is the lowest level of nacos-sdk-go's own messages that
	// reach the logger: debug, info, warn or error.
	SDKLogLevel string `yaml:"sdk_log_level"`
}

// Default returns the configuration used for fields left zero, with
// Servers pointing at a local Nacos.
func Default() Config {
	return Config{
		Servers:        []string{"127.0.0.1:8848"},
		Namespace:      DefaultNamespace,
		Group:          DefaultGroup,
		Cluster:        DefaultCluster,
		RequestTimeout: 3 * time.Second,
		SDKLogLevel:    "warn",
	}
}

// withDefaults fills zero fields from Default, except Servers.
func (c Config) withDefaults() Config {
	d := Default()
	if c.Namespace == "" {
		c.Namespace = d.Namespace
	}
	if c.Group == "" {
		c.Group = d.Group
	}
	if c.Cluster == "" {
		c.Cluster = d.Cluster
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.SDKLogLevel == "" {
		c.SDKLogLevel = d.SDKLogLevel
	}
	return c
}

var (
	// namePattern is what the namespace ID and the group may hold: Nacos
	// accepts these everywhere (its group check allows the same set).
	namePattern = regexp.MustCompile(`^[0-9A-Za-z_.:-]{1,128}$`)
	// clusterPattern is Nacos's cluster name pattern.
	clusterPattern = regexp.MustCompile(`^[0-9A-Za-z-]{1,64}$`)
)

// Validate checks c as New would use it (zero fields take their defaults)
// and names the field of every problem it finds.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Servers) == 0 {
		bad("servers", "must not be empty")
	}
	for i, s := range c.Servers {
		if _, _, err := splitServer(s); err != nil {
			bad(fmt.Sprintf("servers[%d]", i), "%v", err)
		}
	}
	if !namePattern.MatchString(c.Namespace) {
		bad("namespace", "%q must be 1 to 128 letters, digits, '_', '.', ':' or '-'", c.Namespace)
	}
	if !namePattern.MatchString(c.Group) {
		bad("group", "%q must be 1 to 128 letters, digits, '_', '.', ':' or '-'", c.Group)
	}
	if !clusterPattern.MatchString(c.Cluster) {
		bad("cluster", "%q must be 1 to 64 letters, digits or '-'", c.Cluster)
	}
	if c.RequestTimeout < 10*time.Millisecond {
		bad("request_timeout", "%v must be at least 10ms", c.RequestTimeout)
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	if _, err := sdkLevel(c.SDKLogLevel); err != nil {
		bad("sdk_log_level", "%v", err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("nacos config: %w", err)
	}
	return nil
}

// splitServer parses "host:port" of a server's HTTP port. The host is
// returned as the SDK wants it: IPv6 in brackets, since the SDK appends
// ":port" itself.
func splitServer(s string) (host string, port uint64, err error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %v", s, err)
	}
	if h == "" || strings.ContainsAny(h, " \t\n/") {
		return "", 0, fmt.Errorf("%q: bad host", s)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 || n+GRPCPortOffset > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 1 to %d (gRPC is on port+%d)", s, 65535-GRPCPortOffset, GRPCPortOffset)
	}
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	return h, n, nil
}
