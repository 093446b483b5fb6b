// Package xchk cross-checks a registry front end against the real
// registry it emulates: the same sequence of steps runs against both,
// and every answer is compared field by field. zetcd's xchk mode (its
// ZooKeeper emulation checked against a real ZooKeeper) is the model;
// the ZooKeeper front end's tests use it, and the Nacos and etcd front
// ends can, with their own clients.
//
// A step turns one request (or a wait for watch events) into an Answer:
// named fields, already normalized by the step (zxids, revisions and
// times differ between any two servers; what must match is errors,
// versions, counts, names, event types and order). Errors are answers
// too: the front end must fail where the real server fails, with the
// same error.
package xchk

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Field is one named part of an answer.
type Field struct {
	Name  string
	Value any
}

// Answer is what one step observed, in order.
type Answer []Field

// F builds an Answer from name, value pairs: F("err", err, "version", 3).
func F(pairs ...any) Answer {
	if len(pairs)%2 != 0 {
		panic("xchk.F: odd number of arguments")
	}
	a := make(Answer, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		a = append(a, Field{Name: fmt.Sprint(pairs[i]), Value: pairs[i+1]})
	}
	return a
}

// Step is one request against a side's client C.
type Step[C any] struct {
	Name string
	Do   func(c C) Answer
}

// Mismatch is a field whose values differ, or that one side lacks.
type Mismatch struct {
	Step, Field string
	Real, Front any
}

func (m Mismatch) String() string {
	return fmt.Sprintf("%s: %s: real %s, front end %s", m.Step, m.Field, show(m.Real), show(m.Front))
}

// Report is the outcome of Compare.
type Report struct {
	Steps      int
	Fields     int // fields compared
	Mismatches []Mismatch
	Log        []string // every step's answers, side by side
}

// Compare runs each step against real, then against front, and compares
// their answers.
func Compare[C any](real, front C, steps []Step[C]) Report {
	var r Report
	for _, st := range steps {
		t0 := time.Now()
		a := st.Do(real)
		t1 := time.Now()
		b := st.Do(front)
		t2 := time.Now()
		r.Steps++
		r.Log = append(r.Log, fmt.Sprintf("%s: real %s (%v) | front %s (%v)", st.Name, a, t1.Sub(t0).Round(time.Millisecond), b, t2.Sub(t1).Round(time.Millisecond)))
		seen := map[string]bool{}
		for _, f := range a {
			seen[f.Name] = true
			r.Fields++
			g, ok := b.get(f.Name)
			if !ok {
				r.Mismatches = append(r.Mismatches, Mismatch{st.Name, f.Name, f.Value, missing{}})
				continue
			}
			if !reflect.DeepEqual(normalize(f.Value), normalize(g)) {
				r.Mismatches = append(r.Mismatches, Mismatch{st.Name, f.Name, f.Value, g})
			}
		}
		for _, f := range b {
			if !seen[f.Name] {
				r.Mismatches = append(r.Mismatches, Mismatch{st.Name, f.Name, missing{}, f.Value})
			}
		}
	}
	return r
}

// Run is Compare that fails t with every mismatch, and logs the answers
// when it does.
func Run[C any](t testing.TB, real, front C, steps []Step[C]) Report {
	t.Helper()
	r := Compare(real, front, steps)
	if len(r.Mismatches) > 0 {
		for _, l := range r.Log {
			t.Log(l)
		}
		for _, m := range r.Mismatches {
			t.Error(m)
		}
	}
	return r
}

// Collect receives n values from ch, or what came before timeout: a
// step that waits for watch events returns what it got, so a missing or
// extra event shows as a mismatch rather than a hang.
func Collect[E any](ch <-chan E, n int, timeout time.Duration) []E {
	out := make([]E, 0, n)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(out) < n {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e)
		case <-timer.C:
			return out
		}
	}
	return out
}

func (a Answer) get(name string) (any, bool) {
	for _, f := range a {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

func (a Answer) String() string {
	parts := make([]string, len(a))
	for i, f := range a {
		parts[i] = f.Name + "=" + show(f.Value)
	}
	return "{" + strings.Join(parts, " ") + "}"
}

type missing struct{}

func (missing) String() string { return "(missing)" }

// normalize makes errors comparable by their text.
func normalize(v any) any {
	if err, ok := v.(error); ok {
		return "error: " + err.Error()
	}
	return v
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "<nil>"
	case error:
		return "error(" + x.Error() + ")"
	case []byte:
		return fmt.Sprintf("%q", x)
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%v", v)
}
