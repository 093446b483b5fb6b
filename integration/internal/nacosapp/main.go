// Command nacosapp is an application of nacos-sdk-go v2's naming client
// (clients.NewNamingClient), used as an app would use it, for the
// integration tests of the Nacos front end.
//
// It runs in a process of its own, built without -race, because the
// SDK's gRPC client races with itself on every reconnect (see
// registry-adapters/nacos/doc.go): in the test's process, built with
// -race, the race detector would fail the test for the SDK's race.
//
// It writes one JSON line (an event) on stdout for each thing that
// happens: "registered" (RegisterInstance's answer), "subscribed"
// (Subscribe's error), "callback" (every Subscribe callback), "selected"
// (the answer to a "select SERVICE CLUSTERS" line on stdin, CLUSTERS
// comma separated or "-") and "closed" (SIGTERM or SIGINT: CloseClient,
// then it exits).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/clients"
	"github.com/nacos-group/nacos-sdk-go/v2/common/constant"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"github.com/nacos-group/nacos-sdk-go/v2/vo"
)

// Event is one line on stdout.
type Event struct {
	Event     string     `json:"event"`
	At        time.Time  `json:"at"`
	OK        bool       `json:"ok,omitempty"`
	Error     string     `json:"error,omitempty"`
	Instances []Instance `json:"instances,omitempty"`
}

// Instance is the part of the SDK's model.Instance the tests look at.
type Instance struct {
	IP          string            `json:"ip"`
	Port        uint64            `json:"port"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	ClusterName string            `json:"clusterName"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "nacosapp:", err)
		os.Exit(1)
	}
}

func run() error {
	server := flag.String("server", "", "the Nacos server's ip:port (HTTP; gRPC on port + 1000)")
	dir := flag.String("dir", "", "the SDK's cache and log directory (default: a temporary one)")
	logLevel := flag.String("log-level", "error", "the SDK's log level")
	service := flag.String("register", "", "register an instance of this service")
	group := flag.String("group", "", "the group to register in and subscribe to (default: the SDK's)")
	ip := flag.String("ip", "", "the registered instance's IP")
	port := flag.Uint64("port", 0, "the registered instance's port")
	weight := flag.Float64("weight", 1, "the registered instance's weight")
	metadata := flag.String("metadata", "", "the registered instance's metadata, k=v,k=v")
	cluster := flag.String("cluster", "", "the registered instance's cluster")
	ephemeral := flag.Bool("ephemeral", true, "register an ephemeral instance")
	subscribe := flag.String("subscribe", "", "subscribe to this service")
	flag.Parse()

	host, portStr, err := net.SplitHostPort(*server)
	if err != nil {
		return fmt.Errorf("--server %q: %w", *server, err)
	}
	serverPort, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return fmt.Errorf("--server %q: %w", *server, err)
	}
	md, err := parseMetadata(*metadata)
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "nacosapp-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	// Before the client: a signal during its start still closes it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	c, err := clients.NewNamingClient(vo.NacosClientParam{
		ClientConfig: &constant.ClientConfig{
			TimeoutMs: 3000, CacheDir: *dir, LogDir: *dir, LogLevel: *logLevel,
			NotLoadCacheAtStart: true, UpdateCacheWhenEmpty: true,
		},
		ServerConfigs: []constant.ServerConfig{{IpAddr: host, Port: serverPort}},
	})
	if err != nil {
		return fmt.Errorf("NewNamingClient: %w", err)
	}
	out := &writer{enc: json.NewEncoder(os.Stdout)}

	if *service != "" {
		ok, err := c.RegisterInstance(vo.RegisterInstanceParam{
			ServiceName: *service, GroupName: *group, Ip: *ip, Port: *port, Weight: *weight,
			Enable: true, Healthy: true, Ephemeral: *ephemeral, ClusterName: *cluster, Metadata: md,
		})
		out.write(Event{Event: "registered", OK: ok, Error: errString(err)})
	}
	if *subscribe != "" {
		err := c.Subscribe(&vo.SubscribeParam{ServiceName: *subscribe, GroupName: *group,
			SubscribeCallback: func(insts []model.Instance, err error) {
				out.write(Event{Event: "callback", Instances: instances(insts), Error: errString(err)})
			}})
		out.write(Event{Event: "subscribed", OK: err == nil, Error: errString(err)})
	}
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "select" {
				out.write(Event{Event: "selected", Error: fmt.Sprintf("want \"select SERVICE CLUSTERS\", got %q", sc.Text())})
				continue
			}
			var clusters []string
			if f[2] != "-" {
				clusters = strings.Split(f[2], ",")
			}
			insts, err := c.SelectInstances(vo.SelectInstancesParam{ServiceName: f[1], GroupName: *group, Clusters: clusters, HealthyOnly: true})
			out.write(Event{Event: "selected", OK: err == nil, Instances: instances(insts), Error: errString(err)})
		}
	}()
	<-sigs
	c.CloseClient()
	out.write(Event{Event: "closed", OK: true})
	return nil
}

// writer keeps the lines whole: callbacks come on the SDK's goroutines.
type writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (w *writer) write(e Event) {
	e.At = time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.enc.Encode(e); err != nil {
		fmt.Fprintln(os.Stderr, "nacosapp: stdout:", err)
		os.Exit(1)
	}
}

func instances(insts []model.Instance) []Instance {
	out := make([]Instance, 0, len(insts))
	for _, i := range insts {
		out = append(out, Instance{IP: i.Ip, Port: i.Port, Weight: i.Weight, Healthy: i.Healthy,
			Enabled: i.Enable, ClusterName: i.ClusterName, Metadata: i.Metadata})
	}
	return out
}

func parseMetadata(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	md := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--metadata: %q is not k=v", kv)
		}
		md[k] = v
	}
	return md, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
