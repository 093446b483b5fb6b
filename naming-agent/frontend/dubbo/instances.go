package dubbo

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/registry-adapters/registry"
	"github.com/detourmesh/detour/registry-adapters/zookeeper/dubboapp"
)

// Dubbo 3's application-level layout (dubbo-go's registry-type service,
// Java Dubbo's register-mode instance): an app registers itself, not its
// interfaces, as
//
//	/services/APP/IP:PORT = instance JSON, dubbo.endpoints listing a port per protocol
//
// Each endpoint of a protocol the sidecar knows is a publication of its
// own, service APP:PROTOCOL (dubboapp.ServiceName); a consumer's read of
// /services/APP is answered from the views of APP:dubbo and APP:tri.

// AppPublications are the publications of instance in of app, one per
// endpoint whose protocol the mesh carries (dubboapp.Protocols), for
// owner. Each is the app's own instance: its metadata kept but for
// dubbo.endpoints (the registry writes the one endpoint it publishes)
// and a "weight" (carried as the weight). skipped names the endpoints
// left out, and why.
func AppPublications(app string, in dubboapp.Instance, owner string) (pubs []frontend.Publication, skipped []string, err error) {
	eps, err := in.Endpoints()
	if err != nil {
		return nil, nil, err
	}
	md := maps.Clone(in.Metadata)
	delete(md, dubboapp.EndpointsKey)
	weight := weightOf(md[registry.ReservedWeightKey])
	delete(md, registry.ReservedWeightKey)
	seen := map[string]bool{}
	for _, e := range eps {
		switch {
		case !slices.Contains(dubboapp.Protocols, e.Protocol):
			skipped = append(skipped, fmt.Sprintf("%s:%d (protocol %q is not carried by the mesh)", e.Protocol, e.Port, e.Protocol))
			continue
		case seen[e.Protocol]:
			skipped = append(skipped, fmt.Sprintf("%s:%d (a second endpoint of protocol %q)", e.Protocol, e.Port, e.Protocol))
			continue
		}
		seen[e.Protocol] = true
		pubs = append(pubs, frontend.Publication{
			Service:  dubboapp.ServiceName(app, e.Protocol),
			Host:     in.Address,
			Port:     e.Port,
			Protocol: e.Protocol,
			Weight:   weight,
			Metadata: maps.Clone(md),
			Owner:    owner,
		})
	}
	return pubs, skipped, nil
}

// appShown is an app's folder as this host's consumers read it.
type appShown struct {
	children []string          // sorted
	data     map[string][]byte // child -> instance JSON
}

// AppInstances is /services/APP as this host's consumers read it, from
// the views of its services APP:PROTOCOL. While the mesh carries a
// service, its instances are shown at the local egress, which balances
// over them: one node named EGRESS_IP:EGRESS_PORT (address, port and
// dubbo.endpoints at the egress) per distinct instance metadata, so that
// a consumer learns every metadata revision the instances have (during
// a rolling upgrade, two versions export different services); instances
// alike in all but their address are one node. Several distinct ones are named
// EGRESS_IP:EGRESS_PORT, EGRESS_IP:EGRESS_PORT-2, ... (Curator's ids are
// opaque). Otherwise each instance is shown at its real address, named
// IP:PORT. Every node lists the one endpoint of its protocol.
//
// An instance that keeps its metadata local (LocalMetadata) is shown at
// its real address even while the mesh carries the service: its
// consumers fetch the metadata from the instance's own MetadataService,
// at the instance's address and a port of its own that no sidecar
// carries, and would find no provider at the egress.
func AppInstances(app string, views []frontend.View) (children []string, data map[string][]byte) {
	data = map[string][]byte{}
	for _, v := range views {
		_, protocol, ok := dubboapp.ParseServiceName(v.Service)
		if !ok {
			continue
		}
		if v.Mesh {
			var shown []dubboapp.Instance
			var sums [][]byte
			for _, in := range v.Instances {
				if LocalMetadata(in.Metadata) {
					continue
				}
				one, err := dubboapp.Single(dubboapp.Instance{Name: app, Metadata: in.Metadata}, "", v.Egress, protocol)
				if err != nil {
					continue
				}
				b := one.Marshal()
				if !slices.ContainsFunc(sums, func(s []byte) bool { return bytes.Equal(s, b) }) {
					sums = append(sums, b)
					shown = append(shown, one)
				}
			}
			for i, one := range shown {
				one.ID = v.Egress
				if i > 0 {
					one.ID += "-" + strconv.Itoa(i+1)
				}
				data[one.ID] = one.Marshal()
			}
		}
		for _, in := range v.Instances {
			if v.Mesh && !LocalMetadata(in.Metadata) {
				continue
			}
			one, err := dubboapp.Single(dubboapp.Instance{Name: app, Metadata: in.Metadata}, in.Addr, in.Addr, protocol)
			if err != nil {
				continue
			}
			if _, dup := data[in.Addr]; !dup {
				data[in.Addr] = one.Marshal()
			}
		}
	}
	children = slices.Sorted(maps.Keys(data))
	return children, data
}

// LocalMetadata reports whether an instance keeps its metadata local:
// served by its own MetadataService (dubbo-go's default, Java Dubbo's
// metadata-type=local) rather than written to the metadata report.
func LocalMetadata(md map[string]string) bool {
	return md["dubbo.metadata.storage-type"] == "local"
}
