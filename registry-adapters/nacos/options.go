package nacos

import (
	"go.uber.org/zap"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Option configures New.
type Option func(*options)

type options struct {
	logger      *zap.Logger
	onMalformed registry.MalformedFunc
	// grpcAddr, for tests, makes the client dial this "host:port" for
	// gRPC instead of each server's port+1000 (a proxy that can cut the
	// connection).
	grpcAddr string
}

// WithLogger sets the logger; the adapter logs under "registry.nacos" and
// nacos-sdk-go's own messages go to "registry.nacos.sdk" (see the package
// documentation for why those are process-wide). The default discards
// everything.
func WithLogger(l *zap.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithMalformedFunc sets the function told about every instance skipped
// because it cannot be mapped to an Endpoint, once per distinct instance.
func WithMalformedFunc(f registry.MalformedFunc) Option {
	return func(o *options) { o.onMalformed = f }
}

// withGRPCAddr is for tests: see options.grpcAddr.
func withGRPCAddr(addr string) Option {
	return func(o *options) { o.grpcAddr = addr }
}
