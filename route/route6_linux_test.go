package route_test

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/route"
)

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

// linkLocal returns the link-local address of dev in namespace name.
func (l *lab) linkLocal(name, dev string) netip.Addr {
	l.t.Helper()
	m := regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+)/64`).FindStringSubmatch(l.nsip(name, "-6", "addr", "show", "dev", dev, "scope", "link"))
	if m == nil {
		l.t.Fatalf("no link-local address on %s in %s", dev, name)
	}
	return netip.MustParseAddr(m[1])
}

func TestLookup6(t *testing.T) {
	l := newLineLab6(t)
	var va, lo int
	labIn(t, l, "a", func() error {
		for _, x := range []struct {
			name  string
			index *int
		}{{"va", &va}, {"lo", &lo}} {
			ifi, err := net.InterfaceByName(x.name)
			if err != nil {
				return err
			}
			*x.index = ifi.Index
		}
		return nil
	})
	ll := l.linkLocal("r", "ra")
	l.nsip("a", "-6", "route", "add", "fd77:8::/64", "via", ll.String(), "dev", "va")
	l.AddAddr6("a", "lo", "fd77:9::1/128")
	src9 := netip.MustParseAddr("fd77:9::1")

	tests := []struct {
		name string
		dst  netip.Addr
		opt  route.Options
		want route.Route
	}{
		{"on-link", addr6RA, route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"via gateway", addr6B, route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"via a link-local gateway", netip.MustParseAddr("fd77:8::5"), route.Options{},
			route.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: ll, HWAddr: mac(macRA), MTU: 1500}},
		{"interface override", addr6B, route.Options{Interface: "va"},
			route.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"source override", addr6B, route.Options{Source: src9},
			route.Route{Ifindex: va, IfName: "va", Src: src9, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"local address goes through lo", addr6A, route.Options{},
			route.Route{Ifindex: lo, IfName: "lo", Src: addr6A, NextHop: addr6A, HWAddr: mac("00:00:00:00:00:00"), MTU: 65536}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The neighbour must not be cached: Lookup resolves it.
			l.nsip("a", "-6", "neigh", "flush", "dev", "va")
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
				n := l.neigh("a", tt.want.NextHop, "va")
				if !strings.Contains(n, macRA) || !regexp.MustCompile(`REACHABLE|STALE|DELAY|PROBE`).MatchString(n) {
					t.Errorf("neighbour after the lookup: %q; want %s resolved", n, macRA)
				}
			}
		})
	}

	lookupErrors6(t, l)
}

// lookupErrors6 checks the refusals of Lookup over IPv6 in the lab of
// TestLookup6.
func lookupErrors6(t *testing.T, l *lab) {
	t.Helper()
	for _, tt := range []struct {
		name, dst string
		opt       route.Options
		silent    string // the device of a next hop that never answers
		want      string
	}{
		{"no route", "2001:db8::1", route.Options{}, "", "no route to 2001:db8::1"},
		{"IPv4 source", "fd77:2::2", route.Options{Source: netip.MustParseAddr("10.77.1.1")}, "", "source 10.77.1.1 is not an IPv6 address"},
		{"foreign source", "fd77:2::2", route.Options{Source: netip.MustParseAddr("fd77:1::99")}, "", "source fd77:1::99 is not an address of this host"},
		{"zone", "fe80::1%va", route.Options{}, "", "zone"},
		{"silent neighbour", "fd77:1::77", route.Options{}, "va", "no link-layer address for fd77:1::77 on va"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := lookupErr(t, l, "a", tt.dst, tt.opt, tt.silent)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Lookup(%s, %+v) = %v; want an error containing %q", tt.dst, tt.opt, err, tt.want)
			}
		})
	}
}

// Without CAP_NET_ADMIN the kernel refuses RTM_NEWNEIGH; Lookup still
// resolves an IPv6 next hop, a global and a link-local one, with a
// datagram that makes the kernel solicit it.
func TestLookup6WithoutNetAdmin(t *testing.T) {
	l := newLineLab6(t)
	ll := l.linkLocal("r", "ra")
	l.nsip("a", "-6", "route", "add", "fd77:8::/64", "via", ll.String(), "dev", "va")
	for _, tc := range []struct {
		dst, hop netip.Addr
	}{{addr6B, addr6RA}, {netip.MustParseAddr("fd77:8::5"), ll}} {
		l.nsip("a", "-6", "neigh", "flush", "dev", "va")
		var rt *route.Route
		labIn(t, l, "a", func() (err error) {
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
			rt, err = route.Lookup(ctx, tc.dst, route.Options{})
			return err
		})
		if rt.NextHop != tc.hop || rt.HWAddr.String() != macRA {
			t.Errorf("%s: next hop %s resolved to %v, want %s at %s", tc.dst, rt.NextHop, rt.HWAddr, tc.hop, macRA)
		}
	}
}
