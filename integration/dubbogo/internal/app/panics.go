package app

import (
	"bytes"
	"fmt"
	"log"
	"runtime"
	"runtime/debug"
	"strings"
)

// PanicMark starts the log line of every panic RecoverKnownPanic turns
// into a failed call; the integration suite counts these lines.
const PanicMark = "recovered dubbo-go v3.3.1 panic in a call"

// urlMethod is the frame that faults in dubbo-go v3.3.1's known race: a
// method of a *common.URL that is nil because BaseInvoker.Destroy set it
// so (apache/dubbo-go#2981, #3153, #3190; fixed after 3.3.1 by #3184).
const urlMethod = "dubbo.apache.org/dubbo-go/v3/common.(*URL)."

// RecoverKnownPanic, deferred by a call into dubbo-go, turns a panic that
// is v3.3.1's known race into the call's error (*err), logged with its
// frames under PanicMark: the registry directory destroys an invoker that
// left the providers list (or was replaced) while a call that had already
// listed it still uses it, and the call dereferences its nil URL. The call
// is counted failed like any other; the process, which plain dubbo-go
// v3.3.1 would lose, goes on. Any other panic goes on as it was.
func RecoverKnownPanic(err *error) {
	r := recover()
	if r == nil {
		return
	}
	stack := debug.Stack()
	frames, ok := knownPanic(r, stack)
	if !ok {
		panic(r)
	}
	log.Printf("%s (an invoker destroyed under it, apache/dubbo-go#2981): %v; frames: %s", PanicMark, r, strings.Join(frames, " < "))
	*err = fmt.Errorf("dubbo-go v3.3.1's known panic: %v", r)
}

// knownPanic reports whether r, recovered with stack (debug.Stack in the
// deferred function), is a nil dereference faulting in a *common.URL
// method, and returns the functions from that frame down, at most 12.
func knownPanic(r any, stack []byte) ([]string, bool) {
	re, ok := r.(runtime.Error)
	if !ok || !strings.Contains(re.Error(), "nil pointer dereference") {
		return nil, false
	}
	var funcs []string
	inPanic := false
	for _, line := range bytes.Split(stack, []byte("\n")) {
		if len(line) == 0 || line[0] == '\t' || bytes.HasPrefix(line, []byte("goroutine ")) || bytes.HasPrefix(line, []byte("created by ")) {
			continue // file:line, the header, the goroutine's creator
		}
		name := string(line)
		if i := strings.LastIndexByte(name, '('); i > 0 {
			name = name[:i]
		}
		switch {
		case name == "panic":
			inPanic, funcs = true, nil
		case !inPanic:
		case len(funcs) == 0 && (strings.HasPrefix(name, "runtime.") || strings.HasPrefix(name, "sync.") || strings.HasPrefix(name, "sync/atomic.")):
			// the fault's own frames, and the URL's inlined lock
		case len(funcs) < 12:
			funcs = append(funcs, name)
		}
	}
	return funcs, len(funcs) > 0 && strings.HasPrefix(funcs[0], urlMethod)
}
