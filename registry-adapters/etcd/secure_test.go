package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// testPKI is a CA, a server certificate for 127.0.0.1 and a client
// certificate, made for the test and written as PEM files in dir.
type testPKI struct {
	ca                      *x509.CertPool
	caFile, srvCert, srvKey string
	clientCert, clientKey   string
	clientPair              tls.Certificate
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "detour test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The server's certificate serves clients too: etcd's own gateway
	// dials itself with it.
	srvDER, srvKey := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	// The client's CN is no etcd user: the certificate alone grants
	// nothing once auth is on.
	cliDER, cliKey := leaf(3, "detour-client", x509.ExtKeyUsageClientAuth, nil)
	p := testPKI{ca: x509.NewCertPool()}
	p.ca.AddCert(caCert)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	p.srvCert, p.srvKey = write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER(srvKey))
	p.clientCert, p.clientKey = write("client.pem", "CERTIFICATE", cliDER), write("client-key.pem", "EC PRIVATE KEY", keyDER(cliKey))
	p.clientPair, err = tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p testPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.ca, Certificates: []tls.Certificate{p.clientPair}, MinVersion: tls.VersionTLS12}
}

// startSecureServer starts etcd with client TLS (client certificates
// required) and auth on: user root, and user detour allowed read-write on
// the adapter's prefix only. It returns the https endpoint.
func startSecureServer(t *testing.T, p testPKI) string {
	t.Helper()
	ec := embed.NewConfig()
	ec.Dir = t.TempDir()
	cu := url.URL{Scheme: "https", Host: "127.0.0.1:0"}
	pu := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClientTLSInfo = transport.TLSInfo{CertFile: p.srvCert, KeyFile: p.srvKey, TrustedCAFile: p.caFile, ClientCertAuth: true}
	ec.EnableGRPCGateway = false
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	e, err := embed.StartEtcd(ec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	endpoint := "https://" + e.Clients[0].Addr().String()

	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: p.clientTLS(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := etcd.DefaultPrefix + "/"
	steps := []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "detour", "detour-pw"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "detour"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "detour", prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserGrantRole(ctx, "detour", "detour"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}
	return endpoint
}

// TestSecuredEtcd: before, the adapter had no way to give etcd a client
// certificate or a user, so a secured etcd could not be used. Now it
// registers, lists and watches over TLS with a user; without the user, or
// without TLS, it gets nothing.
func TestSecuredEtcd(t *testing.T) {
	p := newPKI(t)
	endpoint := startSecureServer(t, p)
	cfg := etcd.Default()
	cfg.Endpoints = []string{endpoint}
	cfg.LeaseTTL = testLeaseTTL
	cfg.DialTimeout, cfg.RequestTimeout = 3*time.Second, 3*time.Second
	cfg.Username, cfg.Password, cfg.TLS = "detour", "detour-pw", p.clientTLS()

	r, err := etcd.New(cfg, etcd.WithLogger(zaptest.NewLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	w, err := r.Watch(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if eps, err := w.Next(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("first watch answer: %v, %v", eps, err)
	}
	ep := registry.Endpoint{Service: "greeter", Addr: "10.0.0.1:8080"}
	if err := r.Register(ctx, ep); err != nil {
		t.Fatalf("register over TLS with a user: %v", err)
	}
	if eps, err := r.List(ctx, "greeter"); err != nil || len(eps) != 1 {
		t.Fatalf("list: %v, %v", eps, err)
	}
	if eps, err := w.Next(ctx); err != nil || len(eps) != 1 {
		t.Fatalf("watch: %v, %v", eps, err)
	}

	// The certificate without the user: etcd refuses.
	anon := cfg
	anon.Username, anon.Password = "", ""
	ra, err := etcd.New(anon, etcd.WithLogger(zaptest.NewLogger(t)))
	if err == nil {
		defer ra.Close()
		if _, err := ra.List(ctx, "greeter"); err == nil {
			t.Error("list without a user succeeded")
		}
	}
	// A wrong password: refused at New.
	wrong := cfg
	wrong.Password = "nope"
	if rw, err := etcd.New(wrong, etcd.WithLogger(zaptest.NewLogger(t))); err == nil {
		rw.Close()
		t.Error("a wrong password was accepted")
	}
	// No TLS: no answer within the request timeout.
	plain := cfg
	plain.TLS = nil
	plain.Endpoints = []string{"127.0.0.1" + endpoint[len("https://127.0.0.1"):]}
	if rp, err := etcd.New(plain, etcd.WithLogger(zaptest.NewLogger(t))); err == nil {
		defer rp.Close()
		if _, err := rp.List(ctx, "greeter"); err == nil {
			t.Error("list without TLS succeeded")
		}
	}
}
