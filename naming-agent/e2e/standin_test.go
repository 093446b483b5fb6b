package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/detourmesh/detour/api/sidecarpb"
)

// standInEnv, when set in the environment of this test binary, makes it
// run as a stand-in sidecar process instead of running tests: it serves
// GET /ready on $DETOUR_STANDIN_ADMIN, opens the control stream to the
// agent at $DETOUR_STANDIN_AGENT, and acknowledges every snapshot. It is
// the sidecar as far as the agent can tell, and it can be killed with
// SIGKILL.
const standInEnv = "DETOUR_STANDIN_AGENT"

func standInMain() int {
	agentAddr, admin := os.Getenv(standInEnv), os.Getenv("DETOUR_STANDIN_ADMIN")
	l, err := net.Listen("tcp", admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ready\n")) })
	go http.Serve(l, mux)
	conn, err := grpc.NewClient(agentAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 1
	}
	stream, err := sidecarpb.NewSidecarControlClient(conn).Control(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 1
	}
	hello := &sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Hello{Hello: &sidecarpb.Hello{AdminAddr: admin, Build: "e2e stand-in"}}}
	if err := stream.Send(hello); err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		return 1
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			fmt.Fprintln(os.Stderr, "stand-in:", err)
			return 1
		}
		ack := &sidecarpb.SidecarMessage{Msg: &sidecarpb.SidecarMessage_Ack{Ack: &sidecarpb.Ack{Version: m.GetSnapshot().GetVersion()}}}
		if err := stream.Send(ack); err != nil {
			return 1
		}
	}
}

// startStandIn starts the stand-in sidecar process.
func startStandIn(tb testing.TB, agentGRPC, admin string) *exec.Cmd {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), standInEnv+"="+agentGRPC, "DETOUR_STANDIN_ADMIN="+admin)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd
}
