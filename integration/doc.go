// Package integration runs detour the way a user meets it: the built
// naming-agent and sidecar binaries and the example apps as real
// processes, several hosts on one machine, real registries, real traffic.
// Everything it starts it stops; every load is bounded in count and time
// and targets loopback only.
//
// The suite's hosts are 127.A.B.2, .3, .4 of a loopback block the run
// holds alone (testbed.ReserveNet; DETOUR_TEST_NET pins it): fixed ports
// on addresses no other test, no other run on the machine and not the
// demo use, so nothing collides.
package integration
