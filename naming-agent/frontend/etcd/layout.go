package etcd

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/detourmesh/detour/naming-agent/frontend"
)

// Metadata keys the front end keeps beside an app's own fields.
const (
	// mdLayout names the layout a registration came in: a reader of the
	// same prefix is answered in it (go-zero and endpoints share keys).
	mdLayout = "etcd.layout"
	// mdRaw keeps a metadata value that is not a JSON object, as text.
	mdRaw = "etcd.metadata"
)

// layout is one configured entry of the layout list.
type layout struct {
	kind, prefix string
}

// registration is an app's write of a service key, parsed.
type registration struct {
	service  string
	host     string
	port     int
	protocol string
	weight   uint32
	metadata map[string]string
}

// errNotLayout: the key is not one of this layout's.
var errNotLayout = errors.New("not a key of this layout")

// parse reads a Put of key with value under lease. errNotLayout: the
// key is not this layout's; another error: it is, but the value does
// not parse (kept unrewritten, with a warning).
func (l layout) parse(key string, value []byte, lease int64) (registration, error) {
	rest, ok := strings.CutPrefix(key, l.prefix)
	if !ok {
		return registration{}, errNotLayout
	}
	i := strings.LastIndexByte(rest, '/')
	if i <= 0 || i == len(rest)-1 {
		return registration{}, errNotLayout
	}
	svc, id := rest[:i], rest[i+1:]
	switch l.kind {
	case KindEndpoints:
		return parseEndpoints(svc, id, value)
	case KindGoZero:
		return parseGoZero(svc, id, value, lease)
	case KindKratos:
		if strings.Contains(svc, "/") {
			return registration{}, errNotLayout
		}
		return parseKratos(svc, value)
	case KindKitex:
		if strings.Contains(svc, "/") {
			return registration{}, errNotLayout
		}
		return parseKitex(svc, id, value)
	}
	return registration{}, errNotLayout
}

// splitAddr parses host:port strictly.
func splitAddr(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 || h == "" || strings.ContainsAny(h, " /\"") {
		return "", 0, fmt.Errorf("address %q: want host:port", addr)
	}
	return h, port, nil
}

// parseEndpoints: the value is the endpoints manager's JSON and its Addr
// the key's last segment; anything else is not this layout's (a plain
// key that happens to contain a '/').
func parseEndpoints(svc, id string, value []byte) (registration, error) {
	var e struct {
		Op       *int            `json:"Op"`
		Addr     *string         `json:"Addr"`
		Metadata json.RawMessage `json:"Metadata"`
	}
	if json.Unmarshal(value, &e) != nil || e.Addr == nil || *e.Addr != id {
		return registration{}, errNotLayout
	}
	h, p, err := splitAddr(id)
	if err != nil {
		return registration{}, errNotLayout
	}
	return registration{service: svc, host: h, port: p, protocol: "grpc", metadata: jsonMetadata(e.Metadata)}, nil
}

// jsonMetadata flattens a JSON object: string members as they are,
// others as their JSON text; a value that is not an object is kept whole.
func jsonMetadata(raw json.RawMessage) map[string]string {
	md := map[string]string{}
	if len(raw) == 0 || string(raw) == "null" {
		return md
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		md[mdRaw] = string(raw)
		return md
	}
	for k, v := range obj {
		var s string
		if json.Unmarshal(v, &s) == nil {
			md[k] = s
		} else {
			md[k] = string(v)
		}
	}
	return md
}

// unflatten is jsonMetadata's inverse (JSON text members come back as
// JSON values); nil for no metadata.
func unflatten(md map[string]string) any {
	if raw, ok := md[mdRaw]; ok && json.Valid([]byte(raw)) {
		return json.RawMessage(raw)
	}
	obj := map[string]any{}
	for k, v := range md {
		if k == mdLayout || strings.HasPrefix(k, "kratos.") || strings.HasPrefix(k, "kitex.") {
			continue
		}
		if v != "" && (v[0] == '{' || v[0] == '[') && json.Valid([]byte(v)) {
			obj[k] = json.RawMessage(v)
		} else {
			obj[k] = v
		}
	}
	if len(obj) == 0 {
		return nil
	}
	return obj
}

// parseGoZero: "<key>/<id>" whose value is a bare host:port; the id is
// a number (go-zero's lease id, or its WithId).
func parseGoZero(svc, id string, value []byte, lease int64) (registration, error) {
	if _, err := strconv.ParseInt(id, 10, 64); err != nil {
		return registration{}, errNotLayout
	}
	h, p, err := splitAddr(string(value))
	if err != nil {
		return registration{}, errNotLayout
	}
	_ = lease
	return registration{service: svc, host: h, port: p, protocol: "grpc", metadata: map[string]string{mdLayout: KindGoZero}}, nil
}

type kratosInstance struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Version   string            `json:"version"`
	Metadata  map[string]string `json:"metadata"`
	Endpoints []string          `json:"endpoints"`
}

// parseKratos: the first grpc:// or http:// endpoint is the published
// one (the sidecar carries one port per service).
func parseKratos(svc string, value []byte) (registration, error) {
	var ki kratosInstance
	if err := json.Unmarshal(value, &ki); err != nil {
		return registration{}, fmt.Errorf("kratos value: %w", err)
	}
	for _, ep := range ki.Endpoints {
		scheme, addr, ok := strings.Cut(ep, "://")
		if !ok || (scheme != "grpc" && scheme != "http") {
			continue
		}
		addr, _, _ = strings.Cut(addr, "?")
		h, p, err := splitAddr(addr)
		if err != nil {
			continue
		}
		md := map[string]string{mdLayout: KindKratos, "kratos.id": ki.ID, "kratos.version": ki.Version, "kratos.scheme": scheme}
		for k, v := range ki.Metadata {
			md[k] = v
		}
		return registration{service: svc, host: h, port: p, protocol: scheme, metadata: md}, nil
	}
	return registration{}, errors.New("kratos value: no grpc:// or http:// endpoint")
}

type kitexInstance struct {
	Network string            `json:"network"`
	Address string            `json:"address"`
	Weight  int               `json:"weight"`
	Tags    map[string]string `json:"tags"`
}

func parseKitex(svc, id string, value []byte) (registration, error) {
	var ki kitexInstance
	if err := json.Unmarshal(value, &ki); err != nil {
		return registration{}, fmt.Errorf("kitex value: %w", err)
	}
	h, p, err := splitAddr(ki.Address)
	if err != nil {
		return registration{}, fmt.Errorf("kitex value: %w", err)
	}
	if ki.Address != id {
		return registration{}, fmt.Errorf("kitex value: address %q differs from the key's %q", ki.Address, id)
	}
	md := map[string]string{mdLayout: KindKitex, "kitex.network": ki.Network}
	for k, v := range ki.Tags {
		md[k] = v
	}
	w := uint32(0)
	if ki.Weight > 0 {
		w = uint32(min(ki.Weight, 10000))
	}
	return registration{service: svc, host: h, port: p, protocol: "tcp", weight: w, metadata: md}, nil
}

// readSpace is the service a Range or Watch reads, in a layout: the
// range must be the prefix of one service's keys.
type readSpace struct {
	kind, prefix, service string
}

// id names the view the read is answered from.
func (r readSpace) id() string { return r.prefix + "\x00" + r.service }

// keyPrefix is the prefix of the service's keys.
func (r readSpace) keyPrefix() string { return r.prefix + r.service + "/" }

// readOf returns the service a prefix read [key, end) is of, if any.
// Endpoints and go-zero share the unprefixed space ("S/"): which of the
// two answers is decided by the instances (see render).
func readOf(layouts []layout, statePrefix, key, end string) (readSpace, bool) {
	if end == "" || end != prefixEnd(key) {
		return readSpace{}, false
	}
	for _, l := range layouts {
		if l.prefix == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(key, l.prefix); ok {
			rest = strings.TrimSuffix(rest, "/") // Kratos reads "/microservices/S"
			if rest == "" || strings.Contains(rest, "/") {
				return readSpace{}, false
			}
			return readSpace{kind: l.kind, prefix: l.prefix, service: rest}, true
		}
	}
	if !strings.HasSuffix(key, "/") || len(key) < 2 || strings.HasPrefix(key, statePrefix) {
		return readSpace{}, false
	}
	for _, l := range layouts {
		if l.prefix == "" {
			return readSpace{kind: l.kind, service: key[:len(key)-1]}, true
		}
	}
	return readSpace{}, false
}

// prefixEnd is clientv3.GetPrefixRangeEnd.
func prefixEnd(key string) string {
	b := []byte(key)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// render is what a reader of r sees of view: one key per instance, or
// one at the egress while the mesh carries the service. Unprefixed
// services are shown as go-zero's if an instance came in as go-zero's.
func render(r readSpace, v frontend.View) map[string][]byte {
	out := map[string][]byte{}
	if !v.Known || len(v.Instances) == 0 {
		return out
	}
	kind := r.kind
	if r.prefix == "" {
		kind = KindEndpoints
		for _, in := range v.Instances {
			if in.Metadata[mdLayout] == KindGoZero {
				kind = KindGoZero
			}
		}
	}
	insts := v.Instances
	if v.Mesh && v.Egress != "" {
		one := insts[0]
		one.Addr = v.Egress
		insts = []frontend.Instance{one}
	}
	for _, in := range insts {
		k, val := renderOne(kind, r, in)
		out[k] = val
	}
	return out
}

func renderOne(kind string, r readSpace, in frontend.Instance) (string, []byte) {
	base := r.keyPrefix()
	switch kind {
	case KindGoZero:
		h := fnv.New64a()
		h.Write([]byte(in.Addr))
		return base + strconv.FormatUint(h.Sum64()>>1, 10), []byte(in.Addr)
	case KindKratos:
		scheme := in.Metadata["kratos.scheme"]
		if scheme == "" {
			scheme = "grpc"
		}
		md := map[string]string{}
		for k, v := range in.Metadata {
			if k != mdLayout && !strings.HasPrefix(k, "kratos.") {
				md[k] = v
			}
		}
		id := in.Metadata["kratos.id"]
		if id == "" {
			id = in.Addr
		}
		b, _ := json.Marshal(kratosInstance{ID: id, Name: r.service, Version: in.Metadata["kratos.version"], Metadata: md,
			Endpoints: []string{scheme + "://" + in.Addr}})
		return base + id, b
	case KindKitex:
		tags := map[string]string{}
		for k, v := range in.Metadata {
			if k != mdLayout && !strings.HasPrefix(k, "kitex.") {
				tags[k] = v
			}
		}
		network := in.Metadata["kitex.network"]
		if network == "" {
			network = "tcp"
		}
		b, _ := json.Marshal(kitexInstance{Network: network, Address: in.Addr, Weight: int(in.Weight), Tags: tags})
		return base + in.Addr, b
	}
	b, _ := json.Marshal(struct {
		Op       int
		Addr     string
		Metadata any
	}{Addr: in.Addr, Metadata: unflatten(in.Metadata)})
	return base + in.Addr, b
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
