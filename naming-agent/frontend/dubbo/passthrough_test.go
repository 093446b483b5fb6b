package dubbo

import "testing"

// TestOwns: what the pass-through leaves to the rewriter. An app's
// directory /services/APP is passed through (the provider's persistent
// create reaches the registry), while Rewriter.Children answers its
// listing (TestRewriterApp reads it).
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
		"/services/app/10.0.0.1:20000/x":             true,
		"/services/app":                              false, // passed through; its listing is the overlay's
		"/services/":                                 false,
		"/":                                          false,
		"":                                           false,
	} {
		if got := Owns(path); got != want {
			t.Errorf("Owns(%q) = %v, want %v", path, got, want)
		}
	}
}
