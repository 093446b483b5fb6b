package nacos_test

import (
	"context"
	"log"
	"time"

	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/nacos"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// A client publishes its sidecar's ingress port for a service and follows
// the service's endpoints.
func ExampleNew() {
	cfg := nacos.Default()
	cfg.Servers = []string{"127.0.0.1:8848"}
	cfg.Group = "detour"
	r, err := nacos.New(cfg,
		nacos.WithLogger(zap.NewExample()),
		nacos.WithMalformedFunc(func(service, key string, err error) {
			log.Printf("skipping %s of %s: %v", key, service, err)
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.Register(ctx, registry.Endpoint{
		Service:  "greeter",
		Addr:     "10.0.0.7:15001",
		Metadata: map[string]string{"detour.port": "8080"},
	})
	if err != nil {
		log.Fatal(err)
	}
	w, err := r.Watch(ctx, "greeter")
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	for {
		eps, err := w.Next(ctx)
		if err != nil {
			log.Print(err)
			return
		}
		log.Printf("greeter: %v", eps)
	}
}
