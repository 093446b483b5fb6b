// Command dubbo-consumer is an unmodified dubbo-go v3.3 consumer for the
// integration suite: it references org.detour.Greeter through the
// ZooKeeper at --registry (interface-level, application-level or both),
// over the dubbo protocol (hessian2), with retries 0 (the mesh retries),
// and calls SayHello --rate times a second for --duration or until SIGTERM.
//
// It reports on stdout once a second, at once on SIGUSR1, and on exit, in
// the line format of the detour example clients, which the integration
// suite's parser (internal/testbed) reads:
//
//	dubbo-client: ok=N failed=M mesh=false via=- from=PROVIDER inflight=K
//	dubbo-client: total ok=N failed=M
//
// from is the --name of the provider that answered last. It exits 0 when
// it made at least one call and none failed, 1 otherwise. A call in which
// dubbo-go v3.3.1 panics with its known race (an invoker destroyed under
// the call when the providers change; README, surprises) counts as failed
// and is logged; any other panic ends the app.
//
// It has no --host: dubbo-go 3.3.1 writes the machine's first non-loopback
// address into its consumer node whatever it is told (DUBBO_IP_TO_REGISTRY
// included), and dials from wherever the kernel chooses. On a simulated
// host, what makes it host A's is --registry: A's agent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/graceful_shutdown"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	dubbolog "dubbo.apache.org/dubbo-go/v3/logger"

	"github.com/detourmesh/detour/integration/dubbogo/internal/app"
)

// reportName is the name on the report lines; the suite's parser wants
// "<something>-client:".
const reportName = "dubbo-client"

type config struct {
	registryAddr, registryType, appName, iface, proto, serial, logLevel string
	sessionTimeout, timeout, duration, wait                             time.Duration
	rate, concurrency, retries                                          int
}

func main() {
	var c config
	flag.StringVar(&c.registryAddr, "registry", "", "registry address, zookeeper://HOST:PORT[,HOST:PORT] (required)")
	flag.StringVar(&c.registryType, "registry-type", "interface", "interface (Dubbo 2, /dubbo/S/providers), service (Dubbo 3 application-level, /services/APP) or all")
	flag.DurationVar(&c.sessionTimeout, "session-timeout", 0, "ZooKeeper session timeout of the registry session (the one holding the app's ephemeral entries); 0: dubbo-go's default, 5s")
	flag.StringVar(&c.appName, "app", "dubbo-consumer", "Dubbo application name")
	flag.StringVar(&c.iface, "interface", app.Interface, "Dubbo interface to call")
	flag.StringVar(&c.proto, "protocol", constant.DubboProtocol, "dubbo or tri")
	flag.StringVar(&c.serial, "serialization", constant.Hessian2Serialization, "serialization (the provider must use the same)")
	flag.IntVar(&c.rate, "rate", 100, "calls per second")
	flag.IntVar(&c.concurrency, "concurrency", 200, "calls in flight at most; a tick that finds them all busy counts as failed")
	flag.IntVar(&c.retries, "retries", 0, "dubbo-go's retries per call (0: the mesh retries)")
	flag.DurationVar(&c.timeout, "timeout", time.Second, "request timeout of each call")
	flag.DurationVar(&c.duration, "duration", 0, "how long to call; 0: until SIGTERM or SIGINT")
	flag.DurationVar(&c.wait, "wait", 0, "before counting, call once every 100ms until a call succeeds, for at most this long (0: count from the first call)")
	flag.StringVar(&c.logLevel, "log-level", "warn", "dubbo-go's log level: debug, info, warn, error")
	flag.Parse()
	log.SetPrefix("dubbo-consumer: ")
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	n, err := run(c)
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
	if n.Failed() > 0 || n.OK() == 0 {
		os.Exit(1)
	}
}

func run(c config) (*app.Counts, error) {
	if err := app.CheckProtocol(c.proto); err != nil {
		return nil, err
	}
	if c.rate <= 0 || c.concurrency <= 0 {
		return nil, errors.New("--rate and --concurrency must be > 0")
	}
	regOpts, err := app.RegistryOptions(c.registryAddr, c.registryType, c.sessionTimeout)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if c.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.duration)
		defer cancel()
	}

	ins, err := dubbo.NewInstance(
		dubbo.WithName(c.appName),
		dubbo.WithLogger(dubbolog.WithLevel(c.logLevel)),
		dubbo.WithRegistry(regOpts...),
		// The report on exit is ours: dubbo-go's handler would exit first.
		dubbo.WithShutdown(graceful_shutdown.WithoutInternalSignal()),
	)
	if err != nil {
		return nil, fmt.Errorf("dubbo instance: %w", err)
	}
	protoOpt := client.WithClientProtocolDubbo()
	if c.proto == constant.TriProtocol {
		protoOpt = client.WithClientProtocolTriple()
	}
	cli, err := ins.NewClient(protoOpt,
		client.SetClientTLS(nil), // as the provider: v3.3.1's default TLS config is empty, not off
		client.WithClientSerialization(c.serial),
		client.WithClientRetries(c.retries),
		client.WithClientRequestTimeout(c.timeout),
	)
	if err != nil {
		return nil, fmt.Errorf("dubbo client: %w", err)
	}
	var conn *client.Connection
	if c.proto == constant.TriProtocol {
		// dubbo-go's non-IDL Triple, as the provider's: the client finds
		// the methods by reflection on a service value.
		conn, err = cli.DialWithService(c.iface, &greeterMethods{}, client.WithIDL(constant.NONIDL))
	} else {
		conn, err = cli.Dial(c.iface)
	}
	if err != nil {
		return nil, fmt.Errorf("reference %s: %w", c.iface, err)
	}
	call := func(ctx context.Context) (from string, err error) {
		// v3.3.1 may panic in a call whose invoker the registry's update
		// destroyed (a known race, fixed after 3.3.1): that call fails,
		// logged and counted; the app goes on, other panics do not.
		defer app.RecoverKnownPanic(&err)
		ctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		// The timeout per call too: v3.3.1 sends each call's own timeout
		// (empty without this option) in the invocation, where it wins
		// over the client's, and an empty one is no timeout at all (a
		// call whose connection died waits forever; ctx is not watched).
		err = conn.CallUnary(ctx, []any{"detour"}, &from, app.Method, client.WithCallRequestTimeout(c.timeout))
		return from, err
	}
	if c.wait > 0 {
		if err := waitFirst(ctx, c.wait, call); err != nil {
			return nil, err
		}
	}
	log.Printf("calling %s.%s at %d/s through %s (%s)", c.iface, app.Method, c.rate, c.registryAddr, c.registryType)
	n := &app.Counts{}
	app.Run(ctx, os.Stdout, reportName, c.rate, c.concurrency, n, func(ctx context.Context) {
		from, err := call(ctx)
		if err != nil {
			n.Fail(reportName, err)
			return
		}
		n.Succeed(from)
	})
	return n, nil
}

// greeterMethods names the methods of org.detour.Greeter for dubbo-go's
// non-IDL Triple client, which reflects on it; it is never called.
type greeterMethods struct{}

// SayHello is the one method of org.detour.Greeter.
func (*greeterMethods) SayHello(context.Context, string) (string, error) { return "", nil }

// waitFirst calls until a call succeeds, at most for wait.
func waitFirst(ctx context.Context, wait time.Duration, call func(context.Context) (string, error)) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		from, err := call(ctx)
		if err == nil {
			log.Printf("first call answered by %s after %v", from, time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no call succeeded within --wait %v: %w", wait, err)
		case <-tick.C:
		}
	}
}
