package probe_test

import (
	"net/netip"
	"testing"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
)

// The lab: network namespaces built by netnstest (tag "p"), removed by
// t.Cleanup. Packets are only ever sent inside them: socket-creating code
// runs on a thread that setns'd into a lab namespace (labIn), and sockets
// stay in the namespace they were created in.

// labNeedRoot skips the test when it cannot build namespaces, and fails it
// when CI=true, where a skip would hide that nothing was tested.
func labNeedRoot(t testing.TB) {
	t.Helper()
	netnstest.NeedRoot(t)
}

// lab gives the tests of this package short names for a netnstest.Set.
type lab struct {
	*netnstest.Set
	t testing.TB
}

// newLab creates one namespace per name, with lo up and ICMP rate limits
// off, and removes them when the test ends, whatever its outcome.
func newLab(t testing.TB, names ...string) *lab {
	t.Helper()
	return &lab{netnstest.New(t, "p", names...), t}
}

// nsip runs ip inside namespace name.
func (l *lab) nsip(name string, args ...string) string {
	l.t.Helper()
	return l.NSIP(name, args...)
}

func (l *lab) exec(name string, cmd ...string) string {
	l.t.Helper()
	return l.Exec(name, cmd...)
}

// veth joins namespaces a and b with a veth pair named ifa/ifb, with the
// given MACs and addresses (CIDR), both up.
func (l *lab) veth(a, ifa, maca, addra, b, ifb, macb, addrb string) {
	l.t.Helper()
	l.Veth(a, ifa, maca, addra, b, ifb, macb, addrb)
}

// labIn runs fn on a thread that has joined namespace name. The thread is
// never unlocked, so it exits with fn's goroutine and nothing else ever runs
// in the namespace; fn must create its sockets itself, not in goroutines.
func labIn(t testing.TB, l *lab, name string, fn func() error) {
	t.Helper()
	netnstest.In(t, l.NS(name), fn)
}

// The line lab: a (prober) -- r (router) -- b (destination).
const (
	macA  = "02:74:66:00:01:01"
	macRA = "02:74:66:00:01:02"
	macRB = "02:74:66:00:02:01"
	macB  = "02:74:66:00:02:02"
)

var (
	addrRA = netip.MustParseAddr("10.77.1.2")
	addrB  = netip.MustParseAddr("10.77.2.2")
)

func newLineLab(t testing.TB) *lab {
	l := newLab(t, "a", "r", "b")
	l.veth("a", "va", macA, "10.77.1.1/24", "r", "ra", macRA, "10.77.1.2/24")
	l.veth("r", "rb", macRB, "10.77.2.1/24", "b", "vb", macB, "10.77.2.2/24")
	l.nsip("a", "route", "add", "default", "via", "10.77.1.2")
	l.nsip("b", "route", "add", "default", "via", "10.77.2.1")
	l.exec("r", "sysctl", "-qw", "net.ipv4.ip_forward=1")
	return l
}

// The line lab over IPv6: a (fd77:1::1) -- (fd77:1::2) r (fd77:2::1) --
// (fd77:2::2) b, DAD off, with the IPv4 addresses of newLineLab as well.
var (
	addr6A  = netip.MustParseAddr("fd77:1::1")
	addr6RA = netip.MustParseAddr("fd77:1::2")
	addr6B  = netip.MustParseAddr("fd77:2::2")
)

func newLineLab6(t testing.TB) *lab {
	t.Helper()
	l := newLab(t, "a", "r", "b")
	for _, n := range []string{"a", "r", "b"} {
		// Before the interfaces exist, so that they inherit it: their
		// link-local addresses are usable at once.
		l.exec(n, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
			"net.ipv6.icmp.ratelimit=0")
	}
	l.veth("a", "va", macA, "10.77.1.1/24", "r", "ra", macRA, "10.77.1.2/24")
	l.veth("r", "rb", macRB, "10.77.2.1/24", "b", "vb", macB, "10.77.2.2/24")
	for _, a := range [][3]string{
		{"a", "va", "fd77:1::1/64"}, {"r", "ra", "fd77:1::2/64"}, {"r", "rb", "fd77:2::1/64"}, {"b", "vb", "fd77:2::2/64"},
	} {
		l.AddAddr6(a[0], a[1], a[2])
	}
	l.nsip("a", "-6", "route", "add", "fd77::/16", "via", "fd77:1::2")
	l.nsip("b", "-6", "route", "add", "default", "via", "fd77:2::1")
	l.exec("r", "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	return l
}
