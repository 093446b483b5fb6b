package app

import (
	"errors"
	"strings"
	"testing"

	"dubbo.apache.org/dubbo-go/v3/common"
)

// callOn runs f the way the consumer runs a call: RecoverKnownPanic
// deferred. It returns what panicked out of it, and the call's error.
func callOn(f func()) (escaped any, err error) {
	defer func() { escaped = recover() }()
	func() {
		defer RecoverKnownPanic(&err)
		f()
	}()
	return nil, err
}

// TestRecoverKnownPanic: a method called on a nil *common.URL (what a
// destroyed invoker's GetURL returns in v3.3.1) becomes the call's error;
// any other panic, a nil dereference elsewhere included, goes on.
func TestRecoverKnownPanic(t *testing.T) {
	var destroyed *common.URL
	escaped, err := callOn(func() { _ = destroyed.GetParam("loadbalance", "random") })
	if escaped != nil || err == nil || !strings.Contains(err.Error(), "known panic") {
		t.Fatalf("nil URL's GetParam: error %v, escaped %v; want the call's error", err, escaped)
	}
	escaped, err = callOn(func() { _ = destroyed.Key() })
	if escaped != nil || err == nil {
		t.Fatalf("nil URL's Key: error %v, escaped %v", err, escaped)
	}

	var other *strings.Builder
	for name, f := range map[string]func(){
		"nil dereference outside URL": func() { _ = other.Len() },
		"plain panic":                 func() { panic("boom") },
		"error value":                 func() { panic(errors.New("nil pointer dereference")) },
	} {
		escaped, err := callOn(f)
		if escaped == nil || err != nil {
			t.Errorf("%s: error %v, escaped %v; want the panic to go on", name, err, escaped)
		}
	}
	if escaped, err := callOn(func() {}); err != nil || escaped != nil {
		t.Errorf("no panic: %v, %v", err, escaped)
	}
}
