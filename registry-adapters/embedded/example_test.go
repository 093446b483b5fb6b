package embedded_test

import (
	"context"
	"fmt"
	"os"

	"github.com/detourmesh/detour/registry-adapters/embedded"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// An agent with the registry inside: start it, publish, read back.
func Example() {
	dir, err := os.MkdirTemp("", "detour-etcd")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	r, err := embedded.New(embedded.Config{
		DataDir:      dir,
		ListenClient: "127.0.0.1:0", // a free port; other agents use r.ClientURL()
		ListenPeer:   "127.0.0.1:0",
	})
	if err != nil {
		panic(err)
	}
	defer r.Close()

	ctx := context.Background()
	err = r.Register(ctx, registry.Endpoint{
		Service:  "greeter",
		Addr:     "127.0.0.2:15001",
		Metadata: map[string]string{"detour.port": "8080"},
	})
	if err != nil {
		panic(err)
	}
	eps, err := r.List(ctx, "greeter")
	if err != nil {
		panic(err)
	}
	for _, ep := range eps {
		fmt.Println(ep.Addr, ep.Weight, ep.Metadata)
	}
	// Output:
	// 127.0.0.2:15001 100 map[detour.port:8080]
}
