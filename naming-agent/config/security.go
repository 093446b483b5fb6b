package config

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"strings"
)

// Secret is a credential read from a file or the environment at start. It
// never prints: fmt, JSON and YAML show "[redacted]". Reveal hands out the
// value to the one place that compares or sends it.
type Secret string

const redacted = "[redacted]"

// String hides the value from fmt and zap.Stringer.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString hides the value from %#v.
func (s Secret) GoString() string { return s.String() }

// MarshalText hides the value from encoders (JSON, YAML, zap.Any).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the credential itself.
func (s Secret) Reveal() string { return string(s) }

// TokenEnv is the environment variable the API token may come from when
// api.token_file is not set.
const TokenEnv = "DETOUR_API_TOKEN"

// maxSecret bounds a credential file: a token, a password, not a PEM
// bundle.
const maxSecret = 4096

// ReadSecret reads a credential: the content of file (surrounding
// whitespace trimmed) when file is set, else the value of the environment
// variable env (getenv, so tests pass their own). Neither set: "" and no
// error. A file others may read, an empty one, or one with control
// characters (it would be sent in a header) is an error that names the
// file, never its content.
func ReadSecret(file, env string, getenv func(string) string) (Secret, error) {
	if file == "" {
		if env == "" || getenv == nil {
			return "", nil
		}
		v := strings.TrimSpace(getenv(env))
		if err := checkSecret(v); err != nil {
			return "", fmt.Errorf("$%s: %w", env, err)
		}
		return Secret(v), nil
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("%s: readable by every user (mode %v): chmod o-r it", file, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecret {
		return "", fmt.Errorf("%s: longer than %d bytes", file, maxSecret)
	}
	v := string(bytes.TrimSpace(b))
	if v == "" {
		return "", fmt.Errorf("%s: empty", file)
	}
	if err := checkSecret(v); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return Secret(v), nil
}

func checkSecret(v string) error {
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return errors.New("holds control characters")
	}
	return nil
}

// ScopedToken is an API token limited to some services and ports: a
// mutation with it must name a service matching one of Services (path.Match
// patterns, "orders-*") and, to publish, a port in one of Ports.
type ScopedToken struct {
	TokenFile string      `yaml:"token_file"`
	Services  []string    `yaml:"services"`
	Ports     []PortRange `yaml:"ports"`
	// Token is read from TokenFile by LoadTokens.
	Token Secret `yaml:"-"`
}

// Allows reports whether the scope covers service and, unless port is 0,
// port.
func (s ScopedToken) Allows(service string, port int) bool {
	ok := false
	for _, p := range s.Services {
		if m, _ := path.Match(p, service); m {
			ok = true
			break
		}
	}
	if !ok || port == 0 {
		return ok
	}
	for _, r := range s.Ports {
		if r.Contains(port) {
			return true
		}
	}
	return false
}

// LoadTokens reads the credentials: the API tokens (api.token_file, else
// $DETOUR_API_TOKEN, and each scoped token's file) and the registry
// password (registry.password_file, else $DETOUR_REGISTRY_PASSWORD).
// Call it before Validate, which needs to know whether the API is
// protected.
func (c *Config) LoadTokens(getenv func(string) string) error {
	var errs []error
	if err := c.loadRegistryPassword(getenv); err != nil {
		errs = append(errs, err)
	}
	tok, err := ReadSecret(c.API.TokenFile, TokenEnv, getenv)
	if err != nil {
		errs = append(errs, fmt.Errorf("api.token_file: %w", err))
	}
	c.API.Token = tok
	for i := range c.API.ScopedTokens {
		st := &c.API.ScopedTokens[i]
		field := fmt.Sprintf("api.scoped_tokens[%d].token_file", i)
		if st.TokenFile == "" {
			errs = append(errs, fmt.Errorf("%s: must be set", field))
			continue
		}
		if st.Token, err = ReadSecret(st.TokenFile, "", nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// Protected reports whether the API asks for a token: one is loaded.
func (a API) Protected() bool {
	if a.Token != "" || a.TokenFile != "" {
		return true
	}
	for _, s := range a.ScopedTokens {
		if s.Token != "" || s.TokenFile != "" {
			return true
		}
	}
	return false
}

// validateSecurity checks the API's exposure: without a token the API,
// the gRPC port (sidecar control) and the sidecar's admin (pprof) stay on
// loopback, since anyone who reaches them may publish.
func (c Config) validateSecurity(bad func(string, string, ...any)) {
	if !c.API.Protected() {
		for _, l := range []struct{ field, addr string }{
			{"http_listen", c.HTTPListen}, {"grpc_listen", c.GRPCListen}, {"sidecar.admin", c.Sidecar.Admin},
		} {
			if !loopbackAddr(l.addr) {
				bad(l.field, "%q is not a loopback address: without an API token anyone who reaches it may publish; set api.token_file (or $%s) first", l.addr, TokenEnv)
			}
		}
	}
	for i, s := range c.API.ScopedTokens {
		field := fmt.Sprintf("api.scoped_tokens[%d]", i)
		if len(s.Services) == 0 {
			bad(field+".services", "must name at least one service pattern")
		}
		for _, p := range s.Services {
			if _, err := path.Match(p, ""); err != nil {
				bad(field+".services", "%q: %v", p, err)
			}
		}
		for j, r := range s.Ports {
			checkRange(bad, fmt.Sprintf("%s.ports[%d]", field, j), r)
		}
	}
	if c.API.TokenForReads && !c.API.Protected() {
		bad("api.token_for_reads", "needs api.token_file, $%s or a scoped token", TokenEnv)
	}
	for j, r := range c.API.AllowedPorts {
		checkRange(bad, fmt.Sprintf("api.allowed_ports[%d]", j), r)
	}
}

// loopbackAddr: addr's host is a loopback IP or "localhost". An empty
// host or 0.0.0.0 listens on every interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // checkListen reports it
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// RegistryPasswordEnv is the environment variable the registry password
// may come from when registry.password_file is not set.
const RegistryPasswordEnv = "DETOUR_REGISTRY_PASSWORD"

// RegistryTLS is TLS to etcd. Any file set turns TLS on; CAFile empty
// trusts the system's roots.
type RegistryTLS struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
	// Enabled turns TLS on with no file (system roots).
	Enabled bool `yaml:"enabled"`
}

// On reports whether TLS is asked for.
func (t RegistryTLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// RegistryUser is the registry's user name: registry.username, else the
// URL's "user@".
func (r Registry) RegistryUser() string {
	if r.Username != "" {
		return r.Username
	}
	if u, err := url.Parse(r.URL); err == nil && u.User != nil {
		return u.User.Username()
	}
	return ""
}

// RedactedURL is the registry URL fit for logs and errors: a password in
// it (user info or password=) shows as "xxxxx".
func RedactedURL(u string) string {
	pu, err := url.Parse(u)
	if err != nil {
		if i := strings.LastIndex(u, "@"); i >= 0 {
			return "xxxxx" + u[i:] // unparsable, but may hold a user:password
		}
		if strings.Contains(strings.ToLower(u), "password") {
			return "xxxxx"
		}
		return u
	}
	if q := pu.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		pu.RawQuery = q.Encode()
	}
	return pu.Redacted()
}

// checkRegistrySecurity: no password in the URL (user info or query), the
// TLS files come in pairs, TLS only for etcd.
func (c Config) checkRegistrySecurity(bad func(string, string, ...any), kind string) {
	u := c.Registry.URL
	if pu, err := url.Parse(u); err == nil {
		if _, set := pu.User.Password(); set {
			bad("registry.url", "%s: a password in the URL shows in ps and in logs: put it in registry.password_file or $%s", RedactedURL(u), RegistryPasswordEnv)
		}
		if pu.Query().Has("password") {
			bad("registry.url", "%s: password= in the URL shows in ps and in logs: put it in registry.password_file or $%s", RedactedURL(u), RegistryPasswordEnv)
		}
	}
	t := c.Registry.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("registry.tls", "cert_file and key_file go together")
	}
	if t.On() && kind != "etcd" {
		bad("registry.tls", "TLS is for etcd:// registries only (%s)", kind)
	}
	if c.Registry.Password != "" && c.Registry.RegistryUser() == "" && kind != "embedded" {
		bad("registry.username", "a password is set but no user name")
	}
}

// loadRegistryPassword reads registry.password_file, else
// $DETOUR_REGISTRY_PASSWORD.
func (c *Config) loadRegistryPassword(getenv func(string) string) error {
	pw, err := ReadSecret(c.Registry.PasswordFile, RegistryPasswordEnv, getenv)
	if err != nil {
		return fmt.Errorf("registry.password_file: %w", err)
	}
	c.Registry.Password = pw
	return nil
}

// RegistryHosts returns the host:port list of a registry URL, without
// its scheme, user info, path or query.
func RegistryHosts(u string) []string {
	_, rest, _ := strings.Cut(u, "://")
	rest, _, _ = strings.Cut(rest, "?")
	rest, _, _ = strings.Cut(rest, "/")
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return strings.Split(rest, ",")
}

// Load builds the tls.Config of t, or nil when TLS is off.
func (t RegistryTLS) Load() (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("registry.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("registry.tls.ca_file: %s: no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("registry.tls: %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c, nil
}
