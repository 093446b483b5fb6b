package etcd

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/detourmesh/detour/registry-adapters/registry"
)

const testPrefix = "detour/services"

func TestEncodeEntry(t *testing.T) {
	ep, err := registry.Endpoint{Service: "greeter", Addr: "10.0.0.1:15001", Weight: 42,
		Metadata: map[string]string{"detour.port": "8080", "b": "<&>"}}.Normalized()
	if err != nil {
		t.Fatal(err)
	}
	key, value := encodeEntry(testPrefix, ep)
	if want := "detour/services/greeter/10.0.0.1:15001"; key != want {
		t.Errorf("key = %q, want %q", key, want)
	}
	// The exact bytes etcd's endpoints manager writes for the same
	// endpoint: Op, Addr, Metadata in that order, keys sorted.
	want := `{"Op":0,"Addr":"10.0.0.1:15001","Metadata":{"b":"\u003c\u0026\u003e","detour.port":"8080","weight":"42"}}`
	if value != want {
		t.Errorf("value =\n %s\nwant\n %s", value, want)
	}
	got, err := decodeEntry(testPrefix, "greeter", []byte(key), []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(ep) {
		t.Errorf("round trip = %+v, want %+v", got, ep)
	}
}

func TestDecodeEntry(t *testing.T) {
	const svc = "greeter"
	key := "detour/services/greeter/10.0.0.1:9000"
	tests := []struct {
		name    string
		key     string // default key
		value   string
		want    registry.Endpoint // Service and Addr filled in
		wantErr string
	}{
		// What etcd's endpoints manager and other clients write.
		{name: "manager, no metadata", value: `{"Op":0,"Addr":"10.0.0.1:9000","Metadata":null}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "metadata absent", value: `{"Addr":"10.0.0.1:9000"}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "metadata a string", value: `{"Op":0,"Addr":"10.0.0.1:9000","Metadata":"v1"}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "metadata an array", value: `{"Addr":"10.0.0.1:9000","Metadata":[1,2]}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "metadata a number", value: `{"Addr":"10.0.0.1:9000","Metadata":7}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "metadata empty object", value: `{"Addr":"10.0.0.1:9000","Metadata":{}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "non-string members kept as JSON, null as empty", value: `{"Addr":"10.0.0.1:9000","Metadata":{"v":2, "ok":true, "n":null, "o":{ "a" : [1, 2] }}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{"v": "2", "ok": "true", "n": "", "o": `{"a":[1,2]}`}}},
		{name: "detour entry", value: `{"Op":0,"Addr":"10.0.0.1:9000","Metadata":{"detour.port":"8080","weight":"42"}}`,
			want: registry.Endpoint{Weight: 42, Metadata: map[string]string{"detour.port": "8080"}}},
		{name: "weight as a number", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":7}}`,
			want: registry.Endpoint{Weight: 7, Metadata: map[string]string{}}},
		{name: "weight fractional", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":"7.9"}}`,
			want: registry.Endpoint{Weight: 7, Metadata: map[string]string{}}},
		{name: "weight zero", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":"0"}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "weight negative", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":"-5"}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "weight garbage", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":"heavy"}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "weight too big", value: `{"Addr":"10.0.0.1:9000","Metadata":{"weight":"99999999999999999999"}}`,
			want: registry.Endpoint{Weight: registry.MaxWeight, Metadata: map[string]string{}}},
		{name: "unknown fields ignored", value: `{"Addr":"10.0.0.1:9000","Zone":"a","Metadata":{"k":"v"}}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{"k": "v"}}},
		{name: "field names are case-insensitive, as for etcd's reader", value: `{"addr":"10.0.0.1:9000"}`,
			want: registry.Endpoint{Weight: 100, Metadata: map[string]string{}}},
		{name: "ipv6", key: "detour/services/greeter/[::1]:9000", value: `{"Addr":"[::1]:9000"}`,
			want: registry.Endpoint{Addr: "[::1]:9000", Weight: 100, Metadata: map[string]string{}}},
		{name: "dns name", key: "detour/services/greeter/db-1.example.com:5432", value: `{"Addr":"db-1.example.com:5432"}`,
			want: registry.Endpoint{Addr: "db-1.example.com:5432", Weight: 100, Metadata: map[string]string{}}},

		// Malformed.
		{name: "not json", value: `garbage`, wantErr: "value:"},
		{name: "empty value", value: ``, wantErr: "value:"},
		{name: "json array", value: `[1]`, wantErr: "value:"},
		{name: "json null", value: `null`, wantErr: "no Addr"},
		{name: "truncated", value: `{"Addr":"10.0.0.1:9000"`, wantErr: "value:"},
		{name: "addr missing", value: `{"Metadata":{}}`, wantErr: "no Addr"},
		{name: "addr not a string", value: `{"Addr":9000}`, wantErr: "value:"},
		{name: "op not a number", value: `{"Op":"add","Addr":"10.0.0.1:9000"}`, wantErr: "value:"},
		{name: "addr differs from key", value: `{"Addr":"10.0.0.2:9000"}`, wantErr: "differs"},
		{name: "addr invalid", key: "detour/services/greeter/0.0.0.0:9000", value: `{"Addr":"0.0.0.0:9000"}`, wantErr: "unspecified"},
		{name: "addr without port", key: "detour/services/greeter/10.0.0.1", value: `{"Addr":"10.0.0.1"}`, wantErr: "addr"},
		{name: "key without addr", key: "detour/services/greeter/", value: `{"Addr":"10.0.0.1:9000"}`, wantErr: "no address"},
		{name: "nested key", key: "detour/services/greeter/x/10.0.0.1:9000", value: `{"Addr":"10.0.0.1:9000"}`, wantErr: "nested"},
		{name: "other service", key: "detour/services/greeter2/10.0.0.1:9000", value: `{"Addr":"10.0.0.1:9000"}`, wantErr: "not under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.key
			if k == "" {
				k = key
			}
			got, err := decodeEntry(testPrefix, svc, []byte(k), []byte(tt.value))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decodeEntry = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeEntry: %v", err)
			}
			want := tt.want
			want.Service = svc
			if want.Addr == "" {
				want.Addr = "10.0.0.1:9000"
			}
			if !got.Equal(want) {
				t.Errorf("decodeEntry =\n %s\nwant\n %s", show(got), show(want))
			}
		})
	}
}

func show(ep registry.Endpoint) string {
	return fmt.Sprintf("%s weight=%d metadata=%q", ep, ep.Weight, ep.Metadata)
}

// FuzzDecodeEntry checks that decodeEntry never panics, and that whatever
// it accepts encodes to an entry that decodes to the same endpoint.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []struct{ addr, value string }{
		{"10.0.0.1:9000", `{"Op":0,"Addr":"10.0.0.1:9000","Metadata":{"detour.port":"8080","weight":"42"}}`},
		{"10.0.0.1:9000", `{"Op":0,"Addr":"10.0.0.1:9000","Metadata":null}`},
		{"10.0.0.1:9000", `{"Addr":"10.0.0.1:9000","Metadata":{"v":2,"o":{"a":[1,2]},"weight":7}}`},
		{"[::1]:9000", `{"Addr":"[::1]:9000","Metadata":"x"}`},
		{"h.example:1", `{"Addr":"h.example:1","Metadata":{"weight":"1e9","u":"grüße \u0000"}}`},
		{"10.0.0.1:9000", `garbage`},
		{"10.0.0.1:9000", `{"Addr":"10.0.0.2:9000"}`},
		{"x/10.0.0.1:9000", `{"Addr":"10.0.0.1:9000"}`},
	} {
		f.Add(s.addr, []byte(s.value))
	}
	f.Fuzz(func(t *testing.T, addr string, value []byte) {
		key := []byte(serviceKey(testPrefix, "svc") + addr)
		ep, err := decodeEntry(testPrefix, "svc", key, value)
		if err != nil {
			return
		}
		if ep.Service != "svc" || ep.Addr != addr {
			t.Fatalf("decoded %+v from key %q", ep, key)
		}
		if ep.Weight < 1 || ep.Weight > registry.MaxWeight {
			t.Fatalf("weight %d out of range", ep.Weight)
		}
		if _, ok := ep.Metadata[registry.ReservedWeightKey]; ok {
			t.Fatalf("metadata keeps the reserved weight key: %v", ep.Metadata)
		}
		k2, v2 := encodeEntry(testPrefix, ep)
		if !json.Valid([]byte(v2)) {
			t.Fatalf("encoded invalid JSON %q", v2)
		}
		again, err := decodeEntry(testPrefix, "svc", []byte(k2), []byte(v2))
		if err != nil {
			t.Fatalf("re-decoding %q: %v", v2, err)
		}
		if !again.Equal(ep) {
			t.Fatalf("round trip changed %+v into %+v", ep, again)
		}
		if !maps.Equal(again.Metadata, ep.Metadata) {
			t.Fatalf("metadata changed")
		}
	})
}
