package etcd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// entry is the value etcd's naming/endpoints manager stores: the JSON of
// its internal Update type, which keeps grpc-go's old naming.Update format.
// Op is always 0 (Add) in stored values; it is decoded only so that a value
// etcd's own reader rejects is rejected here too.
type entry struct {
	Op       uint8           `json:"Op"`
	Addr     string          `json:"Addr"`
	Metadata json.RawMessage `json:"Metadata,omitempty"`
}

// serviceKey is the key prefix of one service's entries, with the
// trailing '/': the target etcd's resolver is given, plus '/'.
func serviceKey(prefix, service string) string {
	return prefix + "/" + service + "/"
}

// encodeEntry returns the key and value of a normalized endpoint.
func encodeEntry(prefix string, ep registry.Endpoint) (key, value string) {
	md := make(map[string]string, len(ep.Metadata)+1)
	for k, v := range ep.Metadata {
		md[k] = v
	}
	md[registry.ReservedWeightKey] = strconv.FormatUint(uint64(ep.Weight), 10)
	raw, err := json.Marshal(md)
	if err != nil {
		panic(fmt.Sprintf("etcd: marshal metadata: %v", err)) // a map[string]string always marshals
	}
	v, err := json.Marshal(entry{Addr: ep.Addr, Metadata: raw})
	if err != nil {
		panic(fmt.Sprintf("etcd: marshal entry: %v", err))
	}
	return serviceKey(prefix, ep.Service) + ep.Addr, string(v)
}

// decodeEntry parses the entry at key, which must lie under
// serviceKey(prefix, service). It accepts whatever etcd's endpoints manager
// writes: Metadata that is absent, null or not an object counts as empty;
// object members that are not strings are kept as their JSON text. The
// weight comes from the "weight" member (a decimal string or a number) and
// is removed from Metadata; a missing, zero or unreadable weight means
// registry.DefaultWeight, one above registry.MaxWeight means MaxWeight.
//
// It fails for a key with no address or a nested path, a value that is not
// a JSON object of the right shape, a missing Addr, an Addr that differs
// from the key's, and an Addr registry.ValidateAddr refuses.
func decodeEntry(prefix, service string, key, value []byte) (registry.Endpoint, error) {
	sk := serviceKey(prefix, service)
	addr, ok := strings.CutPrefix(string(key), sk)
	switch {
	case !ok:
		return registry.Endpoint{}, fmt.Errorf("key is not under %q", sk)
	case addr == "":
		return registry.Endpoint{}, errors.New("key has no address")
	case strings.Contains(addr, "/"):
		return registry.Endpoint{}, fmt.Errorf("key has a nested path %q", addr)
	}
	var e entry
	if err := json.Unmarshal(value, &e); err != nil {
		return registry.Endpoint{}, fmt.Errorf("value: %w", err)
	}
	switch {
	case e.Addr == "":
		return registry.Endpoint{}, errors.New("value has no Addr")
	case e.Addr != addr:
		return registry.Endpoint{}, fmt.Errorf("value Addr %q differs from the key's %q", e.Addr, addr)
	}
	if err := registry.ValidateAddr(e.Addr); err != nil {
		return registry.Endpoint{}, err
	}
	md, weight := decodeMetadata(e.Metadata)
	return registry.Endpoint{Service: service, Addr: e.Addr, Weight: weight, Metadata: md}, nil
}

// decodeMetadata turns raw Metadata into string pairs and a weight.
func decodeMetadata(raw json.RawMessage) (map[string]string, uint32) {
	md := map[string]string{}
	var members map[string]json.RawMessage
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &members) != nil {
		return md, registry.DefaultWeight
	}
	for k, v := range members {
		var s string
		if json.Unmarshal(v, &s) == nil {
			md[k] = s
			continue
		}
		var buf bytes.Buffer
		if json.Compact(&buf, v) == nil {
			md[k] = buf.String()
		}
	}
	weight := parseWeight(md[registry.ReservedWeightKey])
	delete(md, registry.ReservedWeightKey)
	return md, weight
}

// parseWeight reads a weight written as a decimal string or a JSON number
// by another client; see decodeEntry.
func parseWeight(s string) uint32 {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		switch {
		case n == 0:
			return registry.DefaultWeight
		case n > registry.MaxWeight:
			return registry.MaxWeight
		}
		return uint32(n)
	}
	// 1e3, 50.5, or a decimal too long for 32 bits.
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 1 {
		return uint32(min(f, registry.MaxWeight))
	}
	return registry.DefaultWeight
}
