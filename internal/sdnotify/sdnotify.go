// Package sdnotify tells systemd about a service's state over the socket
// named by $NOTIFY_SOCKET (sd_notify(3)): READY=1 when a Type=notify unit
// may be considered started, RELOADING=1, STOPPING=1, MAINPID=N when a new
// process takes over. Outside systemd (no $NOTIFY_SOCKET) every call is a
// no-op.
//
// It is hand-written rather than github.com/coreos/go-systemd/v22/daemon:
// the protocol is one unixgram datagram, and the ~30 lines here keep the
// main module's go.mod free of a direct dependency for it.
package sdnotify

import (
	"net"
	"os"
	"strconv"
)

// Send sends state (newline-separated KEY=VALUE assignments). It reports
// false, nil when not under systemd.
func Send(state string) (bool, error) {
	name := os.Getenv("NOTIFY_SOCKET")
	if name == "" {
		return false, nil
	}
	if name[0] == '@' { // abstract namespace
		name = "\x00" + name[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// Ready says the service is up: READY=1 with this process as the main PID
// (which matters after a hand-over, when a child takes the service on).
func Ready() (bool, error) {
	return Send("READY=1\nMAINPID=" + strconv.Itoa(os.Getpid()))
}

// Stopping says the service is shutting down.
func Stopping() (bool, error) { return Send("STOPPING=1") }

// Reloading says a reload has begun; Ready ends it.
func Reloading() (bool, error) { return Send("RELOADING=1") }
