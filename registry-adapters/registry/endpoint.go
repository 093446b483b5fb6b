package registry

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultWeight is the weight of an endpoint registered with Weight 0.
// It matches Dubbo's default; the Nacos adapter maps it to weight 100.0.
const DefaultWeight = 100

// MaxWeight bounds Weight; registries disagree above it.
const MaxWeight = 10000

// Limits on what Register accepts, chosen so an endpoint fits any of the
// three registries (a ZooKeeper node name, an etcd value, a Nacos
// instance) with room to spare.
const (
	MaxServiceLen    = 255
	MaxMetadataKey   = 128
	MaxMetadataValue = 4096
	MaxMetadataTotal = 16 << 10
)

// ReservedWeightKey is the metadata key adapters store Weight under where
// the registry has no field of its own for it (etcd). It is not allowed in
// Endpoint.Metadata.
const ReservedWeightKey = "weight"

// Endpoint is one instance of a service as the registry holds it.
type Endpoint struct {
	// Service is the service name: "greeter",
	// "org.apache.dubbo.demo.DemoService". See ValidateService.
	Service string
	// Addr is the address callers dial, "host:port".
	Addr string
	// Weight is the relative share of traffic; 0 means DefaultWeight.
	Weight uint32
	// Metadata is free-form and round-trips exactly. detour keeps the
	// app's real port, the protocol and the mesh state here.
	Metadata map[string]string
}

// Normalized validates e and returns a copy with defaults filled in
// (Weight) and its own Metadata map, so the caller's map can change
// afterwards without touching the registration. The error wraps ErrInvalid
// and names the field.
func (e Endpoint) Normalized() (Endpoint, error) {
	if err := ValidateService(e.Service); err != nil {
		return Endpoint{}, err
	}
	if err := ValidateAddr(e.Addr); err != nil {
		return Endpoint{}, err
	}
	if e.Weight > MaxWeight {
		return Endpoint{}, fmt.Errorf("%w: weight %d: must be at most %d", ErrInvalid, e.Weight, MaxWeight)
	}
	if err := validateMetadata(e.Metadata); err != nil {
		return Endpoint{}, err
	}
	if e.Weight == 0 {
		e.Weight = DefaultWeight
	}
	e.Metadata = maps.Clone(e.Metadata)
	if e.Metadata == nil {
		e.Metadata = map[string]string{}
	}
	return e, nil
}

// Equal reports whether e and o describe the same endpoint exactly. A nil
// and an empty Metadata are equal.
func (e Endpoint) Equal(o Endpoint) bool {
	return e.Service == o.Service && e.Addr == o.Addr && e.Weight == o.Weight &&
		maps.Equal(e.Metadata, o.Metadata)
}

// String is for logs: "service@addr".
func (e Endpoint) String() string { return e.Service + "@" + e.Addr }

// ValidateService checks a service name: 1 to 255 bytes of ASCII letters,
// digits, '.', '_', ':' and '-', starting with a letter or digit. The set
// keeps names safe as an etcd key segment, a ZooKeeper node name and a
// Nacos service name alike; '/' in particular would split an etcd key or a
// ZooKeeper path.
func ValidateService(name string) error {
	if name == "" {
		return fmt.Errorf("%w: service: must not be empty", ErrInvalid)
	}
	if len(name) > MaxServiceLen {
		return fmt.Errorf("%w: service %.32q...: longer than %d bytes", ErrInvalid, name, MaxServiceLen)
	}
	if !isAlnum(name[0]) {
		return fmt.Errorf("%w: service %q: must start with a letter or digit", ErrInvalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return fmt.Errorf("%w: service %q: character %q at %d not allowed (letters, digits, '.', '_', ':', '-')", ErrInvalid, name, c, i)
		}
	}
	return nil
}

// ValidateAddr checks an address a remote caller can dial: "host:port"
// where host is an IP literal (IPv6 in brackets) or a DNS name, and port is
// 1 to 65535. Unspecified addresses (0.0.0.0, ::) are refused: nobody can
// dial them from another host.
func ValidateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: addr %q: %v", ErrInvalid, addr, err)
	}
	if _, err := ParsePort(port); err != nil {
		return fmt.Errorf("%w: addr %q: %v", ErrInvalid, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%w: addr %q: missing host", ErrInvalid, addr)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("%w: addr %q: unspecified IP cannot be dialled from another host", ErrInvalid, addr)
		}
		return nil
	}
	if strings.Contains(host, ":") || strings.Contains(host, "%") {
		return fmt.Errorf("%w: addr %q: bad IP literal", ErrInvalid, addr)
	}
	if !isHostname(host) {
		return fmt.Errorf("%w: addr %q: host is neither an IP nor a DNS name", ErrInvalid, addr)
	}
	return nil
}

// ParsePort parses a decimal TCP port, 1 to 65535.
func ParsePort(s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("port %q: not a number", s)
	}
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %d: out of range 1-65535", p)
	}
	return p, nil
}

func validateMetadata(md map[string]string) error {
	total := 0
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		if k == "" || len(k) > MaxMetadataKey {
			return fmt.Errorf("%w: metadata key %.32q: must be 1 to %d bytes", ErrInvalid, k, MaxMetadataKey)
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
				return fmt.Errorf("%w: metadata key %q: character %q not allowed (letters, digits, '.', '_', '-')", ErrInvalid, k, c)
			}
		}
		if k == ReservedWeightKey {
			return fmt.Errorf("%w: metadata key %q: reserved, use Endpoint.Weight", ErrInvalid, k)
		}
		if len(v) > MaxMetadataValue {
			return fmt.Errorf("%w: metadata[%q]: value longer than %d bytes", ErrInvalid, k, MaxMetadataValue)
		}
		if !utf8Printable(v) {
			return fmt.Errorf("%w: metadata[%q]: value must be printable UTF-8", ErrInvalid, k)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataTotal {
		return fmt.Errorf("%w: metadata: %d bytes in all, limit %d", ErrInvalid, total, MaxMetadataTotal)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isHostname accepts RFC 1123 names: dot-separated labels of letters,
// digits and inner hyphens, each 1 to 63 bytes, 253 bytes in all.
func isHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func utf8Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
