package dubbo

import "testing"

func TestOwns(t *testing.T) {
	for path, want := range map[string]bool{
		"/dubbo/org.x.S/providers":                   true,
		"/dubbo/org.x.S/providers/dubbo%3A%2F%2Fh":   true,
		"/mygroup/org.x.S/providers":                 true,
		"/services/app/10.0.0.1:20000":               true,
		"/dubbo/org.x.S/consumers":                   false,
		"/dubbo/org.x.S/consumers/consumer%3A%2F%2F": false,
		"/dubbo/org.x.S/configurators":               false,
		"/dubbo/org.x.S":                             false,
		"/dubbo/mapping/org.x.S":                     false,
		"/dubbo/config/dubbo/app.configurators":      false,
		"/dubbo/app/revision":                        false,
		"/services":                                  false,
		"/services/app":                              false,
		"/":                                          false,
		"":                                           false,
	} {
		if got := Owns(path); got != want {
			t.Errorf("Owns(%q) = %v, want %v", path, got, want)
		}
	}
}
