// Command detourctl is the operator's tool for a naming agent, over its
// HTTP API:
//
//	detourctl status | list | sidecar
//	detourctl resolve SERVICE
//	detourctl unsubscribe SERVICE
//	detourctl publish SERVICE PORT [--protocol tcp|http|grpc|dubbo|tri] [--meta K=V ...] [--health tcp|http:/PATH|grpc] [--update]
//	detourctl unpublish SERVICE PORT
//	detourctl mesh enable|disable SERVICE
//	detourctl routes|limits set SERVICE FILE|- | show SERVICE | clear SERVICE
//	detourctl --version
//
// Flags go anywhere on the line (--agent URL, --json). --agent defaults to
// $DETOUR_AGENT, else http://127.0.0.1:7700. Exit status: 0 done; 1 the
// agent refused, could not be reached, or knows nothing of a resolved
// service; 2 a usage error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/detourmesh/detour/internal/version"
)

func main() {
	client := withToken(&http.Client{Timeout: 10 * time.Second}, os.Getenv(envToken))
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Getenv("DETOUR_AGENT"), client))
}

// envAgent is where --agent's default comes from.
const envAgent = "DETOUR_AGENT"

const defaultAgent = "http://127.0.0.1:7700"

const usage = `usage: detourctl COMMAND [ARGS] [FLAGS]
commands:
  status                       registry, sidecar, publications and subscriptions at a glance
  list                         publications and subscriptions
  sidecar                      the sidecar's state, listeners and endpoint health
  resolve SERVICE              the answer apps get for SERVICE; subscribes the agent to it
                               if it was not (said on stderr); exit 1 if nothing is known of it
  unsubscribe SERVICE          the agent stops watching SERVICE
  publish SERVICE PORT         publish the app on this host's PORT as SERVICE:
      --protocol tcp|http|grpc|dubbo|tri   (default: the agent's service_defaults)
      --meta KEY=VALUE           registry metadata; repeat for more
      --health tcp|http:/PATH|grpc  how the agent checks the app (default tcp)
      --update                   replace this host's publication of SERVICE if it differs
  unpublish SERVICE PORT       withdraw a publication
  mesh enable|disable SERVICE  put SERVICE in or out of the mesh on this host
  routes set SERVICE FILE|-    SERVICE's routing rules (JSON: subsets, split, rules), live
  routes show|clear SERVICE    the rules in force / back to the config's
  limits set SERVICE FILE|-    SERVICE's inbound limit (JSON: rps, burst, max_concurrent), live
  limits show|clear SERVICE
flags, before or after the command:
  --agent URL   the agent's HTTP API (default $DETOUR_AGENT, else http://127.0.0.1:7700)
  (the agent's API token, if it has one, is taken from $DETOUR_API_TOKEN)
  --json        print the agent's JSON answer as it is
  --version     print detourctl's version and exit
exit status: 0 done; 1 the agent refused or could not be reached, or resolve found
nothing; 2 usage
`

// options are the command line's flags.
type options struct {
	agent, protocol, health string
	asJSON, update, version bool
	meta                    metaFlag
	set                     map[string]bool // the flags given
}

// publishFlags are the flags only publish takes.
var publishFlags = []string{"protocol", "meta", "health", "update"}

// errUsage: the command line is wrong; stderr has been told why and shown
// the usage.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer, agentEnv string, client *http.Client) int {
	o, pos, err := parseArgs(args, stderr, agentEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	case o.version:
		fmt.Fprintln(stdout, version.String("detourctl"))
		return 0
	}
	c := &ctl{base: agentURL(o.agent), asJSON: o.asJSON, out: stdout, errOut: stderr, client: client}
	badUsage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "detourctl: "+format+"\n", a...)
		fmt.Fprint(stderr, usage)
		return 2
	}
	if len(pos) == 0 {
		return badUsage("no command")
	}
	cmd, a := pos[0], pos[1:]
	if cmd != "publish" {
		for _, f := range publishFlags {
			if o.set[f] {
				return badUsage("--%s is a flag of publish, not of %s", f, cmd)
			}
		}
	}
	if cmd == "routes" || cmd == "limits" {
		code, err := c.governance(cmd, a)
		if code == 2 {
			return badUsage("%v", err)
		}
		if err != nil {
			fmt.Fprintf(stderr, "detourctl: %v\n", err)
		}
		return code
	}
	want := map[string]int{"status": 0, "list": 0, "sidecar": 0, "resolve": 1, "unsubscribe": 1, "publish": 2, "unpublish": 2, "mesh": 2}
	n, ok := want[cmd]
	switch {
	case !ok:
		return badUsage("unknown command %q", cmd)
	case len(a) != n:
		return badUsage("%s takes %d argument(s), got %d: %q", cmd, n, len(a), a)
	}
	var port int
	if cmd == "publish" || cmd == "unpublish" {
		if port, err = strconv.Atoi(a[1]); err != nil {
			return badUsage("%s: PORT %q is not a number", cmd, a[1])
		}
	}
	switch cmd {
	case "status":
		err = c.status()
	case "list":
		err = c.list()
	case "sidecar":
		err = c.sidecar()
	case "resolve":
		err = c.resolve(a[0])
	case "unsubscribe":
		err = c.unsubscribe(a[0])
	case "publish":
		req := publishRequest{Service: a[0], Port: port, Protocol: o.protocol, Metadata: o.meta, Update: o.update}
		if o.health != "" {
			typ, path, _ := strings.Cut(o.health, ":")
			req.Health = &healthSpec{Type: typ, Path: path}
		}
		err = c.publish(req)
	case "unpublish":
		err = c.unpublish(a[0], port)
	case "mesh":
		if a[0] != "enable" && a[0] != "disable" {
			return badUsage("mesh %q: want enable or disable", a[0])
		}
		err = c.mesh(a[1], a[0] == "enable")
	}
	if err != nil {
		fmt.Fprintf(stderr, "detourctl: %v\n", err)
		return 1
	}
	return 0
}

// parseArgs parses flags wherever they are on the line (the flag package
// stops at the first argument that is not one) and returns the others in
// order. "--" ends the flags.
func parseArgs(args []string, stderr io.Writer, agentEnv string) (options, []string, error) {
	o := options{agent: defaultAgent}
	if agentEnv != "" {
		o.agent = agentEnv
	}
	fs := flag.NewFlagSet("detourctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	fs.StringVar(&o.agent, "agent", o.agent, "the agent's HTTP API ($"+envAgent+")")
	fs.BoolVar(&o.asJSON, "json", false, "print the agent's JSON as it is")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.protocol, "protocol", "", "publish: tcp, http, grpc, dubbo or tri")
	fs.Var(&o.meta, "meta", "publish: KEY=VALUE, repeated")
	fs.StringVar(&o.health, "health", "", "publish: tcp, http:/PATH or grpc")
	fs.BoolVar(&o.update, "update", false, "publish: replace a publication that differs")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return o, nil, err
			}
			return o, nil, errUsage // the FlagSet printed the error and the usage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	return o, pos, nil
}

// agentURL makes --agent a base URL: "host:port" is taken as http.
func agentURL(s string) string {
	s = strings.TrimSuffix(s, "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return s
}

// metaFlag collects --meta KEY=VALUE.
type metaFlag map[string]string

func (f *metaFlag) String() string { return "" }

func (f *metaFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	if _, dup := (*f)[k]; dup {
		return fmt.Errorf("key %q given twice", k)
	}
	if *f == nil {
		*f = metaFlag{}
	}
	(*f)[k] = v
	return nil
}
