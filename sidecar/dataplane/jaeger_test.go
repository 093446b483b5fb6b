//go:build jaeger

package dataplane

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// TestTracesAtJaeger: the two hops' spans at a real collector, Jaeger's
// all-in-one binary ($DETOUR_JAEGER; OTLP/gRPC on 127.0.0.1:4317, query
// API on :16686). Opt-in (go test -tags jaeger): Jaeger is not among the
// servers `make test` installs.
//
//	go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@v1.75.0 (in a scratch module), then
//	DETOUR_JAEGER=/path/to/jaeger go test -tags jaeger -run TestTracesAtJaeger -v ./sidecar/dataplane/
func TestTracesAtJaeger(t *testing.T) {
	bin := os.Getenv("DETOUR_JAEGER")
	if bin == "" {
		t.Fatal("$DETOUR_JAEGER: the jaeger binary")
	}
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir()
	logf, err := os.Create(filepath.Join(cmd.Dir, "jaeger.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	eventually(t, "jaeger's query API", func() bool {
		resp, err := http.Get("http://127.0.0.1:16686/api/services")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})

	const H = sidecarpb.Protocol_PROTOCOL_HTTP
	cfg := Default()
	cfg.OTLPEndpoint = "127.0.0.1:4317"
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
	traceID := "5bf92f3577b34da6a3ce929d0e0e47" + time.Now().Format("05")
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
			t.Fatalf("jaeger has %d spans of trace %s", len(got), traceID)
		}
		<-time.After(500 * time.Millisecond)
		resp, err := http.Get("http://127.0.0.1:16686/api/traces/" + traceID)
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
