package agent

import (
	"testing"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// Each declared protocol gets its handling in the sidecar: Dubbo's own
// protocol its per-call proxy, Triple the gRPC one.
func TestProtocolOf(t *testing.T) {
	for in, want := range map[string]sidecarpb.Protocol{
		"": sidecarpb.Protocol_PROTOCOL_TCP, "tcp": sidecarpb.Protocol_PROTOCOL_TCP,
		"http": sidecarpb.Protocol_PROTOCOL_HTTP, "grpc": sidecarpb.Protocol_PROTOCOL_GRPC,
		"tri": sidecarpb.Protocol_PROTOCOL_GRPC, "dubbo": sidecarpb.Protocol_PROTOCOL_DUBBO,
	} {
		if got := protocolOf(in); got != want {
			t.Errorf("protocolOf(%q) = %v, want %v", in, got, want)
		}
	}
}
