package etcd

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// Layout kinds: how a service registration looks in etcd.
const (
	// KindEndpoints is etcd's naming/endpoints manager (grpc-go's
	// resolver): "<service>/<addr>", JSON {"Addr","Metadata"}.
	KindEndpoints = "endpoints"
	// KindGoZero is go-zero's discov: "<key>/<id>" (the id is its lease
	// by default), value "host:port".
	KindGoZero = "go-zero"
	// KindKratos is Kratos's etcd registry: "/microservices/<service>/<id>",
	// JSON with "endpoints": ["grpc://host:port", ...].
	KindKratos = "kratos"
	// KindKitex is kitex-contrib/registry-etcd:
	// "kitex/registry-etcd/<service>/<addr>", JSON with "address".
	KindKitex = "kitex"
)

// LayoutConfig is one entry of the layout list: keys under Prefix whose
// shape below it is Kind's are service registrations.
type LayoutConfig struct {
	Kind string `yaml:"kind"`
	// Prefix comes before the service name. Endpoints and go-zero keys
	// have none (""): they are told apart from other keys by their value
	// (see the package doc).
	Prefix string `yaml:"prefix"`
}

// Config configures a Server.
type Config struct {
	// Listen is where apps reach the front end, "127.0.0.1:2379".
	// Loopback only unless configured: the front end speaks for the
	// agent to the registry.
	Listen string `yaml:"listen"`
	// Name is the only member MemberList reports (clients re-read their
	// endpoints from it).
	Name string `yaml:"name"`
	// Layouts say which keys are service registrations, first match wins.
	Layouts []LayoutConfig `yaml:"layouts"`
	// StatePrefix is where the front end keeps its own keys in the
	// upstream etcd: the apps' registration keys (on the apps' leases)
	// and the revision tick of its views.
	StatePrefix string `yaml:"state_prefix"`
	// MaxRequestBytes caps a request, as etcd's --max-request-bytes.
	MaxRequestBytes int `yaml:"max_request_bytes"`
	// MaxWatchesPerStream and MaxStreams bound one client's watches on a
	// stream and the open Watch streams of the front end.
	MaxWatchesPerStream int `yaml:"max_watches_per_stream"`
	MaxStreams          int `yaml:"max_streams"`

	outQueue int // answers queued per Watch stream; 0: defaultOutQueue (tests set less)
}

// Default returns the defaults on etcd's usual 127.0.0.1:2379.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:2379",
		Name:   "detour-etcd-frontend",
		Layouts: []LayoutConfig{
			{Kind: KindKratos, Prefix: "/microservices/"},
			{Kind: KindKitex, Prefix: "kitex/registry-etcd/"},
			{Kind: KindEndpoints},
			{Kind: KindGoZero},
		},
		StatePrefix:         "detour/etcdfe",
		MaxRequestBytes:     1536 * 1024,
		MaxWatchesPerStream: 10000,
		MaxStreams:          10000,
	}
}

// Validate reports every invalid field, each naming its YAML path.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q: %v", c.Listen, err)
	}
	if c.Name == "" {
		bad("name", "must not be empty (clients need a member name)")
	}
	for i, l := range c.Layouts {
		switch l.Kind {
		case KindEndpoints, KindGoZero:
		case KindKratos, KindKitex:
			if l.Prefix == "" || !strings.HasSuffix(l.Prefix, "/") {
				bad(fmt.Sprintf("layouts[%d].prefix", i), "%q: %s needs a prefix ending in '/'", l.Prefix, l.Kind)
			}
		default:
			bad(fmt.Sprintf("layouts[%d].kind", i), "unknown layout %q (endpoints, go-zero, kratos, kitex)", l.Kind)
		}
	}
	if c.StatePrefix == "" || strings.HasSuffix(c.StatePrefix, "/") {
		bad("state_prefix", "%q: must be set, without a trailing '/'", c.StatePrefix)
	}
	if c.MaxRequestBytes < 4096 {
		bad("max_request_bytes", "must be at least 4096, got %d", c.MaxRequestBytes)
	}
	if c.MaxWatchesPerStream < 1 {
		bad("max_watches_per_stream", "must be > 0, got %d", c.MaxWatchesPerStream)
	}
	if c.MaxStreams < 1 {
		bad("max_streams", "must be > 0, got %d", c.MaxStreams)
	}
	return errors.Join(errs...)
}
