package nacos

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/detourmesh/detour/naming-agent/frontend"
	"github.com/detourmesh/detour/naming-agent/frontend/frontendtest"
)

// call sends an HTTP request as curl would (parameters in the query
// string, or a form body) and returns the status and body.
func call(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHTTPAPI drives the 1.x Open API as Nacos's docs show it with
// curl: register (query string and form), list with clusters and
// healthyOnly, beat, service list, deregister; heartbeat expiry ends an
// ephemeral instance; a persistent one stays; what is not naming is a
// clear 501.
func TestHTTPAPI(t *testing.T) {
	core := frontendtest.NewFakeCore()
	// Beats go every 200 ms against 2 s: a loaded machine may stall the
	// test for a while without the instance ending while it beats.
	s := startServer(t, core, func(c *Config) { c.BeatTimeout = 2 * time.Second })
	base := "http://" + s.addr + "/nacos/v1/ns"

	if code, body := call(t, "POST", base+"/instance?serviceName=nacos.naming.serviceName&ip=127.0.0.1&port=8080&weight=0.5&clusterName=c1&metadata=%7B%22k%22%3A%22v%22%7D", nil); code != 200 || body != "ok" {
		t.Fatalf("register: %d %q", code, body)
	}
	p, ok := core.Pub("nacos.naming.serviceName")
	if !ok || p.Owner != ownerHTTP || p.Weight != 50 || p.Metadata["k"] != "v" || p.Metadata[ClusterKey] != "c1" || p.Port != 8080 {
		t.Fatalf("publication = %+v, %v", p, ok)
	}
	core.SetView(frontend.View{Service: "nacos.naming.serviceName", Known: true, Instances: []frontend.Instance{
		{Addr: "10.0.0.1:8080", Weight: 50, Metadata: map[string]string{ClusterKey: "c1", "k": "v"}},
		{Addr: "10.0.0.2:8080", Weight: 100},
	}})
	var list listJSON
	code, body := call(t, "GET", base+"/instance/list?serviceName=nacos.naming.serviceName&clusters=c1&healthyOnly=true", nil)
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("list: %d %q %v", code, body, err)
	}
	if list.Name != "DEFAULT_GROUP@@nacos.naming.serviceName" || len(list.Hosts) != 1 || list.Hosts[0].Ip != "10.0.0.1" ||
		list.Hosts[0].Weight != 0.5 || list.Hosts[0].ClusterName != "c1" || list.Hosts[0].Metadata["k"] != "v" || !strings.Contains(body, `"instanceIdGenerator":"simple"`) {
		t.Fatalf("list = %s", body)
	}

	// Beats keep it; without them it ends.
	for range 3 {
		code, body = call(t, "PUT", base+"/instance/beat?serviceName=nacos.naming.serviceName&ip=127.0.0.1&port=8080", nil)
		if code != 200 || !strings.Contains(body, `"code":10200`) {
			t.Fatalf("beat: %d %q", code, body)
		}
		<-time.After(200 * time.Millisecond)
	}
	if _, ok := core.Pub("nacos.naming.serviceName"); !ok {
		t.Fatal("ended although beating")
	}
	eventually(t, "the instance to end without beats", func() bool { _, ok := core.Pub("nacos.naming.serviceName"); return !ok })
	code, body = call(t, "PUT", base+"/instance/beat?serviceName=nacos.naming.serviceName&ip=127.0.0.1&port=8080", nil)
	if code != 200 || !strings.Contains(body, `"code":20404`) {
		t.Fatalf("beat of an expired instance: %d %q", code, body)
	}
	// A beat with its data registers it again, as Nacos 1.x does.
	beat := url.QueryEscape(`{"ip":"127.0.0.1","port":8080,"cluster":"c1","serviceName":"nacos.naming.serviceName","weight":2}`)
	if code, body = call(t, "PUT", base+"/instance/beat?serviceName=nacos.naming.serviceName&beat="+beat, nil); code != 200 || !strings.Contains(body, `"code":10200`) {
		t.Fatalf("beat with data: %d %q", code, body)
	}
	if p, ok := core.Pub("nacos.naming.serviceName"); !ok || p.Weight != 200 {
		t.Fatalf("re-registered by a beat: %+v, %v", p, ok)
	}
	// Nothing may be on a timer when the bad input below counts the
	// publications (under load that section can outlast the timeout).
	eventually(t, "the re-registered instance to end without beats", func() bool { _, ok := core.Pub("nacos.naming.serviceName"); return !ok })

	// A persistent instance in a group, by form body; deregistered by DELETE.
	form := url.Values{"serviceName": {"orders"}, "groupName": {"g1"}, "ip": {"127.0.0.1"}, "port": {"9090"}, "ephemeral": {"false"}}
	if code, body := call(t, "POST", base+"/instance", form); code != 200 {
		t.Fatalf("persistent register: %d %q", code, body)
	}
	if p, ok := core.Pub("g1::orders"); !ok || p.Owner != ownerPersistent {
		t.Fatalf("persistent publication = %+v, %v", p, ok)
	}
	code, body = call(t, "GET", base+"/service/list?groupName=g1&pageNo=1&pageSize=10", nil)
	if code != 200 || body != `{"count":1,"doms":["orders"]}`+"\n" {
		t.Fatalf("service list: %d %q", code, body)
	}
	if code, body := call(t, "DELETE", base+"/instance?"+form.Encode(), nil); code != 200 || body != "ok" {
		t.Fatalf("deregister: %d %q", code, body)
	}
	if _, ok := core.Pub("g1::orders"); ok {
		t.Fatal("still published after DELETE")
	}

	// Readiness; not naming; bad input.
	if code, body := call(t, "GET", "http://"+s.addr+"/nacos/v1/console/health/readiness", nil); code != 200 || body != "OK" {
		t.Fatalf("readiness: %d %q", code, body)
	}
	if code, body := call(t, "GET", "http://"+s.addr+"/nacos/v1/cs/configs?dataId=a&group=b", nil); code != 501 || !strings.Contains(body, "config center") {
		t.Fatalf("config center: %d %q", code, body)
	}
	if code, body := call(t, "POST", "http://"+s.addr+"/nacos/v1/auth/login", nil); code != 501 || !strings.Contains(body, "authentication") {
		t.Fatalf("login: %d %q", code, body)
	}
	before := core.Pubs()
	for _, q := range []string{
		"serviceName=s&ip=127.0.0.1",                        // no port
		"serviceName=s&ip=127.0.0.1&port=99999",             // bad port
		"serviceName=a%2Fb&ip=127.0.0.1&port=1",             // bad name
		"serviceName=s&ip=127.0.0.1&port=1&weight=x",        // bad weight
		"serviceName=s&ip=127.0.0.1&port=1&weight=10001",    // weight out of range
		"serviceName=s&ip=127.0.0.1&port=1&metadata=%7B",    // bad metadata
		"serviceName=s&ip=127.0.0.1&port=1&enabled=maybe",   // bad bool
		"serviceName=s&ip=127.0.0.1&port=1&clusterName=a+b", // bad cluster
		"ip=127.0.0.1&port=1",                               // no service
	} {
		if code, body := call(t, "POST", base+"/instance?"+q, nil); code != 400 || !strings.HasPrefix(body, "caused: ") {
			t.Errorf("register %s: %d %q, want 400", q, code, body)
		}
	}
	big := url.Values{"serviceName": {"s"}, "ip": {"127.0.0.1"}, "port": {"1"}, "metadata": {strings.Repeat("x", 2<<20)}}
	if code, _ := call(t, "POST", base+"/instance", big); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the limit: %d, want 413", code)
	}
	if core.Pubs() != before {
		t.Fatalf("bad requests changed the publications: %d -> %d", before, core.Pubs())
	}
}

// FuzzForm feeds the 1.x API's parameter parsing any query: it returns
// an instance that publicationOf takes or refuses, or an error; never a
// panic.
func FuzzForm(f *testing.F) {
	f.Add("serviceName=s&ip=127.0.0.1&port=8080&weight=0.5&metadata=%7B%22k%22%3A%22v%22%7D")
	f.Add("serviceName=g%40%40s&groupName=g&ip=::1&port=1&ephemeral=false&enabled=true")
	f.Add("serviceName=s&beat=%7B%22ip%22%3A%2210.0.0.1%22%2C%22port%22%3A80%7D")
	f.Add("serviceName=s&ip=1.2.3.4&port=0x50&weight=NaN")
	f.Fuzz(func(t *testing.T, query string) {
		v, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		form, err := parseInstance(v)
		if err != nil {
			return
		}
		if mesh, err := form.key.mesh(); err == nil {
			_, _ = publicationOf(mesh, form.instance, ownerHTTP)
		}
	})
}

// TestHTTPRefusesWebPages: a form POST a web page makes to the loopback
// front end (no CORS preflight for it) registers nothing.
func TestHTTPRefusesWebPages(t *testing.T) {
	core := frontendtest.NewFakeCore()
	s := startServer(t, core)
	form := url.Values{"serviceName": {"web.page"}, "ip": {"127.0.0.1"}, "port": {"8080"}}
	req, err := http.NewRequest("POST", "http://"+s.addr+"/nacos/v1/ns/instance", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d, want 403", resp.StatusCode)
	}
	if _, ok := core.Pub("web.page"); ok {
		t.Error("a web page's form registered an instance")
	}
}
