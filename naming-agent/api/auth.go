package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/detourmesh/detour/naming-agent/agent"
	"github.com/detourmesh/detour/naming-agent/config"
)

// TokenHeader carries the API token, as Consul's X-Consul-Token does;
// "Authorization: Bearer TOKEN" is taken too. In gRPC metadata the keys
// are "x-detour-token" and "authorization".
const TokenHeader = "X-Detour-Token"

// SidecarSecretKey is the gRPC metadata key of the sidecar's credential
// on its control stream: the per-boot secret the agent writes into
// DATA_DIR/sidecar.secret, or the API token.
const SidecarSecretKey = "x-detour-sidecar-secret"

// errUnauthenticated: no token, or not one of the agent's. It wraps
// ErrForbidden for errors.Is; the API answers it 401 / Unauthenticated.
type errUnauthenticated struct{ msg string }

func (e errUnauthenticated) Error() string { return e.msg }
func (e errUnauthenticated) Unwrap() error { return agent.ErrForbidden }

// auth decides whether a mutation may go ahead. Reads (resolve, status,
// metrics) need no token: they are what every app on the host does.
type auth struct {
	master   [32]byte // sha256 of the full token; zero: none
	hasAll   bool
	scoped   []scoped
	forReads bool // api.token_for_reads
}

type scoped struct {
	sum   [32]byte
	scope config.ScopedToken
}

func newAuth(c config.API) *auth {
	a := &auth{forReads: c.TokenForReads}
	if c.Token != "" {
		a.master, a.hasAll = sha256.Sum256([]byte(c.Token.Reveal())), true
	}
	for _, s := range c.ScopedTokens {
		if s.Token != "" {
			a.scoped = append(a.scoped, scoped{sha256.Sum256([]byte(s.Token.Reveal())), s})
		}
	}
	return a
}

func (a *auth) enabled() bool { return a != nil && (a.hasAll || len(a.scoped) > 0) }

// matchMaster reports whether tok is the full token, in constant time.
func (a *auth) matchMaster(tok string) bool {
	if a == nil || !a.hasAll || tok == "" {
		return false
	}
	sum := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(sum[:], a.master[:]) == 1
}

// check refuses a token that is missing or not the agent's, before the
// request is read; allow then checks its scope.
func (a *auth) check(tok string) error {
	if !a.enabled() {
		return nil
	}
	return a.allow(tok, "", -1)
}

// allow says whether tok may change service (and publish on port, when
// port is not 0). The errors never echo the token.
func (a *auth) allow(tok, service string, port int) error {
	if !a.enabled() {
		return nil
	}
	if tok == "" {
		return errUnauthenticated{"this agent requires an API token for changes: send " + TokenHeader + " or Authorization: Bearer"}
	}
	if a.matchMaster(tok) {
		return nil
	}
	sum := sha256.Sum256([]byte(tok))
	for _, s := range a.scoped {
		if subtle.ConstantTimeCompare(sum[:], s.sum[:]) == 1 {
			if port < 0 || s.scope.Allows(service, port) {
				return nil // port -1: check asks only whether tok is known
			}
			if port != 0 {
				return fmt.Errorf("%w: this token may not publish service %q on port %d", agent.ErrForbidden, service, port)
			}
			return fmt.Errorf("%w: this token may not change service %q", agent.ErrForbidden, service)
		}
	}
	return errUnauthenticated{"the API token is not valid for this agent"}
}

// httpToken is the request's token: X-Detour-Token, else a Bearer
// Authorization.
func httpToken(r *http.Request) string {
	if t := r.Header.Get(TokenHeader); t != "" {
		return t
	}
	return bearer(r.Header.Get("Authorization"))
}

func bearer(h string) string {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// grpcToken is the call's token from its metadata.
func grpcToken(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(strings.ToLower(TokenHeader)); len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := md.Get("authorization"); len(v) > 0 {
		return bearer(v[0])
	}
	return ""
}

// sidecarSecret is the control stream's credential from its metadata.
func sidecarSecret(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(SidecarSecretKey); len(v) > 0 {
		return v[0]
	}
	return ""
}

// checkSidecar says whether the stream's credential is the per-boot
// secret (or the full API token). No secret configured: any stream.
func checkSidecar(ctx context.Context, secret config.Secret, a *auth) error {
	if secret == "" {
		return nil
	}
	got := sidecarSecret(ctx)
	want := sha256.Sum256([]byte(secret.Reveal()))
	sum := sha256.Sum256([]byte(got))
	if got != "" && (subtle.ConstantTimeCompare(sum[:], want[:]) == 1 || a.matchMaster(got)) {
		return nil
	}
	if got == "" {
		return errUnauthenticated{"the control stream carries no sidecar secret: start the sidecar with --agent-secret-file DATA_DIR/sidecar.secret (readable by the sidecar's user)"}
	}
	return errUnauthenticated{"the sidecar secret is not this agent's (it is made anew at each agent start; the sidecar rereads it at each redial)"}
}
