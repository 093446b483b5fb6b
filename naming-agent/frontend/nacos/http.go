package nacos

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/nacos-group/nacos-sdk-go/v2/model"
	"go.uber.org/zap"

	"github.com/detourmesh/detour/internal/httpbody"
	"github.com/detourmesh/detour/internal/nacoswire"
	"github.com/detourmesh/detour/internal/nobrowser"
)

// Nacos 1.x heartbeat answer codes.
const (
	beatOK       = 10200
	beatNotFound = 20404
)

// beating is an HTTP-registered ephemeral instance, kept while its app
// sends heartbeats. Beats are kept per mesh service: the agent holds
// one publication per service and host.
type beating struct {
	key  key
	addr string // ip:port
	last time.Time
}

// httpHandler serves the 1.x HTTP Open API for naming.
func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /nacos/v1/ns/instance", s.httpRegister)
	mux.HandleFunc("PUT /nacos/v1/ns/instance", s.httpRegister)
	mux.HandleFunc("DELETE /nacos/v1/ns/instance", s.httpDeregister)
	mux.HandleFunc("GET /nacos/v1/ns/instance/list", s.httpList)
	mux.HandleFunc("PUT /nacos/v1/ns/instance/beat", s.httpBeat)
	mux.HandleFunc("GET /nacos/v1/ns/service/list", s.httpServiceList)
	mux.HandleFunc("GET /nacos/v1/console/health/readiness", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "OK") })
	mux.HandleFunc("GET /nacos/v1/console/health/liveness", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "OK") })
	mux.HandleFunc("GET /nacos/v1/ns/operator/metrics", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, map[string]any{"status": "UP"})
	})
	notServed := func(what string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "detour's Nacos front end serves naming only: "+what+" ("+r.URL.Path+") is not served here; point that client at the real Nacos", http.StatusNotImplemented)
		}
	}
	mux.HandleFunc("/nacos/v1/cs/", notServed("the config center"))
	mux.HandleFunc("/nacos/v2/cs/", notServed("the config center"))
	mux.HandleFunc("/nacos/v1/auth/", notServed("authentication (this server checks no credentials; it listens on loopback)"))
	mux.HandleFunc("/nacos/v1/console/", notServed("the console"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "detour's Nacos front end: no such API: "+r.Method+" "+r.URL.Path+" (naming: /nacos/v1/ns/instance, /instance/list, /instance/beat, /service/list)", http.StatusNotFound)
	})
	// Web pages are refused as on the agent's own API: a page the host's
	// user opens could otherwise register an instance by a form POST.
	return nobrowser.Refuse(httpbody.Limit(int64(s.cfg.MaxMessageBytes), mux))
}

// badRequest answers 400 as Nacos does: text, "caused: ...".
func badRequest(w http.ResponseWriter, err error) {
	http.Error(w, "caused: "+err.Error()+";", http.StatusBadRequest)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_ = json.NewEncoder(w).Encode(v)
}

// httpRegister: POST (register) and PUT (update) /nacos/v1/ns/instance.
func (s *Server) httpRegister(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		badRequest(w, err)
		return
	}
	f, err := parseInstance(r.Form)
	if err != nil {
		badRequest(w, err)
		return
	}
	if err := s.registerHTTP(f); err != nil {
		badRequest(w, err)
		return
	}
	fmt.Fprint(w, "ok")
}

// registerHTTP publishes an instance registered over HTTP: ephemeral
// ones owned by "nacos/http" and kept by beats, the others by
// "nacos/persistent" until deleted. A disabled instance is withdrawn.
func (s *Server) registerHTTP(f instanceForm) error {
	mesh, err := f.key.mesh()
	if err != nil {
		return err
	}
	owner := httpOwner(f.instance.Ephemeral)
	pub, err := publicationOf(mesh, f.instance, owner)
	if err != nil {
		return err
	}
	if !f.instance.Enable {
		s.withdrawHTTP(mesh, owner)
		return nil
	}
	if err := s.core.Publish(pub); err != nil {
		return err
	}
	s.mu.Lock()
	s.known[f.key] = true
	if f.instance.Ephemeral {
		s.beats[mesh] = &beating{key: f.key, addr: fmt.Sprintf("%s:%d", pub.Host, pub.Port), last: s.now()}
	} else {
		delete(s.beats, mesh)
	}
	s.mu.Unlock()
	s.log.Info("instance published over HTTP", zap.String("service", mesh), zap.String("addr", fmt.Sprintf("%s:%d", pub.Host, pub.Port)), zap.String("owner", owner))
	return nil
}

func (s *Server) withdrawHTTP(mesh, owner string) {
	s.mu.Lock()
	delete(s.beats, mesh)
	s.mu.Unlock()
	s.unpublish(owner, mesh, "deregistered over HTTP")
}

// instanceRequest reads an instance form and its mesh name, the part
// every instance request (deregister, beat) starts with.
func instanceRequest(r *http.Request) (instanceForm, string, error) {
	if err := r.ParseForm(); err != nil {
		return instanceForm{}, "", err
	}
	f, err := parseInstance(r.Form)
	if err != nil {
		return instanceForm{}, "", err
	}
	mesh, err := f.key.mesh()
	return f, mesh, err
}

// httpOwner: who owns an instance registered over HTTP — the beats for
// an ephemeral one, else nobody but a delete.
func httpOwner(ephemeral bool) string {
	if ephemeral {
		return ownerHTTP
	}
	return ownerPersistent
}

// httpDeregister: DELETE /nacos/v1/ns/instance.
func (s *Server) httpDeregister(w http.ResponseWriter, r *http.Request) {
	f, mesh, err := instanceRequest(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	owner := httpOwner(f.instance.Ephemeral)
	s.withdrawHTTP(mesh, owner)
	fmt.Fprint(w, "ok")
}

// httpBeat: PUT /nacos/v1/ns/instance/beat. A beat for an instance the
// server does not hold registers it from the beat's data, as Nacos 1.x
// does (the agent restarted); without that data it is 20404, and the
// client registers again.
func (s *Server) httpBeat(w http.ResponseWriter, r *http.Request) {
	f, mesh, err := instanceRequest(r)
	if err != nil {
		badRequest(w, err)
		return
	}
	addr := fmt.Sprintf("%s:%d", f.instance.Ip, f.instance.Port)
	s.mu.Lock()
	b := s.beats[mesh]
	held := b != nil && b.addr == addr
	if held {
		b.last = s.now()
	}
	s.mu.Unlock()
	code := beatOK
	switch {
	case held:
	case f.beat:
		f.instance.Ephemeral = true
		if err := s.registerHTTP(f); err != nil {
			badRequest(w, err)
			return
		}
	default:
		code = beatNotFound
	}
	writeJSON(w, map[string]any{"clientBeatInterval": nacoswire.HeartBeatInterval, "code": code, "lightBeatEnabled": true})
}

// sweepBeats ends HTTP ephemeral instances without a beat for
// BeatTimeout.
func (s *Server) sweepBeats() {
	s.mu.Lock()
	var expired []string
	for mesh, b := range s.beats {
		if s.now().Sub(b.last) > s.cfg.BeatTimeout {
			delete(s.beats, mesh)
			expired = append(expired, mesh)
		}
	}
	s.mu.Unlock()
	for _, mesh := range expired {
		s.unpublish(ownerHTTP, mesh, "no heartbeat for "+s.cfg.BeatTimeout.String())
	}
}

// listJSON is GET /nacos/v1/ns/instance/list's answer, in 1.x's shape.
type listJSON struct {
	Name                     string     `json:"name"`
	GroupName                string     `json:"groupName"`
	Clusters                 string     `json:"clusters"`
	CacheMillis              uint64     `json:"cacheMillis"`
	Hosts                    []hostJSON `json:"hosts"`
	LastRefTime              uint64     `json:"lastRefTime"`
	Checksum                 string     `json:"checksum"`
	AllIPs                   bool       `json:"allIPs"`
	ReachProtectionThreshold bool       `json:"reachProtectionThreshold"`
	Valid                    bool       `json:"valid"`
}

type hostJSON struct {
	model.Instance
	InstanceIDGenerator string `json:"instanceIdGenerator"`
}

// httpList: GET /nacos/v1/ns/instance/list, answered as a gRPC query is.
func (s *Server) httpList(w http.ResponseWriter, r *http.Request) {
	k, err := parseService(r.URL.Query())
	if err != nil {
		badRequest(w, err)
		return
	}
	mesh, err := k.mesh()
	if err != nil {
		badRequest(w, err)
		return
	}
	clusters := r.URL.Query().Get("clusters")
	info := s.query(r.Context(), k, mesh, clusters)
	if port := udpPortOf(r.URL.Query().Get("udpPort")); port > 0 {
		s.udpSubscribe(k, r.RemoteAddr, port, clusters)
	}
	writeJSON(w, listOf(k, info))
}

// listOf is info in instance/list's shape. Every instance shown is
// healthy, so healthyOnly keeps them all.
func listOf(k key, info model.Service) listJSON {
	out := listJSON{
		Name: k.grouped(), GroupName: k.group, Clusters: info.Clusters, CacheMillis: info.CacheMillis,
		Hosts: make([]hostJSON, 0, len(info.Hosts)), LastRefTime: info.LastRefTime, Valid: true,
	}
	for _, h := range info.Hosts {
		out.Hosts = append(out.Hosts, hostJSON{Instance: h, InstanceIDGenerator: "simple"})
	}
	return out
}

// httpServiceList: GET /nacos/v1/ns/service/list.
func (s *Server) httpServiceList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pageNo, err := intParam(q, "pageNo", 1)
	if err != nil {
		badRequest(w, err)
		return
	}
	pageSize, err := intParam(q, "pageSize", 10)
	if err != nil {
		badRequest(w, err)
		return
	}
	list := s.serviceList(nacoswire.NamingRequest{Namespace: q.Get("namespaceId"), GroupName: q.Get("groupName"), PageNo: pageNo, PageSize: pageSize})
	writeJSON(w, map[string]any{"count": list.Count, "doms": list.ServiceNames})
}
