package dubbo

import "github.com/detourmesh/detour/sidecar/observe"

// observe records cl, answered with status, when the proxy observes calls.
func (p *Proxy) observe(cl *call, status byte) {
	if p.Observe == nil {
		return
	}
	p.Observe.Call(status, callClass(status), cl.d.c.RemoteAddr(), cl.start)
}

// callClass is status's outcome class: a failure of the provider or the
// path to it (failureStatus) is the server's, another error the caller's.
func callClass(status byte) int {
	switch {
	case status == StatusOK:
		return observe.CallOK
	case failureStatus(status):
		return observe.CallServerError
	}
	return observe.CallClientError
}
