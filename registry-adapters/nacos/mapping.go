package nacos

import (
	"fmt"
	"maps"
	"math"
	"net"
	"strconv"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// The mapping between a Nacos instance and a registry.Endpoint:
//
//	Endpoint.Addr      <-> instance ip:port ("[ip]:port" for IPv6)
//	Endpoint.Weight    <-> instance weight x 100: registry.DefaultWeight
//	                       (100) is Nacos's default 1.0
//	Endpoint.Metadata  <-> instance metadata, exactly, but for
//	                       "nacos.cluster" <-> clusterName (below)
//	                       ephemeral=true, healthy=true, enabled=true,
//	                       clusterName=Config.Cluster on registration
//
// Weight is scaled so that both sides' defaults meet: an endpoint
// registered without a weight is 1.0 in Nacos, like a Java or Go
// client's instance, and such an instance reads as DefaultWeight, so in
// a service both register to, traffic splits as Nacos means it (with
// the same number, detour's 100 took 991 of 1,000 picks beside a
// client's 1.0). Registry weights 1 to MaxWeight are Nacos's 0.01 to
// 100.0 and read back exactly; a foreign weight is rounded to the
// hundredth, anything above 0 is at least 1, above 100.0 is MaxWeight,
// and above Nacos's own 10000 is malformed.

// An endpoint whose metadata has "nacos.cluster" (nacoswire.ClusterKey:
// the cluster a Nacos app gave the agent's front end) is registered in
// that cluster rather than Config.Cluster, the key kept; an instance read
// in a cluster other than DEFAULT without the key gets it, so apps behind
// front ends see the cluster a Nacos client registered it in.

// weightScale is how many registry weight units one Nacos weight unit is.
const weightScale = 100

// instanceOf maps a normalized Endpoint to the instance to register.
func instanceOf(ep registry.Endpoint, cluster string) (model.Instance, error) {
	host, port, err := splitAddr(ep.Addr)
	if err != nil {
		return model.Instance{}, err
	}
	md := maps.Clone(ep.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	if c := md[nacoswire.ClusterKey]; clusterPattern.MatchString(c) {
		cluster = c
	}
	return model.Instance{
		Ip:          host,
		Port:        uint64(port),
		Weight:      float64(ep.Weight) / weightScale,
		Healthy:     true,
		Enable:      true,
		Ephemeral:   true,
		ClusterName: cluster,
		Metadata:    md,
	}, nil
}

// splitAddr splits a validated "host:port".
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: addr %q: %v", registry.ErrInvalid, addr, err)
	}
	port, err := registry.ParsePort(p)
	if err != nil {
		return "", 0, fmt.Errorf("%w: addr %q: %v", registry.ErrInvalid, addr, err)
	}
	return host, port, nil
}

// canonicalAddr rewrites addr's port in decimal without leading zeros,
// the only form Nacos can give back ("h:0080" is registered as "h:80").
// The host is kept as written.
func canonicalAddr(addr string) (string, error) {
	host, port, err := splitAddr(addr)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// serving reports whether an instance takes traffic: healthy, enabled and
// with a weight above 0 (what nacos-sdk-go's own selection requires).
// Instances that do not are left out silently; they are not malformed.
func serving(in model.Instance) bool {
	return in.Healthy && in.Enable && in.Weight > 0
}

// endpointOf maps a serving instance of service to an Endpoint. The error
// says why the instance cannot be one: a bad IP or port, a weight out of
// range, or metadata registry refuses (including the reserved "weight"
// key: Nacos has a weight field, and a second source for it would be
// ambiguous). The result passes registry's validation, so it could be
// registered again as it is.
func endpointOf(service string, in model.Instance) (registry.Endpoint, error) {
	if in.Port < 1 || in.Port > 65535 {
		return registry.Endpoint{}, fmt.Errorf("port %d out of range 1-65535", in.Port)
	}
	w, err := weightOf(in.Weight)
	if err != nil {
		return registry.Endpoint{}, err
	}
	md := in.Metadata
	if c := in.ClusterName; c != "" && c != DefaultCluster {
		if _, ok := md[nacoswire.ClusterKey]; !ok {
			md = maps.Clone(md)
			if md == nil {
				md = map[string]string{}
			}
			md[nacoswire.ClusterKey] = c
		}
	}
	ep := registry.Endpoint{
		Service:  service,
		Addr:     net.JoinHostPort(in.Ip, strconv.FormatUint(in.Port, 10)),
		Weight:   w,
		Metadata: md,
	}
	return ep.Normalized()
}

// maxNacosWeight is the largest weight Nacos accepts.
const maxNacosWeight = 10000

// weightOf maps a Nacos weight (> 0) to a registry weight.
func weightOf(w float64) (uint32, error) {
	if math.IsNaN(w) || w <= 0 || w > maxNacosWeight {
		return 0, fmt.Errorf("weight %v out of range (0, %d]", w, maxNacosWeight)
	}
	return uint32(min(registry.MaxWeight, max(1, math.Round(w*weightScale)))), nil
}

// instanceKey is the key MalformedFunc is given: the instance ID Nacos
// reports, or the one Nacos would generate (ip#port#cluster#group@@name).
func instanceKey(group, service string, in model.Instance) string {
	if in.InstanceId != "" {
		return in.InstanceId
	}
	return in.Ip + "#" + strconv.FormatUint(in.Port, 10) + "#" + in.ClusterName + "#" + group + "@@" + service
}
