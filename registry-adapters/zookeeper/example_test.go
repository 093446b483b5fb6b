package zookeeper_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper"
)

// A client of a ZooKeeper ensemble publishes an endpoint that Dubbo
// consumers of DemoService see, and follows the service's providers.
func ExampleNew() {
	cfg := zookeeper.Default()
	cfg.Servers = []string{"zk1:2181", "zk2:2181", "zk3:2181"}
	cfg.SessionTimeout = 15 * time.Second
	r, err := zookeeper.New(cfg,
		zookeeper.WithLogger(zap.NewExample()),
		zookeeper.WithMalformedFunc(func(service, node string, err error) {
			// count it in a metric; the adapter logs it once
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx := context.Background()
	err = r.Register(ctx, registry.Endpoint{
		Service:  "org.apache.dubbo.demo.DemoService",
		Addr:     "10.0.0.7:20880",
		Metadata: map[string]string{"version": "1.0.0", "detour.port": "20881"},
	})
	if err != nil {
		log.Fatal(err)
	}

	w, err := r.Watch(ctx, "org.apache.dubbo.demo.DemoService")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for {
		eps, err := w.Next(ctx)
		switch {
		case errors.Is(err, registry.ErrUnavailable):
			log.Print(err) // transient: the watcher reconnects by itself
			continue
		case err != nil:
			log.Fatal(err)
		}
		fmt.Println(eps)
	}
}
