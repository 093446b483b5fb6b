package nacos

import (
	"fmt"
	"maps"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Owner prefixes of this front end's publications.
const (
	OwnerPrefix     = "nacos/"
	ownerHTTP       = OwnerPrefix + "http"       // ephemeral, kept by heartbeats
	ownerPersistent = OwnerPrefix + "persistent" // ephemeral=false over HTTP
)

// ClusterKey is the metadata key a publication keeps the app's Nacos
// cluster under (DEFAULT is not written), so every host's front end
// shows the instance in its cluster, and a Nacos registry holds it there.
const ClusterKey = nacoswire.ClusterKey

// weightScale maps Nacos's weight (a float, 1.0 by default) to the
// registry's integer one (100 by default): 1.0 is 100, 0.01 is 1, 100.0
// is registry.MaxWeight.
const weightScale = 100

// key names a service as Nacos does.
type key struct{ namespace, group, name string }

func newKey(namespace, group, name string) key {
	if namespace == "" {
		namespace = nacoswire.DefaultNamespace
	}
	if group == "" {
		group = nacoswire.DefaultGroup
	}
	return key{namespace, group, name}
}

func (k key) grouped() string { return nacoswire.GroupedName(k.group, k.name) }

// MeshName is the mesh service a Nacos service is: its own name in the
// public namespace's DEFAULT_GROUP (so it meets the same service
// published through the API or another front end), "GROUP::NAME" in
// another group, "NAMESPACE::GROUP::NAME" in another namespace ("@@",
// Nacos's own separator, is no registry's service character). The
// result passes registry.ValidateService or is an error.
func MeshName(namespace, group, name string) (string, error) {
	k := newKey(namespace, group, name)
	return k.mesh()
}

func (k key) mesh() (string, error) {
	if k.name == "" {
		return "", fmt.Errorf("serviceName must not be empty")
	}
	s := k.name
	if k.namespace != nacoswire.DefaultNamespace {
		s = k.namespace + "::" + k.group + "::" + k.name
	} else if k.group != nacoswire.DefaultGroup {
		s = k.group + "::" + k.name
	}
	if err := registry.ValidateService(s); err != nil {
		return "", fmt.Errorf("service %q in group %q, namespace %q: %w", k.name, k.group, k.namespace, err)
	}
	return s, nil
}

// clusterName is Nacos's NamingUtils cluster name pattern.
var clusterName = regexp.MustCompile(`^[0-9a-zA-Z-]+$`)

// protocols are the sidecar's handlings an instance's "protocol"
// metadata (Dubbo's, on Nacos) may name; anything else is carried as tcp.
var protocols = map[string]bool{"tcp": true, "http": true, "grpc": true, "dubbo": true, "tri": true}

// publicationOf maps an instance an app registers to its publication.
// The core checks the rest (a local IP, reserved metadata keys).
func publicationOf(mesh string, in model.Instance, owner string) (frontend.Publication, error) {
	ip := net.ParseIP(in.Ip)
	if ip == nil {
		return frontend.Publication{}, fmt.Errorf("instance format invalid: ip %q is not an IP address", in.Ip)
	}
	if in.Port < 1 || in.Port > 65535 {
		return frontend.Publication{}, fmt.Errorf("instance format invalid: port %d out of range 1-65535", in.Port)
	}
	w, err := weightOf(in.Weight)
	if err != nil {
		return frontend.Publication{}, err
	}
	cluster := in.ClusterName
	if cluster == "" {
		cluster = nacoswire.DefaultCluster
	}
	if !clusterName.MatchString(cluster) {
		return frontend.Publication{}, fmt.Errorf("instance format invalid: cluster name %q must match %s", cluster, clusterName)
	}
	md := maps.Clone(in.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	if _, ok := md[ClusterKey]; ok {
		return frontend.Publication{}, fmt.Errorf("instance format invalid: metadata key %q is reserved for the cluster name", ClusterKey)
	}
	if cluster != nacoswire.DefaultCluster {
		md[ClusterKey] = cluster
	}
	proto := "tcp"
	if p := md["protocol"]; protocols[p] {
		proto = p
	}
	return frontend.Publication{
		Service: mesh, Host: ip.String(), Port: int(in.Port), Protocol: proto, Weight: w, Metadata: md, Owner: owner,
	}, nil
}

// weightOf maps a Nacos weight to the registry's: 0 (nacos-sdk-go's
// unset value) is the registry's default, 1.0; the rest is scaled.
func weightOf(w float64) (uint32, error) {
	if math.IsNaN(w) || w < 0 || w > 10000 {
		return 0, fmt.Errorf("instance format invalid: The weights range from 0.0 to 10000.0")
	}
	if w == 0 {
		return 0, nil
	}
	return uint32(min(registry.MaxWeight, max(1, math.Round(w*weightScale)))), nil
}

// nacosWeight is a registry weight as Nacos writes it.
func nacosWeight(w uint32) float64 {
	if w == 0 {
		w = registry.DefaultWeight
	}
	return float64(w) / weightScale
}

// wantClusters parses Nacos's comma-separated cluster filter; nil: all.
func wantClusters(clusters string) map[string]bool {
	if strings.TrimSpace(clusters) == "" {
		return nil
	}
	want := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		want[strings.TrimSpace(c)] = true
	}
	return want
}

// instancesOf is how the view shows k to a Nacos app asking for the
// clusters in want (nil: all). While the mesh carries the service, each
// cluster with instances is one instance at the local egress (which
// balances over every instance, whatever its cluster), with the
// metadata of that cluster's first instance; otherwise the real
// instances are shown.
func instancesOf(k key, v frontend.View, want map[string]bool) []model.Instance {
	hosts := []model.Instance{}
	if !v.Known {
		return hosts
	}
	seen := map[string]bool{}
	for _, in := range v.Instances {
		cluster := in.Metadata[ClusterKey]
		if cluster == "" {
			cluster = nacoswire.DefaultCluster
		}
		if want != nil && !want[cluster] {
			continue
		}
		addr, weight := in.Addr, nacosWeight(in.Weight)
		if v.Mesh {
			if seen[cluster] {
				continue
			}
			seen[cluster] = true
			addr, weight = v.Egress, 1
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			continue
		}
		md := maps.Clone(in.Metadata)
		if md == nil {
			md = map[string]string{}
		}
		delete(md, ClusterKey)
		hosts = append(hosts, model.Instance{
			InstanceId: host + "#" + port + "#" + cluster + "#" + k.grouped(),
			Ip:         host, Port: p, Weight: weight,
			Healthy: true, Enable: true, Ephemeral: true,
			ClusterName: cluster, ServiceName: k.grouped(), Metadata: md,
			InstanceHeartBeatInterval: nacoswire.HeartBeatInterval,
			InstanceHeartBeatTimeOut:  nacoswire.HeartBeatTimeout,
			IpDeleteTimeout:           nacoswire.IPDeleteTimeout,
		})
	}
	slices.SortFunc(hosts, func(a, b model.Instance) int { return strings.Compare(a.InstanceId, b.InstanceId) })
	return hosts
}
