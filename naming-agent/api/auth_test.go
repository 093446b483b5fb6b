package api

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/agentpb"
	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/naming-agent/config"
)

const (
	fullToken   = "full-token-0123456789"
	ordersToken = "orders-token-abcdef"
)

func withTokens(c *config.Config) {
	c.API.Token = fullToken
	c.API.ScopedTokens = []config.ScopedToken{{
		Token: ordersToken, Services: []string{"orders", "orders-*"}, Ports: []config.PortRange{{From: 8080, To: 8089}},
	}}
}

func doAuth(t *testing.T, ts *httptest.Server, method, path, body string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPToken: before the token, anyone who reached the API could
// publish any name. With a token set, every mutation without it is 401
// and changes nothing; reads stay open; a scoped token is 403 outside
// its services and ports.
func TestHTTPToken(t *testing.T) {
	e := newEnvWith(t, withTokens)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	full := map[string]string{TokenHeader: fullToken}
	bearer := map[string]string{"Authorization": "Bearer " + fullToken}
	orders := map[string]string{TokenHeader: ordersToken}
	wrong := map[string]string{TokenHeader: fullToken + "x"}
	tests := []struct {
		name, method, path, body string
		hdr                      map[string]string
		want                     int
	}{
		{"publish, no token", "POST", "/v1/publish", `{"service":"evil","port":8080}`, nil, 401},
		{"publish, wrong token", "POST", "/v1/publish", `{"service":"evil","port":8080}`, wrong, 401},
		{"publish, basic auth", "POST", "/v1/publish", `{"service":"evil","port":8080}`, map[string]string{"Authorization": "Basic " + fullToken}, 401},
		{"unpublish, no token", "POST", "/v1/unpublish", `{"service":"kept","port":8080}`, nil, 401},
		{"mesh, no token", "PUT", "/v1/services/kept/mesh", `{"enabled":false}`, nil, 401},
		{"unsubscribe, no token", "DELETE", "/v1/services/kept/subscription", "", nil, 401},
		{"scoped, other service", "POST", "/v1/publish", `{"service":"billing","port":8080}`, orders, 403},
		{"scoped, other port", "POST", "/v1/publish", `{"service":"orders","port":9000}`, orders, 403},
		{"scoped, unpublish other", "POST", "/v1/unpublish", `{"service":"kept","port":8080}`, orders, 403},
		{"scoped, mesh other", "PUT", "/v1/services/kept/mesh", `{"enabled":false}`, orders, 403},
	}
	if code := doAuth(t, ts, "POST", "/v1/publish", `{"service":"kept","port":8080}`, full); code != 200 {
		t.Fatalf("publish with the token: %d", code)
	}
	before := fingerprint(e.a)
	for _, tt := range tests {
		if got := doAuth(t, ts, tt.method, tt.path, tt.body, tt.hdr); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	if after := fingerprint(e.a); after != before {
		t.Errorf("refused requests changed the agent:\nbefore %s\nafter  %s", before, after)
	}
	// Reads need no token (a resolve subscribes, as every app's does).
	for _, path := range []string{"/v1/resolve?service=kept", "/v1/status", "/metrics"} {
		if got := doAuth(t, ts, "GET", path, "", nil); got != 200 {
			t.Errorf("GET %s without a token: %d", path, got)
		}
	}
	for _, ok := range []struct {
		method, path, body string
		hdr                map[string]string
	}{
		{"POST", "/v1/publish", `{"service":"other","port":8081}`, bearer},
		{"POST", "/v1/publish", `{"service":"orders-eu","port":8082}`, orders},
		{"PUT", "/v1/services/orders-eu/mesh", `{"enabled":false}`, orders},
		{"POST", "/v1/unpublish", `{"service":"orders-eu","port":8082}`, orders},
	} {
		if got := doAuth(t, ts, ok.method, ok.path, ok.body, ok.hdr); got != 200 {
			t.Errorf("%s %s %s: %d, want 200", ok.method, ok.path, ok.body, got)
		}
	}
}

// TestGRPCToken: the same over gRPC, the token in metadata.
func TestGRPCToken(t *testing.T) {
	e := newEnvWith(t, withTokens)
	c := agentpb.NewAgentClient(serveGRPCWith(t, e, WithAuth(e.cfg.API)))
	bg := context.Background()
	with := func(kv ...string) context.Context { return metadata.AppendToOutgoingContext(bg, kv...) }
	pub := func(ctx context.Context, svc string, port uint32) codes.Code {
		_, err := c.Publish(ctx, &agentpb.PublishRequest{Service: svc, Port: port})
		return status.Code(err)
	}
	if got := pub(bg, "evil", 8080); got != codes.Unauthenticated {
		t.Errorf("no token: %v", got)
	}
	if got := pub(with("x-detour-token", "nope"), "evil", 8080); got != codes.Unauthenticated {
		t.Errorf("wrong token: %v", got)
	}
	if got := pub(with("x-detour-token", ordersToken), "billing", 8080); got != codes.PermissionDenied {
		t.Errorf("scoped, other service: %v", got)
	}
	if _, err := c.SetMesh(bg, &agentpb.SetMeshRequest{Service: "x", Enabled: false}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("SetMesh without token: %v", err)
	}
	if _, err := c.Unsubscribe(bg, &agentpb.UnsubscribeRequest{Service: "x"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Unsubscribe without token: %v", err)
	}
	if _, err := c.Unpublish(bg, &agentpb.UnpublishRequest{Service: "x", Port: 1}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Unpublish without token: %v", err)
	}
	if n := len(e.a.Status().Publications); n != 0 {
		t.Fatalf("%d publications after refused calls", n)
	}
	if got := pub(with("authorization", "Bearer "+fullToken), "ok", 8080); got != codes.OK {
		t.Errorf("full token: %v", got)
	}
	if got := pub(with("x-detour-token", ordersToken), "orders", 8081); got != codes.OK {
		t.Errorf("scoped token in scope: %v", got)
	}
	if _, err := c.Status(bg, &agentpb.StatusRequest{}); err != nil {
		t.Errorf("Status without token: %v", err)
	}
	// A reserved port is 403 / PermissionDenied even with the full token.
	if got := pub(with("x-detour-token", fullToken), "admin", 7702); got != codes.PermissionDenied {
		t.Errorf("publish 7702: %v", got)
	}
}

func serveGRPCWith(t *testing.T, e *env, opts ...SidecarOption) *grpc.ClientConn {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	RegisterGRPC(s, e.a, append([]SidecarOption{WithSidecarLogger(zaptest.NewLogger(t)), WithHelloTimeout(time.Second)}, opts...)...)
	go s.Serve(l)
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); s.Stop() })
	return conn
}

// TestSidecarImpersonation: before the secret, a second local process
// could open the control stream: it learned the connected sidecar's
// instance from its refusal and then replaced it with that instance. Now
// a stream without the agent's secret is refused before its Hello, and
// the refusal names no instance.
func TestSidecarImpersonation(t *testing.T) {
	e := newEnvWith(t, nil)
	const secret = "per-boot-secret"
	conn := serveGRPCWith(t, e, WithSidecarSecret(secret))
	c := sidecarpb.NewSidecarControlClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(ctx context.Context, instance string) (sidecarpb.SidecarControl_ControlClient, error) {
		s, err := c.Control(ctx)
		if err != nil {
			return nil, err
		}
		hello := &sidecarpb.Hello{AdminAddr: "127.0.0.1:7702", Instance: instance}
		// A Send on a stream the agent ended is io.EOF; Recv has the status.
		_ = s.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Hello{Hello: hello}})
		m, err := s.Recv()
		if err != nil {
			return nil, err
		}
		return s, s.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Ack{Ack: &sidecarpb.Ack{Version: m.GetSnapshot().GetVersion()}}})
	}
	e.ready.Store(true)
	real, err := open(metadata.AppendToOutgoingContext(ctx, SidecarSecretKey, secret), "real-instance")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "sidecar up", func() bool { return e.a.Status().Sidecar.State == "up" })

	for _, tt := range []struct {
		name string
		ctx  context.Context
	}{
		{"no secret", ctx},
		{"wrong secret", metadata.AppendToOutgoingContext(ctx, SidecarSecretKey, "guess")},
	} {
		_, err := open(tt.ctx, "real-instance")
		if status.Code(err) != codes.Unauthenticated || strings.Contains(err.Error(), "real-instance") {
			t.Errorf("%s, the real instance: %v, want Unauthenticated", tt.name, err)
		}
	}
	// A second sidecar with the secret but another instance is refused
	// while the first is ready, and learns nothing to impersonate it.
	_, err = open(metadata.AppendToOutgoingContext(ctx, SidecarSecretKey, secret), "other")
	if status.Code(err) != codes.FailedPrecondition || strings.Contains(err.Error(), "real-instance") {
		t.Errorf("second sidecar: %v", err)
	}
	if st := e.a.Status().Sidecar; st.State != "up" || !st.Connected {
		t.Fatalf("the real sidecar lost its stream: %+v", st)
	}
	// The real one's stream still works.
	if err := real.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Status{Status: &sidecarpb.Status{}}}); err != nil {
		t.Fatal(err)
	}
}

// FuzzToken: the token headers are outside input. Whatever arrives, only
// the full token itself (or the scoped one, in its scope) is allowed.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"Bearer " + fullToken, "bearer " + fullToken, "Basic x", "Bearer", "", fullToken, " Bearer  " + fullToken + " "} {
		f.Add(s)
	}
	a := newAuth(config.API{Token: fullToken, ScopedTokens: []config.ScopedToken{{Token: ordersToken, Services: []string{"orders"}}}})
	f.Fuzz(func(t *testing.T, h string) {
		tok := bearer(h)
		err := a.allow(tok, "billing", 8080)
		if (err == nil) != (tok == fullToken) {
			t.Fatalf("header %q: token %q allowed=%v", h, tok, err == nil)
		}
		if err := a.allow(h, "billing", 8080); (err == nil) != (h == fullToken) {
			t.Fatalf("X-Detour-Token %q allowed=%v", h, err == nil)
		}
	})
}

// TestBrowserRefused: before, a web page the host's user opened could
// publish through the loopback API (a text/plain POST needs no CORS
// preflight). A request with Origin, or a cross-site Sec-Fetch-Site, is
// now 403 and changes nothing; a typed URL (Sec-Fetch-Site: none) reads.
func TestBrowserRefused(t *testing.T) {
	e := newEnvWith(t, nil)
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	body := `{"service":"evil","port":8080}`
	for _, hdr := range []map[string]string{
		{"Origin": "http://evil.example", "Content-Type": "text/plain"},
		{"Origin": "null"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-origin"}, // after DNS rebinding
	} {
		if got := doAuth(t, ts, "POST", "/v1/publish", body, hdr); got != 403 {
			t.Errorf("publish with %v: %d, want 403", hdr, got)
		}
		if got := doAuth(t, ts, "GET", "/v1/status", "", hdr); got != 403 {
			t.Errorf("status with %v: %d, want 403", hdr, got)
		}
	}
	if n := len(e.a.Status().Publications); n != 0 {
		t.Fatalf("%d publications from web pages", n)
	}
	if got := doAuth(t, ts, "GET", "/v1/status", "", map[string]string{"Sec-Fetch-Site": "none"}); got != 200 {
		t.Errorf("typed URL: %d", got)
	}
}

// TestTokenForReads: with api.token_for_reads, a resolve (which
// subscribes and takes an egress port), status and metrics need a valid
// token too, over HTTP and gRPC; a scoped token reads.
func TestTokenForReads(t *testing.T) {
	e := newEnvWith(t, func(c *config.Config) { withTokens(c); c.API.TokenForReads = true })
	ts := httptest.NewServer(HTTPHandler(e.a, e.cfg.API, zap.NewNop()))
	defer ts.Close()
	for _, path := range []string{"/v1/resolve?service=junk", "/v1/status", "/metrics"} {
		if got := doAuth(t, ts, "GET", path, "", nil); got != 401 {
			t.Errorf("GET %s without a token: %d, want 401", path, got)
		}
		if got := doAuth(t, ts, "GET", path, "", map[string]string{TokenHeader: ordersToken}); got != 200 {
			t.Errorf("GET %s with a scoped token: %d, want 200", path, got)
		}
	}
	c := agentpb.NewAgentClient(serveGRPCWith(t, e, WithAuth(e.cfg.API)))
	bg := context.Background()
	if _, err := c.Resolve(bg, &agentpb.ResolveRequest{Service: "junk2"}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC Resolve without a token: %v", err)
	}
	if _, err := c.Status(bg, &agentpb.StatusRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC Status without a token: %v", err)
	}
	sub, err := c.Subscribe(bg, &agentpb.SubscribeRequest{Service: "junk3"})
	if err == nil {
		_, err = sub.Recv()
	}
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC Subscribe without a token: %v", err)
	}
	for _, s := range e.a.Status().Subscriptions {
		if s.Service != "junk" {
			t.Errorf("subscribed %s without a token", s.Service)
		}
	}
	if _, err := c.Status(metadata.AppendToOutgoingContext(bg, "x-detour-token", fullToken), &agentpb.StatusRequest{}); err != nil {
		t.Errorf("gRPC Status with the token: %v", err)
	}
}
