// Package route is a service's compiled routing rules at egress: which
// subset of the service's endpoints a request goes to, by its L7 match
// (HTTP headers, gRPC metadata, path prefix) or the weighted split, with
// a count of what each rule matched.
package route

import (
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/detourmesh/detour/api/sidecarpb"
	"github.com/detourmesh/detour/internal/governance"
)

// Table is one service's rules. Safe for concurrent use; immutable but
// for its counters.
type Table struct {
	// Subsets: name → labels an endpoint's metadata must all hold.
	Subsets map[string]map[string]string
	// Default takes the requests of a subset with no routable endpoint;
	// "" means every endpoint.
	Default string

	rules []rule
	split split
	fault *sidecarpb.Fault

	// Delayed and Aborted count the faults injected.
	Delayed, Aborted atomic.Uint64

	// Unmatched counts requests no rule matched (they took the split);
	// Fallback those whose subset had no routable endpoint.
	Unmatched, Fallback atomic.Uint64
	src                 *sidecarpb.Routes
}

type rule struct {
	name    string
	prefix  string
	headers []header
	split   split
	fault   *sidecarpb.Fault
	matched atomic.Uint64
}

type header struct {
	name, exact string
	re          *regexp.Regexp
}

type split struct {
	subsets []string
	cum     []uint32 // prefix sums of the weights, last is 100
}

// Compile validates and compiles r; nil for no rules.
func Compile(r *sidecarpb.Routes) (*Table, error) {
	if err := governance.ValidateRoutes(r); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, nil
	}
	r = proto.Clone(r).(*sidecarpb.Routes) // Source is compared with later snapshots' rules
	t := &Table{Subsets: map[string]map[string]string{}, Default: r.GetDefaultSubset(), split: newSplit(r.GetSplit()), fault: r.GetFault(), src: r}
	for _, s := range r.GetSubsets() {
		t.Subsets[s.GetName()] = s.GetLabels()
	}
	t.rules = make([]rule, len(r.GetRules()))
	for i, rr := range r.GetRules() {
		ru := &t.rules[i]
		ru.name, ru.prefix, ru.split, ru.fault = rr.GetName(), rr.GetMatch().GetPathPrefix(), newSplit(rr.GetSplit()), rr.GetFault()
		for _, h := range rr.GetMatch().GetHeaders() {
			hm := header{name: http.CanonicalHeaderKey(h.GetName()), exact: h.GetExact()}
			if h.GetRegex() != "" {
				hm.re = regexp.MustCompile("^(?:" + h.GetRegex() + ")$") // validated above
			}
			ru.headers = append(ru.headers, hm)
		}
	}
	return t, nil
}

func newSplit(ws []*sidecarpb.WeightedSubset) split {
	var s split
	sum := uint32(0)
	for _, w := range ws {
		if w.GetWeight() == 0 {
			continue
		}
		sum += w.GetWeight()
		s.subsets = append(s.subsets, w.GetSubset())
		s.cum = append(s.cum, sum)
	}
	return s
}

func (s split) choose() string {
	switch len(s.subsets) {
	case 0:
		return ""
	case 1:
		return s.subsets[0]
	}
	x := rand.Uint32N(s.cum[len(s.cum)-1])
	for i, c := range s.cum {
		if x < c {
			return s.subsets[i]
		}
	}
	return s.subsets[len(s.subsets)-1]
}

// Choose returns the subset for a request with header h and path; ""
// means every endpoint. A nil Table chooses "". L4 uses it (no faults).
func (t *Table) Choose(h http.Header, path string) string {
	return t.Decide(h, path).Subset
}

// Decision is what the rules say of one request.
type Decision struct {
	Subset string
	// Delay, when > 0, is waited before the request goes on.
	Delay time.Duration
	// Abort, when > 0, is the HTTP status to answer instead of sending
	// the request; AbortGRPC the gRPC code for gRPC requests.
	Abort, AbortGRPC int
}

// Decide is Choose with the faults of the rule that matched (or the
// table's).
func (t *Table) Decide(h http.Header, path string) Decision {
	if t == nil {
		return Decision{}
	}
	for i := range t.rules {
		if t.rules[i].matches(h, path) {
			t.rules[i].matched.Add(1)
			return t.inject(Decision{Subset: t.rules[i].split.choose()}, t.rules[i].fault)
		}
	}
	t.Unmatched.Add(1)
	return t.inject(Decision{Subset: t.split.choose()}, t.fault)
}

func (t *Table) inject(d Decision, f *sidecarpb.Fault) Decision {
	if f == nil {
		return d
	}
	if p := f.GetAbortPercent(); p > 0 && rand.Uint32N(100) < p {
		t.Aborted.Add(1)
		d.Abort, d.AbortGRPC = int(f.GetAbortStatus()), int(f.GetAbortGrpcStatus())
		if d.AbortGRPC == 0 {
			d.AbortGRPC = 14 // UNAVAILABLE
		}
		return d
	}
	if p := f.GetDelayPercent(); p > 0 && rand.Uint32N(100) < p {
		t.Delayed.Add(1)
		d.Delay = time.Duration(f.GetDelayMs()) * time.Millisecond
	}
	return d
}

func (r *rule) matches(h http.Header, path string) bool {
	if r.prefix != "" && !strings.HasPrefix(path, r.prefix) {
		return false
	}
	for _, hm := range r.headers {
		vs, ok := h[hm.name]
		if !ok {
			return false
		}
		if hm.exact == "" && hm.re == nil {
			continue
		}
		hit := false
		for _, v := range vs {
			if (hm.re == nil && v == hm.exact) || (hm.re != nil && hm.re.MatchString(v)) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// RuleStats is one rule's count.
type RuleStats struct {
	Name    string `json:"name"`
	Matched uint64 `json:"matched"`
}

// Stats is what /stats shows of a table.
type Stats struct {
	Rules     []RuleStats `json:"rules"`
	Unmatched uint64      `json:"unmatched"`
	Fallback  uint64      `json:"fallback"`
	Delayed   uint64      `json:"fault_delayed"`
	Aborted   uint64      `json:"fault_aborted"`
}

// Stats returns the counts; zero for a nil Table.
func (t *Table) Stats() Stats {
	if t == nil {
		return Stats{}
	}
	s := Stats{Unmatched: t.Unmatched.Load(), Fallback: t.Fallback.Load(), Delayed: t.Delayed.Load(), Aborted: t.Aborted.Load(),
		Rules: make([]RuleStats, len(t.rules))}
	for i := range t.rules {
		s.Rules[i] = RuleStats{Name: t.rules[i].name, Matched: t.rules[i].matched.Load()}
	}
	return s
}

// Source is the rules as given.
func (t *Table) Source() *sidecarpb.Routes {
	if t == nil {
		return nil
	}
	return t.src
}
