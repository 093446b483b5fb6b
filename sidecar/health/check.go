// Package health is the sidecar's active checking: the checkers (a
// Checker is Check(ctx, target) error, nil meaning healthy), the Monitor
// that runs them with interval, timeout and thresholds, and the health
// port's handler, GET /healthz/<service>.
//
// Stage 1 checks each published app on 127.0.0.1:PORT (TCP, HTTP or
// grpc.health.v1). Stage 2 checks each remote mesh endpoint through its
// sidecar's health port (Sidecar), which tells "app down" (503) from
// "sidecar down" (no answer).
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Checker checks one target; nil means healthy, the error says why not.
type Checker interface {
	Check(ctx context.Context, target string) error
}

// Errors of the stage-2 check.
var (
	// ErrAppDown: the remote sidecar answered that its app is unhealthy.
	ErrAppDown = errors.New("remote sidecar reports the app down")
	// ErrSidecarDown: the remote sidecar's health port did not answer.
	ErrSidecarDown = errors.New("remote sidecar does not answer")
)

// TCP is healthy when a TCP connect succeeds.
type TCP struct {
	Dialer *net.Dialer
}

// Check dials target and closes the connection.
func (c TCP) Check(ctx context.Context, target string) error {
	d := c.Dialer
	if d == nil {
		d = &net.Dialer{}
	}
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("tcp check: %w", err)
	}
	return conn.Close()
}

// HTTP is healthy when GET http://target{Path} answers 2xx.
type HTTP struct {
	Client *http.Client
	Path   string
}

// Check sends the GET.
func (c HTTP) Check(ctx context.Context, target string) error {
	code, err := get(ctx, c.Client, "http://"+target+c.Path)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	if code < 200 || code > 299 {
		return fmt.Errorf("http check: GET %s answered %d", c.Path, code)
	}
	return nil
}

// GRPC is healthy when grpc.health.v1 Check of Service answers SERVING.
type GRPC struct {
	Service string
}

// Check dials target, asks, and closes.
func (c GRPC) Check(ctx context.Context, target string) error {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc check: %w", err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: c.Service})
	if err != nil {
		return fmt.Errorf("grpc check: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc check: %s", s)
	}
	return nil
}

// Sidecar is the stage-2 check: GET http://target/healthz/Service on a
// remote sidecar's health port. 200 is healthy, 503 is ErrAppDown, any
// other answer or none is ErrSidecarDown.
type Sidecar struct {
	Client  *http.Client
	Service string
}

// Check asks the remote sidecar.
func (c Sidecar) Check(ctx context.Context, target string) error {
	code, err := get(ctx, c.Client, "http://"+target+"/healthz/"+c.Service)
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrSidecarDown, err)
	case code == http.StatusOK:
		return nil
	case code == http.StatusServiceUnavailable:
		return ErrAppDown
	case code == http.StatusNotFound:
		// The sidecar is up but does not front the service here.
		return fmt.Errorf("%w: not fronted there", ErrAppDown)
	}
	return fmt.Errorf("%w: /healthz/%s answered %d", ErrSidecarDown, c.Service, code)
}

func get(ctx context.Context, client *http.Client, url string) (int, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}
