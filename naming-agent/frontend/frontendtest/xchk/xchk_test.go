package xchk

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// side is a toy client: a map, and a fault to plant.
type side struct {
	kv    map[string]int
	fault bool
}

func TestCompare(t *testing.T) {
	steps := []Step[*side]{
		{"put", func(s *side) Answer { s.kv["a"] = 1; return F("err", nil) }},
		{"get", func(s *side) Answer {
			v := s.kv["a"]
			if s.fault {
				v = 2
			}
			return F("value", v, "err", nil)
		}},
		{"delete missing", func(s *side) Answer {
			if s.fault {
				return F("err", errors.New("other"), "extra", true)
			}
			return F("err", errors.New("not found"))
		}},
	}
	tests := []struct {
		name  string
		fault bool
		want  []string
	}{
		{"same answers", false, nil},
		{"planted faults", true, []string{
			`get: value: real 1, front end 2`,
			`delete missing: err: real error(not found), front end error(other)`,
			`delete missing: extra: real (missing), front end true`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Compare(&side{kv: map[string]int{}}, &side{kv: map[string]int{}, fault: tt.fault}, steps)
			var got []string
			for _, m := range r.Mismatches {
				got = append(got, m.String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("mismatches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			if r.Steps != 3 || r.Fields != 4 {
				t.Errorf("steps, fields = %d, %d; want 3, 4", r.Steps, r.Fields)
			}
		})
	}
}

func TestCollect(t *testing.T) {
	ch := make(chan int, 3)
	ch <- 1
	ch <- 2
	if got := Collect(ch, 2, time.Minute); len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("Collect = %v", got)
	}
	// Fewer than asked: what came, once the timeout passes.
	ch <- 3
	if got := Collect(ch, 2, 10*time.Millisecond); len(got) != 1 || got[0] != 3 {
		t.Fatalf("Collect short = %v", got)
	}
	close(ch)
	if got := Collect(ch, 1, time.Minute); len(got) != 0 {
		t.Fatalf("Collect closed = %v", got)
	}
}
