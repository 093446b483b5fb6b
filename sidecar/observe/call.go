package observe

import (
	"net"
	"strconv"
	"time"
)

// Outcome classes of a Dubbo call, the histogram's outcome label: its
// status byte has no class of its own, so the answer is put in the HTTP
// class that means the same (OK, the caller's fault, the provider's).
const (
	CallOK          = 2
	CallClientError = 4
	CallServerError = 5
)

// Call records a Dubbo call that began at start and was answered with
// status (Dubbo's status byte) of outcome class (CallOK, CallClientError,
// CallServerError), from the caller at remote.
func (l *Listener) Call(status byte, class int, remote net.Addr, start time.Time) {
	if l == nil {
		return
	}
	d := time.Since(start)
	l.obs[min(max(class-1, 0), 4)].Observe(d.Seconds())
	if l.logs() {
		l.o.line(func(b []byte) []byte {
			b = l.head(b, start, "request")
			b = str(b, "proto", "dubbo")
			if remote != nil {
				b = str(b, "remote", remote.String())
			}
			b = append(b, `,"dubbo_status":`...)
			b = strconv.AppendInt(b, int64(status), 10)
			return ms(b, d)
		})
	}
}
