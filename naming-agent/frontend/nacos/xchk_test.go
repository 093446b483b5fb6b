package nacos

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/internal/nacoswire/nacoswiretest"
	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest/xchk"
	"github.com/detourmesh/detour/registry-adapters/nacos/nacostestserver"
)

// mirrorCore is an agent without a sidecar: a publication is at once the
// service's one real instance in its view.
type mirrorCore struct{ *frontendtest.FakeCore }

func (m mirrorCore) Publish(p frontend.Publication) error {
	if err := m.FakeCore.Publish(p); err != nil {
		return err
	}
	m.SetView(frontend.View{Service: p.Service, Known: true, Instances: []frontend.Instance{{
		Addr: net.JoinHostPort(p.Host, strconv.Itoa(p.Port)), Weight: p.Weight, Metadata: p.Metadata,
	}}})
	return nil
}

func (m mirrorCore) Unpublish(owner, service string) error {
	if err := m.FakeCore.Unpublish(owner, service); err != nil {
		return err
	}
	m.SetView(frontend.View{Service: service, Known: true})
	return nil
}

// xside is one server as the steps use it: a registering and a
// subscribing connection.
type xside struct{ reg, sub *nacoswiretest.Client }

// TestXchkTestServer runs the same requests against the in-repo Nacos
// test server and the front end (on an agent without a sidecar, so
// answers carry the real instance) and compares the answers field by
// field: codes of successes and errors, and every field of the
// instances a query, a subscription and a push return.
func TestXchkTestServer(t *testing.T) {
	ts, err := nacostestserver.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	core := mirrorCore{frontendtest.NewFakeCore()}
	core.SetView(frontend.View{Service: "xchk", Known: true}) // the registry answered: none
	fe := startServer(t, core)
	sides := func(addr string) xside {
		reg, err := nacoswiretest.Dial(addr, true)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := nacoswiretest.Dial(addr, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { reg.Close(); sub.Close() })
		return xside{reg, sub}
	}
	real, front := sides(ts.GRPCAddr()), sides(grpcAddr(t, fe))

	const svc = "xchk"
	in := model.Instance{Ip: "127.0.0.1", Port: 8080, Weight: 2.5, Enable: true, Healthy: true, Ephemeral: true,
		ClusterName: "c1", Metadata: map[string]string{"k": "v"}}
	// ask sends a request and answers with the response's codes.
	ask := func(c *nacoswiretest.Client, typ string, req any) xchk.Answer {
		p, err := c.Raw(typ, req)
		if err != nil {
			return xchk.F("err", err.Error())
		}
		var r nacoswire.Response
		_ = nacoswire.Decode(p, &r)
		return xchk.F("type", p.GetMetadata().GetType(), "success", r.Success, "resultCode", r.ResultCode, "errorCode", r.ErrorCode)
	}
	hosts := func(info model.Service) xchk.Answer {
		a := xchk.F("name", info.Name, "groupName", info.GroupName, "valid", info.Valid, "hosts", len(info.Hosts))
		for i, h := range info.Hosts {
			a = append(a, xchk.F(
				"host"+strconv.Itoa(i), []any{h.InstanceId, h.Ip, h.Port, h.Weight, h.Healthy, h.Enable, h.Ephemeral, h.ClusterName, h.ServiceName, h.Metadata},
			)...)
		}
		return a
	}
	// query polls until the service has want hosts (the front end's
	// view follows its publication a moment later), or 2 s pass.
	query := func(want int) func(xside) xchk.Answer {
		return func(s xside) xchk.Answer {
			var r nacoswire.ServiceResponse
			for deadline := time.Now().Add(2 * time.Second); ; <-time.After(5 * time.Millisecond) {
				if err := s.reg.Do(nacoswire.TypeServiceQuery, nacoswire.NamingRequest{ServiceName: svc}, &r); err != nil {
					return xchk.F("err", err.Error())
				}
				if len(r.ServiceInfo.Hosts) == want || time.Now().After(deadline) {
					return hosts(r.ServiceInfo)
				}
			}
		}
	}
	register := func(in model.Instance) nacoswire.NamingRequest {
		return nacoswire.NamingRequest{ServiceName: svc, Type: "registerInstance", Instance: in}
	}
	heavier := in
	heavier.Weight = 5
	persistent := in
	persistent.Ephemeral = false
	badWeight := in
	badWeight.Weight = 10001

	steps := []xchk.Step[xside]{
		{Name: "query before any", Do: query(0)},
		{Name: "subscribe", Do: func(s xside) xchk.Answer {
			var r nacoswire.ServiceResponse
			if err := s.sub.Do(nacoswire.TypeSubscribeService, nacoswire.NamingRequest{ServiceName: svc, Subscribe: true}, &r); err != nil {
				return xchk.F("err", err.Error())
			}
			return hosts(r.ServiceInfo)
		}},
		{Name: "register", Do: func(s xside) xchk.Answer { return ask(s.reg, nacoswire.TypeInstance, register(in)) }},
		{Name: "query", Do: query(1)},
		{Name: "register again, heavier", Do: func(s xside) xchk.Answer { return ask(s.reg, nacoswire.TypeInstance, register(heavier)) }},
		{Name: "push with the heavier instance", Do: func(s xside) xchk.Answer {
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); <-time.After(5 * time.Millisecond) {
				pushes := s.sub.Pushes()
				if len(pushes) == 0 {
					continue
				}
				var n nacoswire.NotifyRequest
				if err := nacoswire.Decode(pushes[len(pushes)-1], &n); err != nil {
					return xchk.F("err", err.Error())
				}
				if len(n.ServiceInfo.Hosts) == 1 && n.ServiceInfo.Hosts[0].Weight == 5 {
					return append(xchk.F("type", pushes[len(pushes)-1].GetMetadata().GetType(), "module", n.Module), hosts(n.ServiceInfo)...)
				}
			}
			return xchk.F("push", "none with the heavier instance in 2 s")
		}},
		{Name: "service list", Do: func(s xside) xchk.Answer {
			var r nacoswire.ServiceListResponse
			if err := s.reg.Do(nacoswire.TypeServiceList, nacoswire.NamingRequest{PageNo: 1, PageSize: 10}, &r); err != nil {
				return xchk.F("err", err.Error())
			}
			return xchk.F("count", r.Count, "names", r.ServiceNames)
		}},
		{Name: "unknown type", Do: func(s xside) xchk.Answer { return ask(s.reg, "ConfigQueryRequest", map[string]string{"dataId": "d"}) }},
		{Name: "no service name", Do: func(s xside) xchk.Answer {
			return ask(s.reg, nacoswire.TypeInstance, nacoswire.NamingRequest{Type: "registerInstance", Instance: in})
		}},
		{Name: "weight out of range", Do: func(s xside) xchk.Answer { return ask(s.reg, nacoswire.TypeInstance, register(badWeight)) }},
		{Name: "persistent over gRPC", Do: func(s xside) xchk.Answer { return ask(s.reg, nacoswire.TypeInstance, register(persistent)) }},
		{Name: "unknown instance request type", Do: func(s xside) xchk.Answer {
			return ask(s.reg, nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: svc, Type: "explode", Instance: in})
		}},
		{Name: "empty batch", Do: func(s xside) xchk.Answer {
			return ask(s.reg, nacoswire.TypeBatchInstance, nacoswire.NamingRequest{ServiceName: svc, Type: "batchRegisterInstance"})
		}},
		{Name: "query after bad requests", Do: query(1)},
		{Name: "deregister", Do: func(s xside) xchk.Answer {
			return ask(s.reg, nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: svc, Type: "deregisterInstance", Instance: in})
		}},
		{Name: "query after deregister", Do: query(0)},
	}
	r := xchk.Run(t, real, front, steps)
	t.Logf("xchk: %d steps, %d fields compared, %d mismatches", r.Steps, r.Fields, len(r.Mismatches))
}
