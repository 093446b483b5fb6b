// Package control is the sidecar's side of the agent's control stream
// (detour.sidecar.v1): Hello, then each Snapshot applied in full and
// answered with Ack, or rejected with Nack and a reason, plus a complete
// Status whenever the data plane's state changes.
//
// The client redials with backoff when the stream breaks and keeps the
// data plane serving its last applied snapshot meanwhile. A rejected
// snapshot is retried every NackRetry while no newer one arrives (a port
// that was taken may come free); the agent keeps it acknowledgeable.
package control

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// Dataplane is what the client drives.
type Dataplane interface {
	// Apply applies a snapshot in full, or not at all and says why.
	Apply(ctx context.Context, snap *sidecarpb.Snapshot) error
	AppliedVersion() uint64
	// Status is the complete status; Changed is signalled when it changes.
	Status() *sidecarpb.Status
	Changed() <-chan struct{}
}

// Config is the client's settings.
type Config struct {
	Agent     string // the agent's gRPC address
	AdminAddr string // sent in Hello
	Build     string // sent in Hello
	HostIP    string // sent in Hello: the agent refuses a sidecar of another host
	Instance  string // sent in Hello; New makes a random one when empty
	// SecretFile is the agent's per-boot secret (DATA_DIR/sidecar.secret),
	// read again at each dial and sent in the stream's metadata: the agent
	// refuses a stream without it. Missing file: none sent.
	SecretFile string
	MinBackoff time.Duration // first redial delay
	MaxBackoff time.Duration
	NackRetry  time.Duration // retry of a rejected snapshot; 0: never
	// StatusEvery resends Status even without a change; 0: never.
	StatusEvery time.Duration
}

// Default returns the defaults for agent.
func Default(agent string) Config {
	return Config{Agent: agent, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second, NackRetry: 5 * time.Second, StatusEvery: 30 * time.Second}
}

// Client runs the control stream.
type Client struct {
	cfg Config
	dp  Dataplane
	log *zap.Logger

	secretWarned bool // used by Run's goroutine only
}

// New returns a client; log may be nil.
func New(cfg Config, dp Dataplane, log *zap.Logger) *Client {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Instance == "" {
		cfg.Instance = fmt.Sprintf("%016x", rand.Uint64())
	}
	return &Client{cfg: cfg, dp: dp, log: log.Named("sidecar.control")}
}

// Run keeps a stream to the agent open until ctx ends.
func (c *Client) Run(ctx context.Context) error {
	conn, err := grpc.NewClient(c.cfg.Agent, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("control: dial %s: %w", c.cfg.Agent, err)
	}
	defer conn.Close()
	client := sidecarpb.NewSidecarControlClient(conn)
	backoff := c.cfg.MinBackoff
	for {
		got, err := c.stream(ctx, client)
		if ctx.Err() != nil {
			return nil
		}
		if got {
			backoff = c.cfg.MinBackoff
		}
		if status.Code(err) == codes.FailedPrecondition {
			// Another sidecar holds the agent, or this one has the wrong
			// --host-ip: say so plainly, and keep trying slowly in case
			// the other one goes away.
			backoff = c.cfg.MaxBackoff
			c.log.Error("the agent refused this sidecar", zap.Error(err), zap.Duration("retry_in", backoff))
		} else {
			c.log.Warn("control stream ended; redialling", zap.Error(err), zap.Duration("backoff", backoff))
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// stream runs one stream; got says whether a snapshot arrived on it.
func (c *Client) stream(ctx context.Context, client sidecarpb.SidecarControlClient) (got bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if sec := c.secret(); sec != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, secretKey, sec)
	}
	s, err := client.Control(ctx)
	if err != nil {
		return false, fmt.Errorf("open: %w", err)
	}
	hello := &sidecarpb.Hello{AdminAddr: c.cfg.AdminAddr, Build: c.cfg.Build, AppliedVersion: c.dp.AppliedVersion(), HostIp: c.cfg.HostIP, Instance: c.cfg.Instance}
	if err := s.Send(&sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Hello{Hello: hello}}); err != nil {
		return false, fmt.Errorf("hello: %w", err)
	}
	snaps := make(chan *sidecarpb.Snapshot, 1)
	recvErr := make(chan error, 1)
	go func() {
		for {
			m, err := s.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			snap := m.GetSnapshot()
			if snap == nil {
				continue
			}
			// Latest wins: a snapshot is complete, older ones are moot.
			select {
			case <-snaps:
			default:
			}
			snaps <- snap
		}
	}()
	var (
		pending *sidecarpb.Snapshot // rejected, to retry
		retry   <-chan time.Time
		tick    <-chan time.Time
	)
	if c.cfg.StatusEvery > 0 {
		t := time.NewTicker(c.cfg.StatusEvery)
		defer t.Stop()
		tick = t.C
	}
	apply := func(snap *sidecarpb.Snapshot) error {
		if err := c.dp.Apply(ctx, snap); err != nil {
			c.log.Warn("snapshot rejected", zap.Uint64("version", snap.GetVersion()), zap.Error(err))
			pending = snap
			if c.cfg.NackRetry > 0 {
				retry = time.After(c.cfg.NackRetry)
			}
			return c.send(s, &sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Nack{Nack: &sidecarpb.Nack{Version: snap.GetVersion(), Reason: err.Error()}}})
		}
		pending, retry = nil, nil
		if err := c.send(s, &sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Ack{Ack: &sidecarpb.Ack{Version: snap.GetVersion()}}}); err != nil {
			return err
		}
		return c.sendStatus(s)
	}
	for {
		var err error
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case err = <-recvErr:
			return got, fmt.Errorf("recv: %w", err)
		case snap := <-snaps:
			got = true
			err = apply(snap)
		case <-retry:
			if pending != nil && pending.GetVersion() != c.dp.AppliedVersion() {
				err = apply(pending)
			}
		case <-c.dp.Changed():
			err = c.sendStatus(s)
		case <-tick:
			err = c.sendStatus(s)
		}
		if err != nil {
			return got, err
		}
	}
}

func (c *Client) sendStatus(s sidecarpb.SidecarControl_ControlClient) error {
	return c.send(s, &sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Status{Status: c.dp.Status()}})
}

func (c *Client) send(s sidecarpb.SidecarControl_ControlClient, m *sidecarpb.SidecarMessage) error {
	if err := s.Send(m); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// secretKey is the metadata key the agent reads the secret from
// (naming-agent/api.SidecarSecretKey).
const secretKey = "x-detour-sidecar-secret"

// secret reads SecretFile; the agent writes a new one at each start, so
// it is read at each dial. Never logged.
func (c *Client) secret() string {
	if c.cfg.SecretFile == "" {
		return ""
	}
	b, err := os.ReadFile(c.cfg.SecretFile)
	if err != nil {
		if !c.secretWarned { // once, not at every redial
			c.log.Warn("no agent secret: the agent will refuse the control stream", zap.String("file", c.cfg.SecretFile), zap.Error(err))
			c.secretWarned = true
		}
		return ""
	}
	c.secretWarned = false
	return strings.TrimSpace(string(b))
}
