// Package netnstest builds throw-away network namespaces for the tests of
// other packages, so that their packets never leave the machine's own
// namespaces. It needs root (CAP_NET_ADMIN, CAP_NET_RAW) and iproute2's ip,
// and works on Linux only.
//
// Namespaces are named "tfx" + PID + TAG + 6 random hex digits + "-" + NAME
// ([Prefix]): unique to the test process, so that [Sweep] can tell those of
// processes that died before their cleanups ran (a timeout, a kill) and
// remove them, and leave those of the tests still running, in this process
// or in the test processes of other packages beside it. TAG is one
// lowercase letter telling which package made them: route uses "r", probe
// "p", capture "c", bpf "b", internal/lab "l" (for its labs of
// scripts/lab.sh), fleet/fleetlab "f".
package netnstest
