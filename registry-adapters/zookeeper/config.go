package zookeeper

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
)

// Config configures a Registry. Durations are written as strings in YAML
// ("10s").
type Config struct {
	// Servers are the ZooKeeper servers, "host:port". A server without a
	// port gets 2181.
	Servers []string `yaml:"servers"`
	// Root is the ZooKeeper path the services live under: "/dubbo", or
	// "/GROUP" for a Dubbo registry group. Providers of service S are the
	// children of ROOT/S/providers.
	Root string `yaml:"root"`
	// SessionTimeout is the session timeout asked of the server (which
	// bounds it by its minSessionTimeout and maxSessionTimeout). When the
	// client is cut off for longer, the server drops its session and its
	// endpoints; the adapter then registers them again on a new session.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RequestTimeout bounds how long Register, Deregister, List and Watch
	// wait for a ZooKeeper session before failing with
	// registry.ErrUnavailable (the caller's context may end the wait
	// sooner). A request sent on a live session is bounded by the session:
	// the client drops a connection silent for 2/3 of SessionTimeout.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// Protocol is the protocol of the provider URLs this client writes, as
	// Dubbo consumers see it: "dubbo", or "tri" for Dubbo 3's Triple.
	Protocol string `yaml:"protocol"`
	// Username and Password authenticate both connections with digest
	// auth (addauth digest USER:PASSWORD); the nodes this client creates
	// are then open to that user only (CREATOR_ALL_ACL), as Dubbo's
	// CuratorZookeeperClient makes them. The caller reads the password
	// from a file or the environment, never a flag; it is never logged.
	Username string `yaml:"username"`
	Password string `yaml:"-"`
}

// Default returns the configuration of a client of a local ZooKeeper with
// Dubbo's default root.
func Default() Config {
	return Config{
		Servers:        []string{"127.0.0.1:2181"},
		Root:           "/dubbo",
		SessionTimeout: 10 * time.Second,
		RequestTimeout: 10 * time.Second,
		Protocol:       "dubbo",
	}
}

// Validate reports every invalid field, each error naming the field's YAML
// path ("session_timeout: must be at least 100ms").
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Servers) == 0 {
		bad("servers", "must not be empty")
	}
	for i, s := range c.Servers {
		if err := validateServer(s); err != nil {
			bad(fmt.Sprintf("servers[%d]", i), "%q: %v", s, err)
		}
	}
	if err := validateRoot(c.Root); err != nil {
		bad("root", "%q: %v", c.Root, err)
	}
	if c.SessionTimeout < 100*time.Millisecond {
		bad("session_timeout", "must be at least 100ms, got %s", c.SessionTimeout)
	}
	if c.RequestTimeout <= 0 {
		bad("request_timeout", "must be > 0, got %s", c.RequestTimeout)
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	if strings.Contains(c.Username, ":") {
		bad("username", "%q: must not contain ':' (digest auth is USER:PASSWORD)", c.Username)
	}
	if !dubbourl.ValidProtocol(c.Protocol) {
		bad("protocol", "%q: must be a URL scheme such as \"dubbo\" or \"tri\"", c.Protocol)
	}
	return errors.Join(errs...)
}

func validateServer(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	host, port := s, ""
	if strings.Contains(s, ":") {
		var err error
		if host, port, err = net.SplitHostPort(s); err != nil {
			return err
		}
		if _, err := registry.ParsePort(port); err != nil {
			return err
		}
	}
	if host == "" {
		return errors.New("missing host")
	}
	return nil
}

// validateRoot accepts an absolute ZooKeeper path other than "/", without
// a trailing slash, empty, "." or ".." segments, or control characters.
func validateRoot(root string) error {
	if !strings.HasPrefix(root, "/") || root == "/" {
		return errors.New(`must be an absolute path below "/", like "/dubbo"`)
	}
	for seg := range strings.SplitSeq(root[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New(`empty, "." or ".." path segment`)
		}
		for _, r := range seg {
			if r < 0x20 || r >= 0x7f && r <= 0x9f {
				return errors.New("control character in path")
			}
		}
	}
	return nil
}
