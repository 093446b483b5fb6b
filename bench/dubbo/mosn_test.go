package dubbobench

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/detourmesh/detour/internal/testbed"
)

// startMOSN runs MOSN (DETOUR_BENCH_MOSN, built outside the project) as
// one Dubbo proxy on ip in front of the provider: a listener with the
// `proxy` filter (downstream_protocol dubbo), a route on the service
// header every Dubbo request carries, a cluster of the one provider.
func (f *benchFixture) startMOSN(ctx context.Context, bin, ip string) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return err
	}
	f.mosnAddr = ln.Addr().String()
	ln.Close()
	cfg := map[string]any{
		"disable_upgrade": true,
		"servers": []any{map[string]any{
			"default_log_path": filepath.Join(f.dir, "mosn.log"), "default_log_level": "ERROR",
			"routers": []any{map[string]any{
				"router_config_name": "dubbo_router",
				"virtual_hosts": []any{map[string]any{
					"name": "dubbo", "domains": []string{"*"},
					"routers": []any{map[string]any{
						"match": map[string]any{"headers": []any{map[string]any{"name": "service", "value": ".*"}}},
						"route": map[string]any{"cluster_name": "provider"},
					}},
				}},
			}},
			"listeners": []any{map[string]any{
				"name": "dubbo", "address": f.mosnAddr, "bind_port": true,
				"filter_chains": []any{map[string]any{"filters": []any{map[string]any{
					"type":   "proxy",
					"config": map[string]any{"downstream_protocol": "dubbo", "upstream_protocol": "dubbo", "router_config_name": "dubbo_router"},
				}}}},
			}},
		}},
		"cluster_manager": map[string]any{"clusters": []any{map[string]any{
			"name": "provider", "type": "SIMPLE", "lb_type": "LB_RANDOM", "max_request_per_conn": 1024,
			"conn_buffer_limit_bytes": 32768, "hosts": []any{map[string]any{"address": f.app}},
		}}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(f.dir, "mosn.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	f.mosn, err = testbed.StartEnv("mosn", bin, filepath.Join(f.dir, "mosn.out"), []string{"GOMAXPROCS=1"}, "start", "-c", path)
	if err != nil {
		return err
	}
	return testbed.Poll(ctx, 30*time.Second, "a call through MOSN on "+f.mosnAddr+" (log: "+strconv.Quote(filepath.Join(f.dir, "mosn.out"))+")", func() bool {
		_, err := call(f.mosnAddr)
		return err == nil
	})
}
