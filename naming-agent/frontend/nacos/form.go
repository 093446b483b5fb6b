package nacos

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
)

// instanceForm is an instance as the 1.x HTTP API's parameters give it
// (query string or form body, as Nacos reads both).
type instanceForm struct {
	key      key
	instance model.Instance
	// beat is true when the parameters came from a heartbeat's "beat"
	// JSON (it may register an instance Nacos no longer knows).
	beat bool
}

// beatInfo is the "beat" parameter of PUT /nacos/v1/ns/instance/beat.
type beatInfo struct {
	Cluster     string            `json:"cluster"`
	IP          string            `json:"ip"`
	Port        uint64            `json:"port"`
	Metadata    map[string]string `json:"metadata"`
	ServiceName string            `json:"serviceName"`
	Weight      float64           `json:"weight"`
}

// parseInstance reads an instance from v. Defaults are Nacos's: weight
// 1.0, enabled, healthy, ephemeral, cluster DEFAULT. A grouped
// serviceName ("G@@S") carries its group.
func parseInstance(v url.Values) (instanceForm, error) {
	var f instanceForm
	name, group := v.Get("serviceName"), v.Get("groupName")
	if g, s, ok := strings.Cut(name, "@@"); ok {
		if group != "" && group != g {
			return f, fmt.Errorf("serviceName %q: its group is not groupName %q", name, group)
		}
		name, group = s, g
	}
	if name == "" {
		return f, errors.New("param 'serviceName' is required")
	}
	f.key = newKey(v.Get("namespaceId"), group, name)
	in := model.Instance{Weight: 1, Enable: true, Healthy: true, Ephemeral: true, ClusterName: v.Get("clusterName")}
	if b := v.Get("beat"); b != "" {
		var bi beatInfo
		if err := json.Unmarshal([]byte(b), &bi); err != nil {
			return f, fmt.Errorf("beat: %v", err)
		}
		f.beat = true
		in.Ip, in.Port, in.Metadata, in.ClusterName = bi.IP, bi.Port, bi.Metadata, bi.Cluster
		if bi.Weight != 0 {
			in.Weight = bi.Weight
		}
	}
	if ip := v.Get("ip"); ip != "" {
		in.Ip = ip
	}
	if p := v.Get("port"); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return f, fmt.Errorf("port %q: not a port", p)
		}
		in.Port = n
	}
	if in.Ip == "" || in.Port == 0 {
		return f, errors.New("param 'ip' and 'port' are required")
	}
	var err error
	if w := v.Get("weight"); w != "" {
		if in.Weight, err = strconv.ParseFloat(w, 64); err != nil || math.IsNaN(in.Weight) {
			return f, fmt.Errorf("weight %q: not a number", w)
		}
	}
	if v.Get("enabled") == "" && v.Get("enable") != "" { // nacos-sdk-go's spelling, which Nacos takes too
		v = cloneValues(v)
		v.Set("enabled", v.Get("enable"))
	}
	for name, dst := range map[string]*bool{"enabled": &in.Enable, "healthy": &in.Healthy, "ephemeral": &in.Ephemeral} {
		if s := v.Get(name); s != "" {
			if *dst, err = strconv.ParseBool(s); err != nil {
				return f, fmt.Errorf("%s %q: not true or false", name, s)
			}
		}
	}
	if md := v.Get("metadata"); md != "" {
		if err := json.Unmarshal([]byte(md), &in.Metadata); err != nil {
			return f, fmt.Errorf("metadata: not a JSON object of strings: %v", err)
		}
	}
	f.instance = in
	return f, nil
}

// parseService reads the service a list or query names.
func parseService(v url.Values) (key, error) {
	name, group := v.Get("serviceName"), v.Get("groupName")
	if g, s, ok := strings.Cut(name, "@@"); ok {
		name, group = s, g
	}
	if name == "" {
		return key{}, errors.New("param 'serviceName' is required")
	}
	return newKey(v.Get("namespaceId"), group, name), nil
}

// intParam reads an optional integer parameter.
func intParam(v url.Values, name string, def int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a number", name, s)
	}
	return n, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
