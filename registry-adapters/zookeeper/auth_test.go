package zookeeper

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dubbogo/go-zookeeper/zk"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// TestDigestAuth: before, the adapter had no credentials, so a ZooKeeper
// tree under a digest ACL could not be used. Now, with USER:PASSWORD, it
// registers, lists and watches there, its nodes open to that user only
// (CREATOR_ALL_ACL, as Dubbo makes them); without credentials, or with a
// wrong password, it gets ZooKeeper's NoAuth and registers nothing.
func TestDigestAuth(t *testing.T) {
	e := newEnv(t)
	const user, pass = "detour", "s3cret-pw"
	if _, err := e.raw.Create(e.root, nil, 0, zk.DigestACL(zk.PermAll, user, pass)); err != nil {
		t.Fatal(err)
	}
	// The raw client needs the credentials to clean the tree up.
	if err := e.raw.AddAuth("digest", []byte(user+":"+pass)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ep := registry.Endpoint{Service: "greeter", Addr: "10.0.0.1:20880"}

	r, _ := e.newRegistry(t, nil, func(c *Config) { c.Username, c.Password = user, pass })
	w, err := r.Watch(ctx, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if eps, err := w.Next(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("first watch answer: %v, %v", eps, err)
	}
	if err := r.Register(ctx, ep); err != nil {
		t.Fatalf("register with credentials: %v", err)
	}
	if eps, err := r.List(ctx, "greeter"); err != nil || len(eps) != 1 {
		t.Fatalf("list: %v, %v", eps, err)
	}
	if eps, err := w.Next(ctx); err != nil || len(eps) != 1 {
		t.Fatalf("watch: %v, %v", eps, err)
	}
	providers := e.root + "/greeter/providers"
	kids, _, err := e.raw.Children(providers)
	if err != nil || len(kids) != 1 {
		t.Fatalf("providers: %v, %v", kids, err)
	}
	acl, _, err := e.raw.GetACL(providers + "/" + kids[0])
	if err != nil || len(acl) != 1 || acl[0].Scheme != "digest" || !strings.HasPrefix(acl[0].ID, user+":") {
		t.Fatalf("provider node ACL = %v, %v; want digest for %s only", acl, err, user)
	}

	for _, tt := range []struct {
		name string
		set  func(*Config)
	}{
		{"no credentials", func(c *Config) { c.RequestTimeout = 2 * time.Second }},
		{"wrong password", func(c *Config) { c.Username, c.Password, c.RequestTimeout = user, "nope", 2*time.Second }},
	} {
		other, _ := e.newRegistry(t, nil, tt.set)
		if _, err := other.List(ctx, "greeter"); !errors.Is(err, zk.ErrNoAuth) {
			t.Errorf("%s: list: %v, want NoAuth", tt.name, err)
		}
		if err := other.Register(ctx, registry.Endpoint{Service: "intruder", Addr: "10.0.0.9:1"}); err == nil {
			t.Errorf("%s: register succeeded", tt.name)
		}
	}
	if ok, _, _ := e.raw.Exists(e.root + "/intruder"); ok {
		t.Errorf("a client without the credentials created %s/intruder", e.root)
	}
}

func TestDigestConfig(t *testing.T) {
	c := Default()
	c.Password = "x"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "password: set without username") {
		t.Errorf("password without user: %v", err)
	}
	c.Username = "a:b"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "username") || strings.Contains(err.Error(), "x\"") {
		t.Errorf("user with ':': %v", err)
	}
}
