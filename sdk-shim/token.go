package shim

import (
	"context"
	"strings"

	"google.golang.org/grpc/credentials"
)

// TokenEnv is the environment variable an app conventionally takes the
// agent's API token from (the agent reads the same name): pass it with
// WithToken(os.Getenv(shim.TokenEnv)).
const TokenEnv = "DETOUR_API_TOKEN"

// WithToken sends the agent's API token with every call (gRPC metadata
// x-detour-token): an agent with a token refuses publish and unpublish
// without it. Empty: none sent.
func WithToken(token string) Option {
	return func(o *options) { o.token = strings.TrimSpace(token) }
}

// tokenCreds puts the token in each call's metadata. The agent is local
// and plain-text gRPC, so it does not ask for transport security.
type tokenCreds string

var _ credentials.PerRPCCredentials = tokenCreds("")

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"x-detour-token": string(t)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }
