// Package dubbourl reads and writes Dubbo URLs as Dubbo, dubbo-go and
// detour put them in the names of ZooKeeper provider and consumer nodes.
// It is shared by the ZooKeeper adapter and the agent's ZooKeeper front
// end, so there is one codec for the format.
package dubbourl

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

// URL is a Dubbo URL as Dubbo, dubbo-go and detour put it in the name of
// a provider node:
//
//	protocol://host:port/path?key=value&key=value
//
// Dubbo (Java) and dubbo-go write parameter values as they are, then encode
// the whole URL once (URLEncoder / url.QueryEscape) to make the node name.
// Inside the URL this codec percent-encodes only the few bytes that would
// break a reader ('%', '&', '+', '#', ';', control bytes, and '=' in keys),
// so what Dubbo writes reads back unchanged, ordinary values stay readable
// to Dubbo, and any value this adapter writes round-trips exactly.
type URL struct {
	Protocol string
	Host     string // an IPv6 literal without brackets
	Port     int
	Path     string // without the leading '/'
	Params   map[string]string
}

// Parse parses a decoded Dubbo URL (not a node name: see
// ParseNodeName). It is lenient where Dubbo is: user info is dropped, a
// parameter without '=' has an empty value, a later duplicate wins, a '%'
// that does not start an escape is kept as it is, and '+' is a plus sign.
func Parse(s string) (URL, error) {
	proto, rest, ok := strings.Cut(s, "://")
	if !ok {
		return URL{}, errors.New("missing protocol://")
	}
	if !ValidProtocol(proto) {
		return URL{}, fmt.Errorf("bad protocol %q", proto)
	}
	rest, query, _ := strings.Cut(rest, "?")
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = authority[at+1:]
	}
	host, port, err := splitHostPort(authority)
	if err != nil {
		return URL{}, err
	}
	return URL{
		Protocol: proto,
		Host:     host,
		Port:     port,
		Path:     unescape(path),
		Params:   parseParams(query),
	}, nil
}

// String formats u with its parameters sorted by key, as Dubbo does.
func (u URL) String() string {
	var b strings.Builder
	b.WriteString(u.Protocol)
	b.WriteString("://")
	b.WriteString(net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
	b.WriteByte('/')
	b.WriteString(escape(u.Path, pathSpecial))
	for i, k := range slices.Sorted(maps.Keys(u.Params)) {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(escape(k, keySpecial))
		b.WriteByte('=')
		b.WriteString(escape(u.Params[k], valueSpecial))
	}
	return b.String()
}

// NodeName is u encoded as a ZooKeeper node name, the way Dubbo
// (URL.encode) and dubbo-go (url.QueryEscape) encode it.
func (u URL) NodeName() string { return url.QueryEscape(u.String()) }

// ParseNodeName decodes a provider node name and parses the URL in it.
func ParseNodeName(name string) (URL, error) {
	s, err := url.QueryUnescape(name)
	if err != nil {
		return URL{}, fmt.Errorf("node name is not URL-encoded: %w", err)
	}
	return Parse(s)
}

// ValidProtocol reports whether p can be a Dubbo URL's scheme.
func ValidProtocol(p string) bool {
	if p == "" || !isLetter(p[0]) {
		return false
	}
	for i := 1; i < len(p); i++ {
		c := p[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '+' && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// splitHostPort splits "host:port" or "[ipv6]:port". An IPv6 literal
// without brackets ("::1:20880") is split at its last colon, as Dubbo
// writes it that way.
func splitHostPort(a string) (string, int, error) {
	var host, port string
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("address %q: missing ']'", a)
		}
		host = a[1:end]
		rest, ok := strings.CutPrefix(a[end+1:], ":")
		if !ok {
			return "", 0, fmt.Errorf("address %q: no port", a)
		}
		port = rest
	} else {
		i := strings.LastIndexByte(a, ':')
		if i < 0 {
			return "", 0, fmt.Errorf("address %q: no port", a)
		}
		host, port = a[:i], a[i+1:]
	}
	if host == "" {
		return "", 0, fmt.Errorf("address %q: no host", a)
	}
	if strings.ContainsAny(host, "[]") {
		return "", 0, fmt.Errorf("address %q: bad host", a)
	}
	p, err := registry.ParsePort(port)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", a, err)
	}
	return host, p, nil
}

func parseParams(q string) map[string]string {
	params := map[string]string{}
	for kv := range strings.SplitSeq(q, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if k = unescape(k); k != "" {
			params[k] = unescape(v)
		}
	}
	return params
}

// Bytes escaped inside the URL, besides control bytes and '%'. A value may
// hold '=' (readers split a pair at its first '='); dubbo-go's url.Parse
// ends the query at '#', its url.ParseQuery rejects ';' and reads '+' as a
// space; '?' would end a path.
const (
	valueSpecial = "&+#;"
	keySpecial   = valueSpecial + "="
	pathSpecial  = valueSpecial + "?"
)

func mustEscape(c byte, special string) bool {
	return c < 0x20 || c == 0x7f || c == '%' || strings.IndexByte(special, c) >= 0
}

func escape(s, special string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i], special) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		if c := s[i]; mustEscape(c, special) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// unescape decodes %XX escapes and keeps any other '%' as it is.
func unescape(s string) string {
	if strings.IndexByte(s, '%') < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
