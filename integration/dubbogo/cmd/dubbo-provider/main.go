// Command dubbo-provider is an unmodified dubbo-go v3.3 provider for the
// integration suite: it serves org.detour.Greeter.SayHello over the dubbo
// protocol (hessian2) or Triple on --host:--port and registers with the
// ZooKeeper at --registry, interface-level, application-level or both.
// SayHello answers with --name, so a consumer can tell who answered.
//
// It stays up until a signal: SIGTERM (or SIGINT) runs dubbo-go's own
// graceful shutdown (unregister, wait --shutdown-wait for consumers to
// notice, finish the calls in flight, exit 0); SIGKILL leaves its nodes to
// ZooKeeper's session expiry (--session-timeout).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"strconv"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	"dubbo.apache.org/dubbo-go/v3/common"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/graceful_shutdown"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	dubbolog "dubbo.apache.org/dubbo-go/v3/logger"
	"dubbo.apache.org/dubbo-go/v3/protocol"
	"dubbo.apache.org/dubbo-go/v3/server"

	"github.com/detourmesh/detour/integration/dubbogo/internal/app"
)

// Greeter is the provider's implementation of org.detour.Greeter.
type Greeter struct{ name string }

// SayHello answers with the provider's name, whoever asks. The context
// comes first, as dubbo-go's non-IDL Triple wants it (the dubbo protocol
// takes either form).
func (g *Greeter) SayHello(ctx context.Context, name string) (string, error) { return g.name, nil }

type config struct {
	host, registryAddr, registryType, appName, iface, name, proto, serial, logLevel, metadata string
	port, metadataPort                                                                        int
	sessionTimeout, shutdownWait                                                              time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.host, "host", "127.0.0.1", "address to listen on and to register")
	flag.IntVar(&c.port, "port", 20880, "port to listen on and to register")
	flag.StringVar(&c.registryAddr, "registry", "", "registry address, zookeeper://HOST:PORT[,HOST:PORT] (required)")
	flag.StringVar(&c.registryType, "registry-type", "interface", "interface (Dubbo 2, /dubbo/S/providers), service (Dubbo 3 application-level, /services/APP) or all")
	flag.DurationVar(&c.sessionTimeout, "session-timeout", 0, "ZooKeeper session timeout of the registry session (the one holding the app's ephemeral entries); 0: dubbo-go's default, 5s")
	flag.StringVar(&c.appName, "app", "dubbo-provider", "Dubbo application name")
	flag.StringVar(&c.iface, "interface", app.Interface, "Dubbo interface to serve")
	flag.StringVar(&c.name, "name", "", "what SayHello answers (default HOST:PORT)")
	flag.StringVar(&c.proto, "protocol", constant.DubboProtocol, "dubbo or tri")
	flag.StringVar(&c.serial, "serialization", constant.Hessian2Serialization, "serialization (the consumer must use the same)")
	flag.DurationVar(&c.shutdownWait, "shutdown-wait", 3*time.Second, "on SIGTERM, how long to keep serving after unregistering (dubbo-go's consumer-update-wait-time)")
	flag.StringVar(&c.metadata, "metadata", "remote", "where application-level metadata lives: remote (the registry's metadata report) or local (a MetadataService the provider serves on --metadata-port)")
	flag.IntVar(&c.metadataPort, "metadata-port", 0, "with --metadata local: the MetadataService's port, bound on every address (0: --port, which collides with --host's bind: see README)")
	flag.StringVar(&c.logLevel, "log-level", "warn", "dubbo-go's log level: debug, info, warn, error")
	flag.Parse()
	log.SetPrefix("dubbo-provider: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	if c.name == "" {
		c.name = net.JoinHostPort(c.host, strconv.Itoa(c.port))
	}
	if err := run(c); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run(c config) error {
	if err := app.CheckProtocol(c.proto); err != nil {
		return err
	}
	regOpts, err := app.RegistryOptions(c.registryAddr, c.registryType, c.sessionTimeout)
	if err != nil {
		return err
	}
	protoOpt := protocol.WithDubbo()
	if c.proto == constant.TriProtocol {
		protoOpt = protocol.WithTriple()
	}
	insOpts := []dubbo.InstanceOption{
		dubbo.WithName(c.appName),
		dubbo.WithLogger(dubbolog.WithLevel(c.logLevel)),
		dubbo.WithRegistry(regOpts...),
		dubbo.WithProtocol(protoOpt, protocol.WithIp(c.host), protocol.WithPort(c.port)),
		dubbo.WithShutdown(graceful_shutdown.WithConsumerUpdateWaitTime(c.shutdownWait)),
	}
	switch c.metadata {
	case "remote":
		insOpts = append(insOpts, dubbo.WithRemoteMetadata())
	case "local":
		if c.metadataPort > 0 {
			insOpts = append(insOpts, dubbo.WithMetadataServicePort(c.metadataPort))
		}
	default:
		return fmt.Errorf("--metadata %q: want remote or local", c.metadata)
	}
	ins, err := dubbo.NewInstance(insOpts...)
	if err != nil {
		return fmt.Errorf("dubbo instance: %w", err)
	}
	// No TLS: v3.3.1 hands its default, empty TLS config to the dubbo
	// protocol's server, which then turns TLS on without a certificate and
	// panics (nil listener) when the protocol is configured on the instance.
	srv, err := ins.NewServer(server.SetServerTLS(nil))
	if err != nil {
		return fmt.Errorf("dubbo server: %w", err)
	}
	svcOpts := []server.ServiceOption{server.WithInterface(c.iface), server.WithSerialization(c.serial)}
	if c.proto == constant.TriProtocol {
		// Triple routes by service info; without an IDL that is dubbo-go's
		// non-IDL mode, which reflects the handler's methods.
		err = srv.RegisterService(&Greeter{name: c.name}, svcOpts...)
	} else {
		err = srv.Register(&Greeter{name: c.name}, &common.ServiceInfo{}, svcOpts...)
	}
	if err != nil {
		return fmt.Errorf("register %s: %w", c.iface, err)
	}
	log.Printf("serving %s on %s://%s:%d as %q, registering with %s (%s)", c.iface, c.proto, c.host, c.port, c.name, c.registryAddr, c.registryType)
	// Serve exports, registers and blocks for good; dubbo-go's signal
	// handler ends the process.
	if err := srv.Serve(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
