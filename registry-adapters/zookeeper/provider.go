package zookeeper

import (
	"cmp"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubbourl"
)

// metadataEscape prefixes a metadata key that would otherwise be taken for
// a layout parameter (see isLayoutParam), or that starts with the prefix
// itself, so every metadata key round-trips: "side" is written as
// "detour.md.side", "detour.md.x" as "detour.md.detour.md.x".
const metadataEscape = "detour.md."

// isLayoutParam reports whether a provider URL parameter belongs to the
// layout rather than to the endpoint's metadata: this adapter writes it
// (anyhost, interface, side, timestamp, weight) or acts on it (enabled,
// disabled, category). Every other parameter, including what Dubbo writes
// (application, methods, version, group, pid, release, ...), is metadata.
func isLayoutParam(k string) bool {
	switch k {
	case "anyhost", "category", "disabled", "enabled", "interface", "side", "timestamp", "weight":
		return true
	}
	return false
}

// paramKey is the URL parameter that carries metadata key k.
func paramKey(k string) string {
	if isLayoutParam(k) || strings.HasPrefix(k, metadataEscape) {
		return metadataEscape + k
	}
	return k
}

// metadataKey is the metadata key carried by URL parameter p; ok is false
// for a layout parameter.
func metadataKey(p string) (k string, ok bool) {
	if k, found := strings.CutPrefix(p, metadataEscape); found {
		return k, true
	}
	return p, !isLayoutParam(p)
}

// providerURL is the Dubbo provider URL of ep, which must be normalized.
// registered is when ep was first registered; it becomes the URL's
// timestamp, which Dubbo consumers use to warm a new provider up.
//
// Its scheme is the endpoint's protocol when that is one of Dubbo's
// (MetaProtocol "dubbo" or "tri": a dubbo-go Triple consumer keeps only
// providers whose scheme is its protocol), else the configured protocol.
func providerURL(ep registry.Endpoint, protocol string, registered time.Time) dubbourl.URL {
	if p := ep.Metadata[MetaProtocol]; p == "dubbo" || p == "tri" {
		protocol = p
	}
	params := make(map[string]string, len(ep.Metadata)+5)
	for k, v := range ep.Metadata {
		params[paramKey(k)] = v
	}
	params["anyhost"] = "false"
	params["interface"] = ep.Service
	params["side"] = "provider"
	params["timestamp"] = strconv.FormatInt(registered.UnixMilli(), 10)
	params["weight"] = strconv.FormatUint(uint64(ep.Weight), 10)
	host, port, _ := net.SplitHostPort(ep.Addr)
	p, _ := strconv.Atoi(port)
	return dubbourl.URL{Protocol: protocol, Host: host, Port: p, Path: ep.Service, Params: params}
}

// MetaProtocol is the metadata key whose value, when it is one of
// Dubbo's protocols, becomes the scheme of the endpoint's provider URL.
// It is the key the naming agent writes the service's protocol under.
const MetaProtocol = "detour.protocol"

// provider is a provider node read back.
type provider struct {
	ep        registry.Endpoint
	serving   bool  // false: enabled=false or disabled=true
	timestamp int64 // ms since the epoch; 0 if the URL has none
}

// parseProvider reads the provider node name of service. It fails for a
// name that is not an encoded Dubbo URL, names another service, or has no
// usable address or weight.
func parseProvider(service, name string) (provider, error) {
	u, err := dubbourl.ParseNodeName(name)
	if err != nil {
		return provider{}, err
	}
	if iface := u.Params["interface"]; iface != "" {
		if iface != service {
			return provider{}, fmt.Errorf("interface %q is not service %q", iface, service)
		}
	} else if u.Path != service {
		return provider{}, fmt.Errorf("no interface parameter and path %q is not service %q", u.Path, service)
	}
	addr := net.JoinHostPort(u.Host, strconv.Itoa(u.Port))
	if err := registry.ValidateAddr(addr); err != nil {
		return provider{}, err
	}
	weight, err := parseWeight(u.Params["weight"])
	if err != nil {
		return provider{}, err
	}
	md := make(map[string]string, len(u.Params))
	for p, v := range u.Params {
		if k, ok := metadataKey(p); ok {
			md[k] = v
		}
	}
	if _, ok := md[MetaProtocol]; !ok && u.Protocol == "tri" {
		// A Triple provider that did not come through an agent: say so,
		// so its readers show it as tri:// and the sidecar carries it as
		// gRPC (dubbo://, the default, needs no word).
		md[MetaProtocol] = "tri"
	}
	ts, _ := strconv.ParseInt(u.Params["timestamp"], 10, 64)
	return provider{
		ep: registry.Endpoint{Service: service, Addr: addr, Weight: max(weight, 1), Metadata: md},
		// weight=0 still serves: Dubbo's own consumers call such a
		// provider (RandomLoadBalance picks among all when every weight
		// is 0), and dubbo-go registers weight=0 by default.
		serving:   enabled(u.Params),
		timestamp: ts,
	}, nil
}

// parseWeight reads Dubbo's weight parameter: absent means
// registry.DefaultWeight, above registry.MaxWeight is capped; 0 is read
// as the smallest share (Weight 1), not as "no traffic".
func parseWeight(s string) (uint32, error) {
	if s == "" {
		return registry.DefaultWeight, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("weight %q: not a number >= 0", s)
	}
	return uint32(min(n, registry.MaxWeight)), nil
}

// enabled follows Dubbo's RegistryDirectory: "disabled", when present,
// decides; otherwise "enabled" does; an empty value means the default.
func enabled(params map[string]string) bool {
	if v, ok := params["disabled"]; ok {
		return !strings.EqualFold(v, "true")
	}
	if v := params["enabled"]; v != "" {
		return strings.EqualFold(v, "true")
	}
	return true
}

// decoded caches the result of parseProvider for one node name.
type decoded struct {
	p   provider
	err error
}

// decodeChildren turns the children of a providers node into the serving
// endpoint set, sorted by address, and the malformed children with why.
// When several serving nodes have the same address (two clients, or a
// Dubbo app and detour, registered it), the one registered last wins (the
// greater timestamp, then the greater node name), so an address is one
// endpoint, as in the other registries. cache, if not nil, keeps parse
// results across calls and is pruned to children. The returned endpoints
// share their Metadata maps with cache: callers must not modify them.
func decodeChildren(service string, children []string, cache map[string]decoded) ([]registry.Endpoint, map[string]error) {
	type candidate struct {
		p    provider
		name string
	}
	var bad map[string]error
	best := make(map[string]candidate, len(children))
	for _, name := range children {
		d, ok := cache[name]
		if !ok {
			d.p, d.err = parseProvider(service, name)
			if cache != nil {
				cache[name] = d
			}
		}
		if d.err != nil {
			if bad == nil {
				bad = map[string]error{}
			}
			bad[name] = d.err
			continue
		}
		if !d.p.serving {
			continue
		}
		cur, ok := best[d.p.ep.Addr]
		if !ok || cmp.Or(cmp.Compare(d.p.timestamp, cur.p.timestamp), strings.Compare(name, cur.name)) > 0 {
			best[d.p.ep.Addr] = candidate{d.p, name}
		}
	}
	if cache != nil && len(cache) > len(children) {
		present := make(map[string]struct{}, len(children))
		for _, name := range children {
			present[name] = struct{}{}
		}
		for name := range cache {
			if _, ok := present[name]; !ok {
				delete(cache, name)
			}
		}
	}
	eps := make([]registry.Endpoint, 0, len(best))
	for _, c := range best {
		eps = append(eps, c.p.ep)
	}
	registry.Sort(eps)
	return eps, bad
}
