package nacos

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "github.com/nacos-group/nacos-sdk-go/v2/api/grpc"
	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/internal/nacoswire/nacoswiretest"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

func grpcAddr(t *testing.T, s testServer) string {
	t.Helper()
	host, port := splitAddr(t, s.addr)
	return host + ":" + itoa(int(port)+GRPCPortOffset)
}

func itoa(i int) string { return strconv.Itoa(i) }

func dial(t *testing.T, s testServer, setup bool) *nacoswiretest.Client {
	t.Helper()
	c, err := nacoswiretest.Dial(grpcAddr(t, s), setup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// errorOf returns the error code of an ErrorResponse, 0 for anything else.
func errorOf(t *testing.T, p *pb.Payload) int {
	t.Helper()
	if p.GetMetadata().GetType() != nacoswire.TypeErrorResp {
		return 0
	}
	var r nacoswire.Response
	if err := nacoswire.Decode(p, &r); err != nil {
		t.Fatal(err)
	}
	return r.ErrorCode
}

// TestBadRequests: malformed payloads, unknown types and invalid
// instances get Nacos's ErrorResponse; nothing is published.
func TestBadRequests(t *testing.T) {
	core := frontendtest.NewFakeCore()
	s := startServer(t, core)
	c := dial(t, s, true)
	good := model.Instance{Ip: "127.0.0.1", Port: 80, Weight: 1, Enable: true, Ephemeral: true}
	with := func(edit func(*model.Instance)) nacoswire.NamingRequest {
		in := good
		edit(&in)
		return nacoswire.NamingRequest{ServiceName: "greeter", Type: "registerInstance", Instance: in}
	}
	for name, tc := range map[string]struct {
		typ  string
		body any
		code int
	}{
		"unknown type":   {"ConfigQueryRequest", map[string]string{"dataId": "x"}, nacoswire.CodeNoHandler},
		"no type":        {"", map[string]string{}, nacoswire.CodeNoHandler},
		"bad name":       {nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: "a/b", Type: "registerInstance", Instance: good}, nacoswire.CodeBadRequest},
		"empty name":     {nacoswire.TypeInstance, nacoswire.NamingRequest{Type: "registerInstance", Instance: good}, nacoswire.CodeBadRequest},
		"bad op":         {nacoswire.TypeInstance, nacoswire.NamingRequest{ServiceName: "greeter", Type: "explode", Instance: good}, nacoswire.CodeBadRequest},
		"bad ip":         {nacoswire.TypeInstance, with(func(in *model.Instance) { in.Ip = "example.com" }), nacoswire.CodeBadRequest},
		"port 0":         {nacoswire.TypeInstance, with(func(in *model.Instance) { in.Port = 0 }), nacoswire.CodeBadRequest},
		"weight":         {nacoswire.TypeInstance, with(func(in *model.Instance) { in.Weight = 10001 }), nacoswire.CodeBadRequest},
		"cluster":        {nacoswire.TypeInstance, with(func(in *model.Instance) { in.ClusterName = "a b" }), nacoswire.CodeBadRequest},
		"persistent":     {nacoswire.TypeInstance, with(func(in *model.Instance) { in.Ephemeral = false }), nacoswire.CodeBadRequest},
		"reserved key":   {nacoswire.TypeInstance, with(func(in *model.Instance) { in.Metadata = map[string]string{ClusterKey: "x"} }), nacoswire.CodeBadRequest},
		"empty batch":    {nacoswire.TypeBatchInstance, nacoswire.NamingRequest{ServiceName: "greeter", Type: "batchRegisterInstance"}, nacoswire.CodeBadRequest},
		"batch bad item": {nacoswire.TypeBatchInstance, nacoswire.NamingRequest{ServiceName: "greeter", Type: "batchRegisterInstance", Instances: []model.Instance{good, {Ip: "x"}}}, nacoswire.CodeBadRequest},
	} {
		p, err := c.Raw(tc.typ, tc.body)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := errorOf(t, p); got != tc.code {
			t.Errorf("%s: error code %d, want %d", name, got, tc.code)
		}
	}
	if p, err := c.Raw("ConfigQueryRequest", map[string]string{"dataId": "d", "group": "g"}); err != nil {
		t.Fatal(err)
	} else {
		var r nacoswire.Response
		_ = nacoswire.Decode(p, &r)
		if !strings.Contains(r.Message, "serves naming only") {
			t.Errorf("config request: %q, want it to say the config center is not served", r.Message)
		}
	}
	for _, body := range [][]byte{nil, []byte("{"), []byte(`{"instance":{"port":-1}}`), []byte(`[]`), {0xff, 0xfe}} {
		p, err := c.RawBytes(nacoswire.TypeInstance, body)
		if err != nil {
			t.Fatal(err)
		}
		if got := errorOf(t, p); got != nacoswire.CodeBadRequest {
			t.Errorf("body %q: error code %d, want %d", body, got, nacoswire.CodeBadRequest)
		}
	}
	// A message over max_message_bytes: gRPC refuses it (ResourceExhausted).
	if _, err := c.RawBytes(nacoswire.TypeInstance, bytes.Repeat([]byte("x"), 2<<20)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a message over the limit: %v, want ResourceExhausted", err)
	}
	if core.Pubs() != 0 {
		t.Fatalf("%d publications after bad requests", core.Pubs())
	}
	// The server still serves.
	if err := c.Do(nacoswire.TypeInstance, with(func(*model.Instance) {}), nil); err != nil || core.Pubs() != 1 {
		t.Fatalf("good register after bad ones: %v, %d publications", err, core.Pubs())
	}
}

// TestUnsetUpConnections: a request on a connection that never sent its
// setup is answered "unregistered" (the SDK reconnects then); the
// connection is closed after SetupTimeout; past MaxConnections a
// connection is closed at once.
func TestUnsetUpConnections(t *testing.T) {
	core := frontendtest.NewFakeCore()
	s := startServer(t, core, func(c *Config) { c.SetupTimeout = 300 * time.Millisecond; c.MaxConnections = 2 })
	c := dial(t, s, false)
	p, err := c.Raw(nacoswire.TypeHealthCheck, map[string]any{})
	if err == nil && errorOf(t, p) != nacoswire.CodeUnregistered {
		t.Fatalf("request before setup: %v", p)
	}
	eventually(t, "the connection closed without setup", func() bool { return s.ConnCount() == 0 })

	a, b := dial(t, s, true), dial(t, s, true)
	_, _ = a, b
	if _, err := nacoswiretest.Dial(grpcAddr(t, s), true); err == nil {
		t.Fatal("a third connection past max_connections was served")
	}
	if n := s.ConnCount(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

// FuzzPayload feeds the request handler any payload type and body on a
// set-up connection: it answers every one with a Nacos payload, and an
// ErrorResponse changes nothing.
func FuzzPayload(f *testing.F) {
	f.Add(nacoswire.TypeInstance, []byte(`{"serviceName":"s","type":"registerInstance","instance":{"ip":"127.0.0.1","port":80,"enabled":true,"ephemeral":true}}`))
	f.Add(nacoswire.TypeBatchInstance, []byte(`{"serviceName":"s","type":"batchRegisterInstance","instances":[{"ip":"::1","port":1,"weight":0.5,"ephemeral":true}]}`))
	f.Add(nacoswire.TypeServiceQuery, []byte(`{"serviceName":"s","cluster":"a,b","healthyOnly":true}`))
	f.Add(nacoswire.TypeSubscribeService, []byte(`{"serviceName":"s","groupName":"g","namespace":"n","subscribe":true}`))
	f.Add(nacoswire.TypeServiceList, []byte(`{"pageNo":3,"pageSize":2}`))
	f.Add(nacoswire.TypeHealthCheck, []byte(`{}`))
	f.Add("Nope", []byte(`{"requestId":1}`))
	core := frontendtest.NewFakeCore()
	cfg := Default()
	s, err := New(cfg, core)
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	c := &conn{id: "fuzz", setupDone: make(chan struct{}), wake: make(chan struct{}, 1), quit: make(chan struct{}), pushDone: make(chan struct{}),
		published: map[string]key{}, subscribed: map[key]map[string]bool{}, pending: map[key]bool{}, setup: true}
	close(c.setupDone)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // queries answer at once, without waiting for a first view
	f.Fuzz(func(t *testing.T, typ string, body []byte) {
		before := core.Owned("")
		p := s.handle(ctx, c, &pb.Payload{Metadata: &pb.Metadata{Type: typ}, Body: &anypb.Any{Value: body}})
		if p.GetMetadata().GetType() == "" {
			t.Fatalf("answer without a type: %v", p)
		}
		var r nacoswire.Response
		if err := nacoswire.Decode(p, &r); err != nil {
			t.Fatalf("answer does not decode: %v", err)
		}
		if !r.Success && len(core.Owned("")) != len(before) {
			t.Fatalf("an error answer changed the publications: %d -> %d", len(before), len(core.Owned("")))
		}
	})
}
