package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryInterceptor returns the interceptor DialOptions installs. A unary
// call that was started while the mesh carried its service and fails with
// UNAVAILABLE makes it dial the service's egress once: if that is refused
// the sidecar died under the call, the service switches to its fallback,
// and the call is made once more (to the fallback) if the app's own
// policy (WithServiceConfig) would retry it: a retryPolicy for the method
// with UNAVAILABLE among its codes. That policy is the one in force once
// the mesh no longer carries the service; the interceptor applies it to
// the calls the sidecar's death caught. Streams are not replayed.
func (c *Client) UnaryInterceptor(opts ...ResolverOption) grpc.UnaryClientInterceptor {
	var o resolverOptions
	for _, opt := range opts {
		opt(&o)
	}
	rules, err := parseRetryRules(o.serviceConfig)
	if err != nil {
		rules = retryRules{} // the resolver reports the bad config
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		w := c.watchOf(cc.Target())
		if w == nil {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		a, _, _ := w.view()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if !a.Mesh || len(a.Endpoints) == 0 || status.Code(err) != codes.Unavailable || ctx.Err() != nil || !rules.allows(method) {
			return err
		}
		// Gone already (another dial was refused while this call ran), or
		// found gone by a probe: resend it once, to the fallback.
		if now, _, _ := w.view(); now.Mesh && !w.probe(ctx, a) {
			return err
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// watchOf returns the watch of a "detour:///SERVICE" target, if any.
func (c *Client) watchOf(target string) *watch {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != Scheme {
		return nil
	}
	service := u.Opaque // "detour:SERVICE"
	if service == "" {
		service = strings.TrimPrefix(u.Path, "/")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.watches[service]
}

// retryRules says which methods a service config retries on UNAVAILABLE,
// with gRPC's lookup: service and method, else service, else the default.
type retryRules struct {
	methods map[string]bool // "service/method", "service/", "/" -> retries
}

func parseRetryRules(sc string) (retryRules, error) {
	r := retryRules{methods: map[string]bool{}}
	if sc == "" {
		return r, nil
	}
	var cfg struct {
		MethodConfig []struct {
			Name []struct {
				Service string `json:"service"`
				Method  string `json:"method"`
			} `json:"name"`
			RetryPolicy *struct {
				MaxAttempts          int   `json:"maxAttempts"`
				RetryableStatusCodes []any `json:"retryableStatusCodes"`
			} `json:"retryPolicy"`
		} `json:"methodConfig"`
	}
	if err := json.Unmarshal([]byte(sc), &cfg); err != nil {
		return r, fmt.Errorf("shim: service config: %w", err)
	}
	for _, mc := range cfg.MethodConfig {
		retries := false
		if p := mc.RetryPolicy; p != nil && p.MaxAttempts >= 2 {
			for _, code := range p.RetryableStatusCodes {
				switch v := code.(type) {
				case string:
					retries = retries || strings.EqualFold(v, "UNAVAILABLE")
				case float64:
					retries = retries || v == float64(codes.Unavailable)
				}
			}
		}
		for _, n := range mc.Name {
			r.methods[n.Service+"/"+n.Method] = retries
		}
	}
	return r, nil
}

// allows reports whether the config retries fullMethod ("/svc/method")
// on UNAVAILABLE.
func (r retryRules) allows(fullMethod string) bool {
	svc, method, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	for _, key := range []string{svc + "/" + method, svc + "/", "/"} {
		if v, ok := r.methods[key]; ok {
			return v
		}
	}
	return false
}
