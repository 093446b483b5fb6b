package config

import (
	"fmt"

	etcdfe "github.com/detourmesh/detour/naming-agent/frontend/etcd"
)

// etcdOff is the etcd front end's defaults, off: a host may run a real
// etcd on 2379.
func etcdOff() etcdfe.Config {
	c := etcdfe.Default()
	c.Listen = ""
	return c
}

// validateEtcd checks frontends.etcd when it is on. It passes keys and
// leases through to an etcd, so the registry must be one.
func (c Config) validateEtcd() []error {
	ec := c.Frontends.Etcd
	if ec.Listen == "" {
		return nil
	}
	var errs []error
	if err := ec.Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("frontends.etcd.%v", e))
		}
	}
	if kind, _ := RegistryKind(c.Registry.URL); kind != "etcd" && kind != "embedded" && kind != "" {
		errs = append(errs, fmt.Errorf("frontends.etcd.listen: the etcd front end needs registry.url etcd:// or embedded (keys and leases pass through to that etcd), not %s", kind))
	}
	return errs
}
