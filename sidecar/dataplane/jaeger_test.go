package dataplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// jaegerConfig is an all-in-one configuration with only what the test
// uses, on the ports it picked: OTLP/gRPC in, memory storage, the query
// API (HTTP and its gRPC twin, which jaeger_query always opens). The
// collector's own metrics are off, so nothing listens on a fixed port and
// two runs on one machine do not collide.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%d
processors:
  batch:
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// TestTracesAtJaeger: the two hops' spans at a real collector, Jaeger's
// all-in-one binary ($DETOUR_JAEGER, which scripts/test.sh builds with
// scripts/jaeger.sh into bin/jaeger/jaeger), on free ports. Without it
// the test skips, or fails when CI=true.
//
//	bash scripts/jaeger.sh build bin/jaeger && DETOUR_JAEGER=$PWD/bin/jaeger/jaeger go test -run TestTracesAtJaeger -v ./sidecar/dataplane/
func TestTracesAtJaeger(t *testing.T) {
	bin := os.Getenv("DETOUR_JAEGER")
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("$DETOUR_JAEGER is not set: scripts/test.sh builds Jaeger (scripts/jaeger.sh build bin/jaeger) and sets it")
		}
		t.Skip("$DETOUR_JAEGER is not set (bash scripts/jaeger.sh build bin/jaeger; DETOUR_JAEGER=$PWD/bin/jaeger/jaeger)")
	}
	dir := t.TempDir()
	query, queryGRPC, otlp := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	conf := filepath.Join(dir, "jaeger.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, jaegerConfig, query, queryGRPC, otlp), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "jaeger.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited; logf.Close() })
	jaegerLog := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	queryURL := fmt.Sprintf("http://127.0.0.1:%d", query)
	// Jaeger starts in a second or two; a loaded CI machine gets a minute.
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(queryURL + "/api/services")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("jaeger exited: %v\n%s", cmd.ProcessState, jaegerLog())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger's query API at %s not up in a minute:\n%s", queryURL, jaegerLog())
		}
	}

	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	cfg := Default()
	cfg.OTLPEndpoint = fmt.Sprintf("127.0.0.1:%d", otlp)
	app := httpApp(t, tagHandler("b"), "127.0.0.1")
	b := &remote{ip: "127.0.0.3", port: app, ingress: freePort(t, "127.0.0.3"), health: freePort(t, "127.0.0.3")}
	b.dp = newDP(t, cfg)
	if err := b.dp.Apply(context.Background(), &sidecarpb.Snapshot{Version: 1, HostIp: b.ip, HealthListen: hp(b.ip, b.health),
		Ingress:   []*sidecarpb.IngressListener{{Service: "web", Listen: hp(b.ip, b.ingress), Target: hp("127.0.0.1", app), Protocol: H}},
		AppChecks: []*sidecarpb.AppCheck{{Service: "web", Target: hp("127.0.0.1", app), Kind: "tcp", Check: fastCheck()}}}); err != nil {
		t.Fatal(err)
	}
	a := newDP(t, cfg)
	egress := hp("127.0.0.2", freePort(t, "127.0.0.2"))
	if err := a.Apply(context.Background(), egressSnap(1, egress, clusterOf("web", H, b.endpoint()))); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, a, "web", b)
	var id [16]byte
	rand.Read(id[:])
	traceID := hex.EncodeToString(id[:])
	const appSpan = "00f067aa0ba902b7"
	req, _ := http.NewRequest(http.MethodGet, "http://"+egress+"/x", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+appSpan+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()

	type span struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
	}
	var got []span
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("jaeger has %d spans of trace %s:\n%s", len(got), traceID, jaegerLog())
		}
		<-time.After(500 * time.Millisecond)
		resp, err := http.Get(queryURL + "/api/traces/" + traceID)
		if err != nil {
			continue
		}
		var doc struct {
			Data []struct {
				Spans []span `json:"spans"`
			} `json:"data"`
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if len(doc.Data) > 0 {
			got = doc.Data[0].Spans
		}
	}
	byName := map[string]span{}
	for _, s := range got {
		byName[s.OperationName] = s
	}
	e, i := byName["egress web"], byName["ingress web"]
	if len(e.References) != 1 || e.References[0].SpanID != appSpan || len(i.References) != 1 || i.References[0].SpanID != e.SpanID {
		t.Fatalf("spans at jaeger not linked: %+v", got)
	}
	t.Logf("figure: trace %s at jaeger: egress span %s (child of the app's %s), ingress span %s (child of the egress span)", traceID, e.SpanID, appSpan, i.SpanID)
}
