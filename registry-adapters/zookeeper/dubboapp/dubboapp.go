// Package dubboapp reads and writes Dubbo 3's application-level instances
// as Dubbo (Java, through Curator's x-discovery) and dubbo-go put them in
// ZooKeeper, and names the mesh services they become. It is shared by the
// ZooKeeper adapter and the agent's ZooKeeper front end, so there is one
// codec for the format.
//
//	/services/APP/ID = {"name":APP,"id":ID,"address":IP,"port":PORT,
//	    "payload":{"@class":...,"id":ID,"name":APP,"metadata":{
//	        "dubbo.endpoints":"[{\"port\":20880,\"protocol\":\"dubbo\"}]",
//	        "dubbo.metadata.revision":..., ...}}, ...}
//
// An instance with several endpoints (one port per protocol) is several
// mesh services, one per protocol, named APP:PROTOCOL: a sidecar carries a
// service on one port with one protocol.
package dubboapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// Root is the folder of application-level instances: Dubbo's and
// dubbo-go's default (their "group" of service discovery).
const Root = "/services"

// MaxData bounds an instance's JSON: a ZooKeeper node's data is at most
// 1 MiB (jute.maxbuffer); a registry endpoint's metadata at most 16 KiB.
const MaxData = 64 << 10

// EndpointsKey is the metadata key of an instance's endpoints.
const EndpointsKey = "dubbo.endpoints"

// weightKey carries an endpoint's weight in the instance metadata of the
// nodes this adapter writes (registry.ReservedWeightKey: never an app's).
const weightKey = registry.ReservedWeightKey

// curatorClass is the payload class Dubbo's ZooKeeper discovery writes
// and Java's Jackson needs to read it back.
const curatorClass = "org.apache.dubbo.registry.zookeeper.ZookeeperInstance"

// Protocols are the endpoint protocols that become mesh services: the
// ones the sidecar knows (dubbo at L4, tri as gRPC). Others (rest, ...)
// stay out of the mesh.
var Protocols = []string{"dubbo", "tri"}

// ServiceName is the mesh service of app's endpoint of protocol.
func ServiceName(app, protocol string) string { return app + ":" + protocol }

// ParseServiceName reports whether service is an application-level
// service, APP:PROTOCOL with PROTOCOL one of Protocols. A Dubbo interface
// name (a Java class name) never has a ':'.
func ParseServiceName(service string) (app, protocol string, ok bool) {
	i := strings.LastIndexByte(service, ':')
	if i <= 0 || !slices.Contains(Protocols, service[i+1:]) {
		return "", "", false
	}
	app = service[:i]
	if strings.ContainsAny(app, "/:") {
		return "", "", false
	}
	return app, service[i+1:], true
}

// Dir is the folder of app's instances.
func Dir(app string) string { return Root + "/" + app }

// InstanceDir reports whether path is an app's folder, /services/APP.
func InstanceDir(path string) (app string, ok bool) {
	app, ok = strings.CutPrefix(path, Root+"/")
	if !ok || app == "" || strings.Contains(app, "/") {
		return "", false
	}
	return app, true
}

// InstanceNode reports whether path is an instance node,
// /services/APP/ID.
func InstanceNode(path string) (app, id string, ok bool) {
	rest, ok := strings.CutPrefix(path, Root+"/")
	if !ok {
		return "", "", false
	}
	app, id, ok = strings.Cut(rest, "/")
	if !ok || app == "" || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return app, id, true
}

// Instance is one instance of an app.
type Instance struct {
	Name    string // the app
	ID      string // the node's name
	Address string // an IP or host name, without brackets
	Port    int    // the instance's port: its first endpoint's, by convention
	// Metadata is the payload's metadata, dubbo.endpoints included.
	Metadata map[string]string
	// RegisteredMs is Curator's registrationTimeUTC (0 if none).
	RegisteredMs int64
}

// Endpoint is one entry of dubbo.endpoints.
type Endpoint struct {
	Port     int    `json:"port"`
	Protocol string `json:"protocol"`
}

type wireInstance struct {
	Name                string          `json:"name"`
	ID                  string          `json:"id"`
	Address             string          `json:"address"`
	Port                *int            `json:"port"`
	SSLPort             *int            `json:"sslPort"`
	Payload             *wirePayload    `json:"payload"`
	RegistrationTimeUTC int64           `json:"registrationTimeUTC"`
	ServiceType         string          `json:"serviceType"`
	URISpec             json.RawMessage `json:"uriSpec"`
}

type wirePayload struct {
	Class    string                     `json:"@class"`
	ID       string                     `json:"id"`
	Name     string                     `json:"name"`
	Metadata map[string]json.RawMessage `json:"metadata"`
}

// Parse reads an instance node's data. It fails for data that is not
// such an instance: no name, no address, a port out of range, metadata
// values that are objects or arrays. Metadata numbers and booleans are
// kept as their text, as dubbo-go reads them.
func Parse(data []byte) (Instance, error) {
	if len(data) > MaxData {
		return Instance{}, fmt.Errorf("instance: %d bytes, limit %d", len(data), MaxData)
	}
	var w wireInstance
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&w); err != nil {
		return Instance{}, fmt.Errorf("instance: %w", err)
	}
	if dec.More() {
		return Instance{}, errors.New("instance: data after the JSON object")
	}
	in := Instance{Name: w.Name, ID: w.ID, Address: w.Address, RegisteredMs: w.RegistrationTimeUTC, Metadata: map[string]string{}}
	if in.Name == "" {
		return Instance{}, errors.New("instance: no name")
	}
	if in.Address == "" || strings.ContainsAny(in.Address, "/[]") {
		return Instance{}, fmt.Errorf("instance: address %q", in.Address)
	}
	if w.Port == nil || *w.Port < 0 || *w.Port > 65535 {
		return Instance{}, errors.New("instance: no port in 0-65535")
	}
	in.Port = *w.Port
	if w.Payload != nil {
		for k, raw := range w.Payload.Metadata {
			v, err := text(raw)
			if err != nil {
				return Instance{}, fmt.Errorf("instance: metadata %q: %w", k, err)
			}
			in.Metadata[k] = v
		}
	}
	return in, nil
}

func text(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '{' || raw[0] == '[' {
		return "", errors.New("not a string, number or boolean")
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	if bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	return string(raw), nil
}

// Endpoints returns the instance's endpoints; without dubbo.endpoints, one
// dubbo endpoint at Port (dubbo-go and Dubbo dial Port with the consumer's
// protocol then; dubbo is Dubbo's default).
func (in Instance) Endpoints() ([]Endpoint, error) {
	raw, ok := in.Metadata[EndpointsKey]
	if !ok || strings.TrimSpace(raw) == "" {
		return []Endpoint{{Port: in.Port, Protocol: "dubbo"}}, nil
	}
	var eps []Endpoint
	if err := json.Unmarshal([]byte(raw), &eps); err != nil {
		return nil, fmt.Errorf("%s: %w", EndpointsKey, err)
	}
	for _, e := range eps {
		if e.Port < 1 || e.Port > 65535 || e.Protocol == "" {
			return nil, fmt.Errorf("%s: endpoint %+v", EndpointsKey, e)
		}
	}
	if len(eps) == 0 {
		return []Endpoint{{Port: in.Port, Protocol: "dubbo"}}, nil
	}
	return eps, nil
}

// Addr is ADDRESS:PORT.
func (in Instance) Addr() string { return net.JoinHostPort(in.Address, strconv.Itoa(in.Port)) }

// Marshal writes the instance as Curator writes it for Dubbo: the payload
// class, id and name beside the metadata, the id and name at the top.
func (in Instance) Marshal() []byte {
	md := make(map[string]json.RawMessage, len(in.Metadata))
	for k, v := range in.Metadata {
		b, _ := json.Marshal(v)
		md[k] = b
	}
	port := in.Port
	w := wireInstance{
		Name: in.Name, ID: in.ID, Address: in.Address, Port: &port,
		Payload:             &wirePayload{Class: curatorClass, ID: in.ID, Name: in.Name, Metadata: md},
		RegistrationTimeUTC: in.RegisteredMs, ServiceType: "DYNAMIC", URISpec: json.RawMessage("null"),
	}
	b, err := json.Marshal(w)
	if err != nil {
		panic(err) // strings and numbers only: cannot fail
	}
	return b
}

// Single returns in as an instance of its one endpoint (protocol at
// addr, HOST:PORT): address, port and dubbo.endpoints say that endpoint,
// every other field is in's. The id is id.
func Single(in Instance, id, addr, protocol string) (Instance, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Instance{}, err
	}
	p, err := registry.ParsePort(port)
	if err != nil {
		return Instance{}, err
	}
	out := in
	out.ID, out.Address, out.Port = id, host, p
	out.Metadata = maps.Clone(in.Metadata)
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	eps, _ := json.Marshal([]Endpoint{{Port: p, Protocol: protocol}})
	out.Metadata[EndpointsKey] = string(eps)
	return out, nil
}

// FromEndpoint is the instance node a registry adapter writes for ep, an
// endpoint of service APP:PROTOCOL: id ep.Addr, ep's metadata (the app's
// instance metadata and the agent's detour.* keys), its weight, and
// dubbo.endpoints naming only this endpoint.
func FromEndpoint(ep registry.Endpoint, registeredMs int64) (Instance, error) {
	app, protocol, ok := ParseServiceName(ep.Service)
	if !ok {
		return Instance{}, fmt.Errorf("service %q is not APP:PROTOCOL", ep.Service)
	}
	base := Instance{Name: app, Metadata: maps.Clone(ep.Metadata), RegisteredMs: registeredMs}
	if base.Metadata == nil {
		base.Metadata = map[string]string{}
	}
	base.Metadata[weightKey] = strconv.FormatUint(uint64(ep.Weight), 10)
	return Single(base, ep.Addr, ep.Addr, protocol)
}

// ToEndpoint reads in as an endpoint of service APP:PROTOCOL: its
// endpoint of that protocol, its metadata without dubbo.endpoints and
// the weight. ok is false when in has no endpoint of that protocol.
// metaProtocol, if not empty, is the metadata key set to "tri" for a
// Triple endpoint that does not say so already.
func ToEndpoint(service string, in Instance, metaProtocol string) (ep registry.Endpoint, ok bool, err error) {
	_, protocol, isApp := ParseServiceName(service)
	if !isApp {
		return registry.Endpoint{}, false, fmt.Errorf("service %q is not APP:PROTOCOL", service)
	}
	eps, err := in.Endpoints()
	if err != nil {
		return registry.Endpoint{}, false, err
	}
	i := slices.IndexFunc(eps, func(e Endpoint) bool { return e.Protocol == protocol })
	if i < 0 {
		return registry.Endpoint{}, false, nil
	}
	md := maps.Clone(in.Metadata)
	delete(md, EndpointsKey)
	weight := uint32(registry.DefaultWeight)
	if w, found := md[weightKey]; found {
		delete(md, weightKey)
		n, err := strconv.ParseUint(w, 10, 32)
		if err != nil {
			return registry.Endpoint{}, false, fmt.Errorf("weight %q: not a number", w)
		}
		weight = uint32(min(max(n, 1), registry.MaxWeight))
	}
	if metaProtocol != "" && protocol == "tri" && md[metaProtocol] == "" {
		md[metaProtocol] = "tri"
	}
	ep = registry.Endpoint{
		Service: service, Addr: net.JoinHostPort(in.Address, strconv.Itoa(eps[i].Port)),
		Weight: weight, Metadata: md,
	}
	ep, err = ep.Normalized()
	if err != nil {
		return registry.Endpoint{}, false, err
	}
	return ep, true, nil
}
