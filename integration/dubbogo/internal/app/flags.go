// Package app holds what the two dubbo-go test apps share: turning their
// flags into dubbo-go options, and the consumer's call loop and report line.
// Nothing here changes how dubbo-go talks to its registry or its peers; the
// apps are configured the way any dubbo-go v3.3 application is, through
// dubbo.NewInstance options.
package app

import (
	"fmt"
	"net"
	"strings"
	"time"

	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/registry"
)

// Interface is the Dubbo interface the provider serves and the consumer
// references, unless --interface says otherwise.
const Interface = "org.detour.Greeter"

// Method is the one method of Interface: SayHello(name string) (string, error),
// answering with the provider's --name.
const Method = "SayHello"

// RegistryOptions returns the dubbo-go registry options for a --registry
// address (zookeeper://HOST:PORT[,HOST:PORT]), a --registry-type
// (interface: Dubbo 2 interface-level, /dubbo/S/providers; service: Dubbo 3
// application-level, /services/APP; all: both) and a --session-timeout
// (0: dubbo-go's default, 5s).
func RegistryOptions(addr, typ string, session time.Duration) ([]registry.Option, error) {
	scheme, hosts, ok := strings.Cut(addr, "://")
	if !ok || scheme != "zookeeper" {
		return nil, fmt.Errorf("--registry %q: want zookeeper://HOST:PORT[,HOST:PORT]", addr)
	}
	for _, h := range strings.Split(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("--registry %q: %w", addr, err)
		}
	}
	// The address goes to dubbo-go without its scheme: v3.3.1's ZooKeeper
	// metadata report panics on "zookeeper://h:p" ("too many colons").
	opts := []registry.Option{registry.WithZookeeper(), registry.WithAddress(hosts)}
	if session > 0 {
		// v3.3.1's ZooKeeper registry takes its session timeout from this
		// parameter; the registry's own "timeout" does not reach it.
		opts = append(opts, registry.WithParams(map[string]string{constant.ConfigTimeoutKey: session.String()}))
	}
	switch typ {
	case constant.RegistryTypeInterface:
		opts = append(opts, registry.WithRegisterInterface())
	case constant.RegistryTypeService:
		opts = append(opts, registry.WithRegisterService())
	case constant.RegistryTypeAll:
		opts = append(opts, registry.WithRegisterServiceAndInterface())
	default:
		return nil, fmt.Errorf("--registry-type %q: want interface, service or all", typ)
	}
	return opts, nil
}

// CheckProtocol validates --protocol.
func CheckProtocol(p string) error {
	switch p {
	case constant.DubboProtocol, constant.TriProtocol:
		return nil
	}
	return fmt.Errorf("--protocol %q: want dubbo or tri", p)
}
