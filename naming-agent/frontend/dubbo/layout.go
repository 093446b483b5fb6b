// Package dubbo is Dubbo's interface-level layout in ZooKeeper as the
// agent's ZooKeeper front end reads and writes it: which paths are a
// provider's registration and a consumer's read, how a provider's URL
// becomes a publication (the app's own URL, only host and port to be
// rewritten), and how a service's view becomes the provider URLs a
// consumer reads (each instance's own URL at the local egress while the
// mesh carries the service, at its real address otherwise).
//
//	/ROOT/SERVICE/providers/URL.encode(scheme://host:port/SERVICE?params)
//
// ROOT is any one segment ("dubbo" by default; Dubbo's registry group).
package dubbo

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
)

// ProvidersDir reports whether path is a providers directory,
// /ROOT/SERVICE/providers, and returns SERVICE.
func ProvidersDir(path string) (service string, ok bool) {
	parts := strings.Split(path, "/")
	if len(parts) != 4 || parts[0] != "" || parts[1] == "" || parts[2] == "" || parts[3] != "providers" {
		return "", false
	}
	return parts[2], true
}

// ProviderNode reports whether path is a provider node,
// /ROOT/SERVICE/providers/NAME, and parses NAME's URL. ok with an error
// is a node in a providers directory whose name is not a provider URL of
// SERVICE: it stays a plain node, and the caller says why.
func ProviderNode(path string) (service string, u dubbourl.URL, ok bool, err error) {
	dir, name, found := cutLast(path)
	if !found {
		return "", dubbourl.URL{}, false, nil
	}
	service, ok = ProvidersDir(dir)
	if !ok {
		return "", dubbourl.URL{}, false, nil
	}
	u, err = dubbourl.ParseNodeName(name)
	if err != nil {
		return service, u, true, fmt.Errorf("provider node %q: %w", path, err)
	}
	if iface := u.Params["interface"]; iface != "" && iface != service {
		return service, u, true, fmt.Errorf("provider node %q: interface %q is not %q", path, iface, service)
	}
	return service, u, true, nil
}

func cutLast(path string) (dir, name string, ok bool) {
	i := strings.LastIndexByte(path, '/')
	if i <= 0 || i == len(path)-1 {
		return "", "", false
	}
	return path[:i], path[i+1:], true
}

// layoutParams are the parameters the registry writes for every provider
// (the ZooKeeper adapter: anyhost, interface, side, timestamp, weight) or
// that are carried apart (weight): they are not the app's metadata.
var layoutParams = map[string]bool{"anyhost": true, "interface": true, "side": true, "timestamp": true, "weight": true}

// Publication is the publication of provider URL u of service, for owner.
// The scheme becomes the protocol (dubbo, tri: what the sidecar carries
// and the scheme the registry writes back), the weight the weight, every
// other parameter metadata. Only dubbo:// and tri:// round-trip their
// scheme; others are carried at L4 and registered as dubbo://.
func Publication(service string, u dubbourl.URL, owner string) frontend.Publication {
	md := make(map[string]string, len(u.Params))
	for k, v := range u.Params {
		if !layoutParams[k] {
			md[k] = v
		}
	}
	return frontend.Publication{
		Service:  service,
		Host:     u.Host,
		Port:     u.Port,
		Protocol: protocolOf(u.Protocol),
		Weight:   weightOf(u.Params["weight"]),
		Metadata: md,
		Owner:    owner,
	}
}

func protocolOf(scheme string) string {
	switch scheme {
	case "dubbo", "tri":
		return scheme
	case "grpc":
		return "grpc"
	}
	return "tcp"
}

// weightOf reads Dubbo's weight: absent is the default (0 here), 0 is
// the smallest share (1): a registry has no "no share" that callers
// would still call, as Dubbo's consumers do call a weight-0 provider.
func weightOf(s string) uint32 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(max(n, 1))
}

// Children is the providers directory of service as its consumers on
// this host read it, prev being the answer before (nil at first).
//
// At the real addresses (fallback, mesh off) it is one node per
// instance, the instance's own URL: scheme, parameters and weight.
//
// Behind the egress it is one node per (scheme, group, version): Dubbo's
// consumers key a provider by protocol, address, interface, group and
// version (dubbo-go's URL.Key), so two URLs at the one egress address
// with the same key are one provider to them, and the deletion of either
// drops it (dubbo-go handles a child change as adds, then deletes). The
// node shown is the URL of the first instance by address, kept while its
// key has instances so a consumer sees no change when instances come and
// go; the egress balances over all of them. It carries retries=0: the
// sidecar retries what is safe, once (the design's retry push-back), for
// consumers that set no retries of their own. Sorted, without duplicates.
func Children(service string, v frontend.View, prev []string) []string {
	if !v.Mesh {
		out := make([]string, 0, len(v.Instances))
		for _, in := range v.Instances {
			if name, ok := nodeName(service, in, in.Addr, nil); ok {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	kept := map[string]string{} // key -> a node shown before at this egress
	for _, name := range prev {
		if u, err := dubbourl.ParseNodeName(name); err == nil && net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) == v.Egress {
			kept[keyOf(u.Protocol, u.Params)] = name
		}
	}
	shown := map[string]bool{}
	out := make([]string, 0, 1)
	for _, in := range v.Instances { // sorted by Addr: the first of a key is its node
		k := keyOf(schemeOf(in.Protocol), in.Metadata)
		if shown[k] {
			continue
		}
		name, ok := kept[k]
		if !ok {
			if name, ok = nodeName(service, in, v.Egress, map[string]string{"retries": "0"}); !ok {
				continue
			}
		}
		shown[k] = true
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// keyOf is what a Dubbo consumer tells providers at one address apart by.
func keyOf(scheme string, params map[string]string) string {
	return scheme + "\x00" + params["group"] + "\x00" + params["version"]
}

// nodeName is in's URL at addr as a providers node name, with extra
// parameters set.
func nodeName(service string, in frontend.Instance, addr string, extra map[string]string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", false
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", false
	}
	params := make(map[string]string, len(in.Metadata)+4+len(extra))
	for k, val := range in.Metadata {
		params[k] = val
	}
	params["interface"] = service
	params["side"] = "provider"
	params["anyhost"] = "false"
	params["weight"] = strconv.FormatUint(uint64(in.Weight), 10)
	for k, val := range extra {
		params[k] = val
	}
	return dubbourl.URL{Protocol: schemeOf(in.Protocol), Host: host, Port: p, Path: service, Params: params}.NodeName(), true
}

func schemeOf(protocol string) string {
	if protocol == "tri" {
		return "tri"
	}
	return "dubbo"
}
