// Command detourctl is the operator's tool for a naming agent, over its
// HTTP API:
//
//	detourctl [--agent URL] [--json] status
//	detourctl [--agent URL] [--json] resolve SERVICE
//	detourctl [--agent URL] mesh enable|disable SERVICE
//	detourctl [--agent URL] [--json] list
//	detourctl [--agent URL] [--json] sidecar
//
// --agent defaults to $DETOUR_AGENT, else http://127.0.0.1:7700.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/detourmesh/detour/api/agentjson"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv("DETOUR_AGENT"), &http.Client{Timeout: 10 * time.Second}))
}

const usage = `usage: detourctl [--agent URL] [--json] COMMAND
commands:
  status                     registry, sidecar, publications and subscriptions at a glance
  resolve SERVICE            the answer apps get for SERVICE
  mesh enable|disable SERVICE  put SERVICE in or out of the mesh on this host
  list                       publications and subscriptions
  sidecar                    the sidecar's state, listeners and endpoint health
`

type ctl struct {
	base   string
	asJSON bool
	out    io.Writer
	client *http.Client
}

func run(args []string, stdout, stderr io.Writer, envAgent string, client *http.Client) int {
	fs := flag.NewFlagSet("detourctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	def := "http://127.0.0.1:7700"
	if envAgent != "" {
		def = envAgent
	}
	c := &ctl{out: stdout, client: client}
	fs.StringVar(&c.base, "agent", def, "the agent's HTTP API")
	fs.BoolVar(&c.asJSON, "json", false, "print the agent's JSON as it is")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.base = strings.TrimSuffix(c.base, "/")
	if !strings.Contains(c.base, "://") {
		c.base = "http://" + c.base
	}
	var err error
	switch a := fs.Args(); {
	case len(a) == 1 && a[0] == "status":
		err = c.status()
	case len(a) == 2 && a[0] == "resolve":
		err = c.resolve(a[1])
	case len(a) == 3 && a[0] == "mesh" && (a[1] == "enable" || a[1] == "disable"):
		err = c.mesh(a[2], a[1] == "enable")
	case len(a) == 1 && a[0] == "list":
		err = c.list()
	case len(a) == 1 && a[0] == "sidecar":
		err = c.sidecar()
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "detourctl: %v\n", err)
		return 1
	}
	return 0
}

// call does one request and decodes a 2xx JSON answer into v (and prints
// it raw with --json).
func (c *ctl) call(method, path string, body any, v any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	if c.asJSON {
		var pretty bytes.Buffer
		if json.Indent(&pretty, b, "", "  ") == nil {
			pretty.WriteByte('\n')
			_, err := pretty.WriteTo(c.out)
			return errors.Join(err, errPrinted)
		}
	}
	return json.Unmarshal(b, v)
}

// errPrinted: the JSON was printed; nothing more to do.
var errPrinted = errors.New("printed")

func (c *ctl) fetchStatus() (agentjson.Status, error) {
	var st agentjson.Status
	return st, c.call(http.MethodGet, "/v1/status", nil, &st)
}

func done(err error) error {
	if errors.Is(err, errPrinted) {
		return nil
	}
	return err
}

func (c *ctl) status() error {
	st, err := c.fetchStatus()
	if err != nil {
		return done(err)
	}
	reg := "ok"
	if !st.Registry.OK {
		reg = "ERROR: " + st.Registry.Error
	}
	fmt.Fprintf(c.out, "host:          %s\n", st.HostIP)
	fmt.Fprintf(c.out, "registry:      %s (%s)\n", st.Registry.URL, reg)
	fmt.Fprintf(c.out, "sidecar:       %s since %s (connected %v, admin %s, snapshot sent %d acked %d)\n",
		st.Sidecar.State, st.Sidecar.Since.Format(time.RFC3339), st.Sidecar.Connected, st.Sidecar.AdminAddr, st.Sidecar.SentVersion, st.Sidecar.AckedVersion)
	fmt.Fprintf(c.out, "publications:  %d\n", len(st.Publications))
	fmt.Fprintf(c.out, "subscriptions: %d\n", len(st.Subscriptions))
	if len(st.MeshDisabled) > 0 {
		fmt.Fprintf(c.out, "mesh off:      %s\n", strings.Join(st.MeshDisabled, ", "))
	}
	return nil
}

func (c *ctl) resolve(service string) error {
	var ans agentjson.Answer
	if err := c.call(http.MethodGet, "/v1/resolve?service="+url.QueryEscape(service), nil, &ans); err != nil {
		return done(err)
	}
	fmt.Fprintf(c.out, "service:    %s (revision %d)\n", ans.Service, ans.Revision)
	fmt.Fprintf(c.out, "mesh:       %v\n", ans.Mesh)
	fmt.Fprintf(c.out, "endpoints:  %s\n", joinAddrs(ans.Endpoints))
	fmt.Fprintf(c.out, "fallback:   %s\n", joinAddrs(ans.Fallback))
	if g := ans.Governance; g.Mesh && g.Retries != nil && g.TimeoutMS != nil {
		fmt.Fprintf(c.out, "governance: retries %d, timeout %dms (enforced by the sidecar)\n", *g.Retries, *g.TimeoutMS)
	} else {
		fmt.Fprintf(c.out, "governance: the app's own policy\n")
	}
	return nil
}

func (c *ctl) mesh(service string, enabled bool) error {
	var out struct {
		Service string `json:"service"`
		Enabled bool   `json:"enabled"`
	}
	if err := c.call(http.MethodPut, "/v1/services/"+url.PathEscape(service)+"/mesh", map[string]bool{"enabled": enabled}, &out); err != nil {
		return done(err)
	}
	state := "out of"
	if out.Enabled {
		state = "in"
	}
	fmt.Fprintf(c.out, "%s is now %s the mesh on this host\n", out.Service, state)
	return nil
}

func (c *ctl) list() error {
	st, err := c.fetchStatus()
	if err != nil {
		return done(err)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PUBLICATION\tPORT\tPROTOCOL\tINGRESS\tREGISTERED\tMESH\tHEALTHY\tHEALTH BY\tERROR")
	for _, p := range st.Publications {
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\t%v\t%v\t%s\t%s\n", p.Service, p.Port, p.Protocol, p.IngressPort, dash(p.RegisteredAddr), p.Mesh, p.Healthy, p.HealthSource, dash(p.RegistryError))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "SUBSCRIPTION\tEGRESS\tMESH ON\tANSWER\tENDPOINTS\tREVISION\tWAITERS\tSOURCE")
	for _, s := range st.Subscriptions {
		mode, source := "real", "registry"
		if s.Answer.Mesh {
			mode = "sidecar"
		}
		if s.FromCache {
			source = "cache"
		}
		if s.Error != "" {
			source += " (" + s.Error + ")"
		}
		fmt.Fprintf(w, "%s\t%d\t%v\t%s\t%s\t%d\t%d\t%s\n", s.Service, s.EgressPort, s.MeshEnabled, mode, joinAddrs(s.Answer.Endpoints), s.Answer.Revision, s.Subscribers, source)
	}
	return w.Flush()
}

func (c *ctl) sidecar() error {
	st, err := c.fetchStatus()
	if err != nil {
		return done(err)
	}
	sc := st.Sidecar
	fmt.Fprintf(c.out, "state:     %s since %s\n", sc.State, sc.Since.Format(time.RFC3339))
	fmt.Fprintf(c.out, "stream:    connected %v\n", sc.Connected)
	fmt.Fprintf(c.out, "admin:     %s (ready probes: %d ok / %d failed in a row)\n", sc.AdminAddr, sc.ConsecutiveReady, sc.ConsecutiveFailed)
	fmt.Fprintf(c.out, "snapshot:  sent %d, acked %d\n", sc.SentVersion, sc.AckedVersion)
	if sc.LastNack != "" {
		fmt.Fprintf(c.out, "last nack: %s\n", sc.LastNack)
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	if len(sc.Listeners) > 0 {
		fmt.Fprintln(w, "LISTENER\tSERVICE\tUP\tERROR")
		for _, l := range sc.Listeners {
			fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", l.Listen, l.Service, l.Up, dash(l.Error))
		}
	}
	if len(sc.Endpoints) > 0 {
		fmt.Fprintln(w, "ENDPOINT\tSERVICE\tSTATE")
		for _, e := range sc.Endpoints {
			fmt.Fprintf(w, "%s\t%s\t%s\n", e.Addr, e.Service, e.State)
		}
	}
	return w.Flush()
}

func joinAddrs(eps []agentjson.Endpoint) string {
	if len(eps) == 0 {
		return "-"
	}
	s := make([]string, len(eps))
	for i, e := range eps {
		s[i] = e.Addr
	}
	return strings.Join(s, ", ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
