package main

import (
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/detourmesh/detour/api/agentjson"
)

func (c *ctl) fetchStatus() (agentjson.Status, []byte, error) {
	var st agentjson.Status
	raw, err := c.call(http.MethodGet, "/v1/status", nil, &st)
	return st, raw, err
}

func (c *ctl) status() error {
	st, raw, err := c.fetchStatus()
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
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

// jsonOr is the end of a command that failed or was asked for JSON.
func jsonOr(c *ctl, raw []byte, err error) error {
	if err != nil {
		return err
	}
	return c.printJSON(raw)
}

func (c *ctl) list() error {
	st, raw, err := c.fetchStatus()
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
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
	st, raw, err := c.fetchStatus()
	if err != nil || c.asJSON {
		return jsonOr(c, raw, err)
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
