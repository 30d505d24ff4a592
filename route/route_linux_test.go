package route_test

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/internal/netnstest"
	"github.com/traceflow-fast/traceflow-fast/internal/testenv"
	"github.com/traceflow-fast/traceflow-fast/route"
)

// The lab: network namespaces built by netnstest (tag "r"), removed by
// t.Cleanup. Packets are only ever sent inside them: socket-creating code
// runs on a thread that setns'd into a lab namespace (labIn), and sockets
// stay in the namespace they were created in.

// lab gives the tests of this package short names for a netnstest.Set.
type lab struct {
	*netnstest.Set
	t testing.TB
}

// newLab creates one namespace per name, with lo up and ICMP rate limits
// off, and removes them when the test ends, whatever its outcome.
func newLab(t testing.TB, names ...string) *lab {
	t.Helper()
	return &lab{netnstest.New(t, "r", names...), t}
}

func (l *lab) ns(name string) string { return l.NS(name) }

func (l *lab) ip(args ...string) string {
	l.t.Helper()
	return l.IP(args...)
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
	addrA  = netip.MustParseAddr("10.77.1.1")
	addrRA = netip.MustParseAddr("10.77.1.2")
	addrRB = netip.MustParseAddr("10.77.2.1")
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

// neigh returns `ip neigh show ADDR dev DEV` in namespace name.
func (l *lab) neigh(name string, addr netip.Addr, dev string) string {
	l.t.Helper()
	return strings.TrimSpace(l.nsip(name, "neigh", "show", addr.String(), "dev", dev))
}

func TestLookup(t *testing.T) {
	l := newLineLab(t)
	ifindex := func(name, dev string) int {
		var idx int
		labIn(t, l, name, func() error {
			ifi, err := net.InterfaceByName(dev)
			if err == nil {
				idx = ifi.Index
			}
			return err
		})
		return idx
	}
	va := ifindex("a", "va")
	lo := ifindex("a", "lo")
	l.nsip("a", "addr", "add", "10.77.9.1/32", "dev", "lo")
	l.exec("a", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1")

	tests := []struct {
		name string
		dst  netip.Addr
		opt  route.Options
		want route.Route
	}{
		{"on-link", addrRA, route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"via gateway", addrB, route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"interface override", addrB, route.Options{Interface: "va"},
			route.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"source override", addrB, route.Options{Source: netip.MustParseAddr("10.77.9.1")},
			route.Route{Ifindex: va, IfName: "va", Src: netip.MustParseAddr("10.77.9.1"), NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"IPv4-mapped destination", netip.MustParseAddr("::ffff:10.77.2.2"), route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addrA, NextHop: addrRA, HWAddr: mac(macRA), MTU: 1500}},
		{"local address goes through lo", addrA, route.Options{},
			route.Route{Ifindex: lo, IfName: "lo", Src: addrA, NextHop: addrA, HWAddr: mac("00:00:00:00:00:00"), MTU: 65536}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The neighbour must not be cached: Lookup resolves it.
			l.nsip("a", "neigh", "flush", "dev", "va")
			if n := l.neigh("a", addrRA, "va"); n != "" && !strings.Contains(n, "FAILED") {
				t.Fatalf("neighbour cached before the lookup: %q", n)
			}
			var rt *route.Route
			labIn(t, l, "a", func() (err error) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				rt, err = route.Lookup(ctx, tt.dst, tt.opt)
				return err
			})
			if rt.Ifindex != tt.want.Ifindex || rt.IfName != tt.want.IfName || rt.Src != tt.want.Src ||
				rt.NextHop != tt.want.NextHop || rt.HWAddr.String() != tt.want.HWAddr.String() || rt.MTU != tt.want.MTU {
				t.Errorf("Lookup(%s, %+v)\n got %+v\nwant %+v", tt.dst, tt.opt, *rt, tt.want)
			}
			if tt.want.IfName == "va" {
				n := l.neigh("a", addrRA, "va")
				if !strings.Contains(n, macRA) || !regexp.MustCompile(`REACHABLE|STALE|DELAY|PROBE`).MatchString(n) {
					t.Errorf("neighbour after the lookup: %q; want %s resolved", n, macRA)
				}
			}
		})
	}
}

func mac(s string) net.HardwareAddr {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return hw
}

func TestLookupErrors(t *testing.T) {
	l := newLineLab(t)
	tests := []struct {
		name   string
		ns     string
		dst    string
		opt    route.Options
		silent string // the device of a next hop that never answers
		want   string
	}{
		{"no route", "r", "10.99.0.1", route.Options{}, "", "no route to 10.99.0.1"},
		{"unknown interface", "a", "10.77.2.2", route.Options{Interface: "eth9"}, "", "interface eth9 not found"},
		{"foreign source", "a", "10.77.2.2", route.Options{Source: netip.MustParseAddr("1.2.3.4")}, "",
			"source 1.2.3.4 is not an address of this host"},
		{"IPv6 destination without a route", "a", "2001:db8::1", route.Options{}, "", "no route to 2001:db8::1"},
		{"IPv4 source, IPv6 destination", "a", "2001:db8::1", route.Options{Source: netip.MustParseAddr("10.77.1.1")}, "",
			"source 10.77.1.1 is not an IPv6 address"},
		{"silent neighbour", "a", "10.77.1.77", route.Options{}, "va",
			"no link-layer address for 10.77.1.77 on va"},
		{"interface down", "a", "10.77.1.5", route.Options{Interface: "d0"}, "", "interface d0 is down"},
		{"local without accept_local", "b", "10.77.2.2", route.Options{}, "",
			"needs sysctl net.ipv4.conf.lo.accept_local=1"},
		{"127/8 without route_localnet", "r", "127.0.0.9", route.Options{}, "",
			"needs sysctl net.ipv4.conf.lo.route_localnet=1"},
	}
	l.nsip("a", "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	l.exec("r", "sysctl", "-qw", "net.ipv4.conf.lo.accept_local=1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := lookupErr(t, l, tt.ns, tt.dst, tt.opt, tt.silent)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Lookup(%s, %+v) = %v; want an error containing %q", tt.dst, tt.opt, err, tt.want)
			}
			t.Logf("%v", err)
		})
	}
}

// lookupErr runs Lookup for dst in namespace ns and returns its error; a
// Lookup still running after netnstest.Hung fails the test as hung. With
// silentDev set, dst is a next hop on that device that never answers: the
// context is cancelled once the kernel's neighbour entry for dst shows that
// resolution was asked for (INCOMPLETE or FAILED), so that Lookup gives up
// on that event rather than after a guessed time.
func lookupErr(t *testing.T, l *lab, ns, dst string, opt route.Options, silentDev string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), netnstest.Hung)
	defer cancel()
	if silentDev != "" {
		go func() {
			asked(ctx, l.NS(ns), dst, silentDev)
			cancel()
		}()
	}
	var err error
	netnstest.InWithin(t, l.NS(ns), netnstest.Hung, func() error {
		_, err = route.Lookup(ctx, netip.MustParseAddr(dst), opt)
		return nil
	})
	return err
}

// asked returns once namespace ns has a neighbour entry for addr on dev
// that is being resolved or has failed, or when ctx is done.
func asked(ctx context.Context, ns, addr, dev string) {
	for ctx.Err() == nil {
		out, _ := exec.CommandContext(ctx, "ip", "-n", ns, "neigh", "show", addr, "dev", dev).Output()
		if strings.Contains(string(out), "INCOMPLETE") || strings.Contains(string(out), "FAILED") {
			return
		}
		time.Sleep(5 * time.Millisecond) // paces the polling only
	}
}

// TestLookupNoDeadline checks that an unresolvable next hop does not
// block forever when the context has no deadline.
func TestLookupNoDeadline(t *testing.T) {
	testenv.SkipIfShort(t, "waits for route.ResolveTimeout")
	l := newLineLab(t)
	var err error
	netnstest.InWithin(t, l.NS("a"), netnstest.Hung, func() error {
		_, err = route.Lookup(context.Background(), netip.MustParseAddr("10.77.1.78"), route.Options{})
		return nil
	})
	// The caller's context never ends: only Lookup's own bound,
	// ResolveTimeout, can have ended the resolution with this error.
	if want := "no link-layer address for 10.77.1.78 on va"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Lookup = %v; want an error containing %q", err, want)
	}
	if n := l.neigh("a", netip.MustParseAddr("10.77.1.78"), "va"); !strings.Contains(n, "FAILED") && !strings.Contains(n, "INCOMPLETE") {
		t.Errorf("neighbour %q; want the kernel to have tried (INCOMPLETE/FAILED)", n)
	}
}

// Without CAP_NET_ADMIN (a run that dropped its privileges) the kernel
// refuses RTM_NEWNEIGH; Lookup still resolves the next hop.
func TestLookupWithoutNetAdmin(t *testing.T) {
	l := newLineLab(t)
	l.nsip("a", "neigh", "flush", "dev", "va")
	var rt *route.Route
	labIn(t, l, "a", func() (err error) {
		// This thread is never reused (netnstest.In), so its
		// capabilities may be cut.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			return err
		}
		data[unix.CAP_NET_ADMIN/32].Effective &^= 1 << (unix.CAP_NET_ADMIN % 32)
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rt, err = route.Lookup(ctx, addrB, route.Options{})
		return err
	})
	if rt.HWAddr.String() != macRA {
		t.Errorf("next hop resolved to %v, want %s", rt.HWAddr, macRA)
	}
}
