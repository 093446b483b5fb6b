package nacostestserver

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"net/http"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"

	"github.com/detourmesh/detour/internal/nacoswire"
)

// Authentication as Nacos does it with nacos.core.auth.enabled=true: a
// client logs in over HTTP (POST /nacos/v1/auth/users/login, form fields
// username and password) and gets an accessToken, which it then sends in
// the headers of every naming request on gRPC. A request without it, or
// with another, is answered with error code 403, nothing done.

// codeForbidden is Nacos's NacosException.NO_RIGHT.
const codeForbidden = 403

// tokenTTL is what the login answers as tokenTtl, in seconds (Nacos's
// default); the server itself never expires a token.
const tokenTTL = 18000

// WithAuth turns authentication on with one user.
func WithAuth(username, password string) Option {
	return func(s *Server) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		s.auth = &authState{user: username, pass: password, token: hex.EncodeToString(b[:])}
	}
}

type authState struct {
	user, pass, token string
}

// login serves POST /nacos/v1/auth/users/login.
func (a *authState) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	user, pass := r.Form.Get("username"), r.Form.Get("password")
	if subtle.ConstantTimeCompare([]byte(user), []byte(a.user)) != 1 || subtle.ConstantTimeCompare([]byte(pass), []byte(a.pass)) != 1 {
		http.Error(w, "unknown user!", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"accessToken": a.token, "tokenTtl": tokenTTL, "globalAdmin": false, "username": user})
}

// check answers a naming request without the access token, or nil.
func (a *authState) check(p *pb.Payload, requestID string) *pb.Payload {
	if a == nil {
		return nil
	}
	// The SDK sends request headers in the payload's metadata.
	tok := p.GetMetadata().GetHeaders()["accessToken"]
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.token)) == 1 {
		return nil
	}
	return nacoswire.ErrorPayload(requestID, codeForbidden, "user not found!")
}
