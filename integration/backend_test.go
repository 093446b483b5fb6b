package integration

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/detourmesh/detour/internal/testbed"
	"github.com/detourmesh/detour/registry-adapters/etcd"
	"github.com/detourmesh/detour/registry-adapters/nacos"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/registrytest"
	"github.com/detourmesh/detour/registry-adapters/zookeeper"
)

// hosts starts host A and host B.
func (be *backend) hosts(t *testing.T) (a, b *host) {
	return be.host(t, ipA, ""), be.host(t, ipB, "")
}

// backend is a real registry the hosts of a scenario share.
type backend struct {
	// net is the network between the hosts and the registry, which the
	// test can cut. For etcd it stands between the other hosts and the
	// first one, which runs the embedded registry (and reaches it
	// directly).
	net *cutProxy
	// first is the host that runs the embedded registry (etcd only).
	first *host
	// host starts the agent of a host at ip on this registry; extra is
	// YAML appended to its config, args more agent flags.
	host func(t *testing.T, ip, extra string, args ...string) *host
	// reader returns an independent client of the registry, to check what
	// the agents wrote there.
	reader func(t *testing.T) registry.Registry
	// garbage writes, with a raw client, an entry under service that no
	// adapter can parse, as a misbehaving foreign app might.
	garbage func(t *testing.T, service string)
	// zkAddr and zkRoot, for ZooKeeper only: the server (not through net)
	// and the root the agents write under, to read the raw nodes.
	zkAddr, zkRoot string
}

// every runs scenario against embedded etcd and ZooKeeper, the registries
// every scenario runs on; withNacos adds the Nacos test server.
func every(t *testing.T, withNacos bool, scenario func(t *testing.T, be *backend)) {
	type kind struct {
		name string
		mk   func(*testing.T) *backend
	}
	mks := []kind{{"etcd", etcdBackend}, {"zookeeper", zookeeperBackend}}
	if withNacos {
		mks = append(mks, kind{"nacos-test-server", nacosBackend})
	}
	for _, m := range mks {
		t.Run(m.name, func(t *testing.T) { scenario(t, m.mk(t)) })
	}
}

func unique(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// etcdBackend: the first host runs the embedded registry, the others
// reach it through the cuttable network.
func etcdBackend(t *testing.T) *backend {
	var url string
	be := &backend{}
	be.host = func(t *testing.T, ip, extra string, args ...string) *host {
		if be.first == nil {
			be.first = newHost(t, testbed.Spec{IP: ip, Registry: "embedded", ExtraConfig: extra, AgentArgs: args})
			url = be.first.RegistryURL()
			be.net = newCutProxy(t, url[len("etcd://"):])
			return be.first
		}
		return newHost(t, testbed.Spec{IP: ip, Registry: "etcd://" + be.net.addr, ExtraConfig: extra, AgentArgs: args})
	}
	be.garbage = func(t *testing.T, service string) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url[len("etcd://"):]}, DialTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		key := etcd.Default().Prefix + "/" + service + "/" + net.JoinHostPort(ipC, "9")
		if _, err := cli.Put(ctx, key, "{not json"); err != nil {
			t.Fatal(err)
		}
	}
	be.reader = func(t *testing.T) registry.Registry {
		cfg := etcd.Default()
		cfg.Endpoints = []string{url[len("etcd://"):]}
		r, err := etcd.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	return be
}

// zookeeperBackend: every host on the ZooKeeper of scripts/zookeeper.sh,
// through the cuttable network, under a root of the test's own.
func zookeeperBackend(t *testing.T) *backend {
	addr := registrytest.RequireEnv(t, "DETOUR_ZK_ADDR", "run: make test, or scripts/zookeeper.sh start DIR")
	root := unique("/detour-it-")
	proxy := newCutProxy(t, addr)
	return &backend{
		net:    proxy,
		zkAddr: addr,
		zkRoot: root,
		garbage: func(t *testing.T, service string) {
			conn, _, err := zk.Connect([]string{addr}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			node := root + "/" + service + "/providers/" + url.QueryEscape("dubbo://not a host:port/"+service+"?%%%")
			if _, err := conn.Create(node, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("create %s: %v", node, err)
			}
		},
		host: func(t *testing.T, ip, extra string, args ...string) *host {
			return newHost(t, testbed.Spec{IP: ip, Registry: "zookeeper://" + proxy.addr, Prefix: root, ExtraConfig: extra, AgentArgs: args})
		},
		reader: func(t *testing.T) registry.Registry {
			cfg := zookeeper.Default()
			cfg.Servers = []string{addr}
			cfg.Root = root
			r, err := zookeeper.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
}

// nacosBackend: both hosts on the in-repo Nacos test server (not a real
// Nacos), in a group of the test's own.
func nacosBackend(t *testing.T) *backend {
	srv, err := nacostestserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	group := unique("it-")
	return &backend{
		host: func(t *testing.T, ip, extra string, args ...string) *host {
			return newHost(t, testbed.Spec{IP: ip, Registry: "nacos://" + srv.Addr() + "?namespace=public&group=" + group, ExtraConfig: extra, AgentArgs: args})
		},
		reader: func(t *testing.T) registry.Registry {
			cfg := nacos.Default()
			cfg.Servers = []string{srv.Addr()}
			cfg.Group = group
			r, err := nacos.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		},
	}
}

// registered lists service through r.
func registered(t *testing.T, r registry.Registry, service string) []registry.Endpoint {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eps, err := r.List(ctx, service)
	if err != nil {
		t.Fatalf("registry list: %v", err)
	}
	return eps
}
