package probe_test

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/probe"
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
		l.nsip(a[0], "addr", "add", a[2], "dev", a[1], "nodad")
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

func TestLookupRoute6(t *testing.T) {
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
	l.nsip("a", "addr", "add", "fd77:9::1/128", "dev", "lo", "nodad")
	src9 := netip.MustParseAddr("fd77:9::1")

	tests := []struct {
		name string
		dst  netip.Addr
		opt  probe.RouteOptions
		want probe.Route
	}{
		{"on-link", addr6RA, probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"via gateway", addr6B, probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"via a link-local gateway", netip.MustParseAddr("fd77:8::5"), probe.RouteOptions{},
			probe.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: ll, HWAddr: mac(macRA), MTU: 1500}},
		{"interface override", addr6B, probe.RouteOptions{Interface: "va"},
			probe.Route{Ifindex: va, IfName: "va", Src: addr6A, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"source override", addr6B, probe.RouteOptions{Source: src9},
			probe.Route{Ifindex: va, IfName: "va", Src: src9, NextHop: addr6RA, HWAddr: mac(macRA), MTU: 1500}},
		{"local address goes through lo", addr6A, probe.RouteOptions{},
			probe.Route{Ifindex: lo, IfName: "lo", Src: addr6A, NextHop: addr6A, HWAddr: mac("00:00:00:00:00:00"), MTU: 65536}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The neighbour must not be cached: LookupRoute resolves it.
			l.nsip("a", "-6", "neigh", "flush", "dev", "va")
			var rt *probe.Route
			labIn(t, l, "a", func() (err error) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				rt, err = probe.LookupRoute(ctx, tt.dst, tt.opt)
				return err
			})
			if rt.Ifindex != tt.want.Ifindex || rt.IfName != tt.want.IfName || rt.Src != tt.want.Src ||
				rt.NextHop != tt.want.NextHop || rt.HWAddr.String() != tt.want.HWAddr.String() || rt.MTU != tt.want.MTU {
				t.Errorf("LookupRoute(%s, %+v)\n got %+v\nwant %+v", tt.dst, tt.opt, *rt, tt.want)
			}
			if tt.want.IfName == "va" {
				n := l.neigh("a", tt.want.NextHop, "va")
				if !strings.Contains(n, macRA) || !regexp.MustCompile(`REACHABLE|STALE|DELAY|PROBE`).MatchString(n) {
					t.Errorf("neighbour after the lookup: %q; want %s resolved", n, macRA)
				}
			}
		})
	}

	for _, tt := range []struct {
		name, dst string
		opt       probe.RouteOptions
		want      string
	}{
		{"no route", "2001:db8::1", probe.RouteOptions{}, "no route to 2001:db8::1"},
		{"IPv4 source", "fd77:2::2", probe.RouteOptions{Source: netip.MustParseAddr("10.77.1.1")}, "source 10.77.1.1 is not an IPv6 address"},
		{"foreign source", "fd77:2::2", probe.RouteOptions{Source: netip.MustParseAddr("fd77:1::99")}, "source fd77:1::99 is not an address of this host"},
		{"zone", "fe80::1%va", probe.RouteOptions{}, "zone"},
		{"silent neighbour", "fd77:1::77", probe.RouteOptions{}, "no link-layer address for fd77:1::77 on va"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			labIn(t, l, "a", func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				defer cancel()
				_, err = probe.LookupRoute(ctx, netip.MustParseAddr(tt.dst), tt.opt)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LookupRoute(%s, %+v) = %v; want an error containing %q", tt.dst, tt.opt, err, tt.want)
			}
		})
	}
}

// Without CAP_NET_ADMIN the kernel refuses RTM_NEWNEIGH; LookupRoute still
// resolves an IPv6 next hop, a global and a link-local one, with a
// datagram that makes the kernel solicit it.
func TestLookupRoute6WithoutNetAdmin(t *testing.T) {
	l := newLineLab6(t)
	ll := l.linkLocal("r", "ra")
	l.nsip("a", "-6", "route", "add", "fd77:8::/64", "via", ll.String(), "dev", "va")
	for _, tc := range []struct {
		dst, hop netip.Addr
	}{{addr6B, addr6RA}, {netip.MustParseAddr("fd77:8::5"), ll}} {
		l.nsip("a", "-6", "neigh", "flush", "dev", "va")
		var rt *probe.Route
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
			rt, err = probe.LookupRoute(ctx, tc.dst, probe.RouteOptions{})
			return err
		})
		if rt.NextHop != tc.hop || rt.HWAddr.String() != macRA {
			t.Errorf("%s: next hop %s resolved to %v, want %s at %s", tc.dst, rt.NextHop, rt.HWAddr, tc.hop, macRA)
		}
	}
}

// icmp6Only attaches a classic BPF filter that keeps whole ICMPv6 packets
// (no extension headers). With a SOCK_DGRAM packet socket, offset 0 is the
// IPv6 header.
func icmp6Only(fd int) error {
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_B | unix.BPF_ABS, K: 6}, // next header
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.IPPROTO_ICMPV6, Jt: 0, Jf: 1},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff},
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// trace6 sends one IPv6 probe per (path, ttl) from namespace ns to dst
// through a Sender (sll_protocol ETH_P_IPV6) and returns the answers read
// by an IPv6 capture socket, matched with ParseReply6.
func trace6(t *testing.T, l *lab, ns string, dst netip.Addr, paths, maxTTL int) (*probe.Route, map[hop]answer) {
	t.Helper()
	var rt *probe.Route
	var s *probe.Sender
	var c *capture.Conn
	labIn(t, l, ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if rt, err = probe.LookupRoute(ctx, dst, probe.RouteOptions{}); err != nil {
			return err
		}
		if c, err = capture.Listen(capture.Config{Ifindex: rt.Ifindex, Attach: icmp6Only, IPv6: true}); err != nil {
			return err
		}
		s, err = probe.NewSender(rt)
		return err
	})
	defer s.Close()
	defer c.Close()
	spec := &probe.Spec{Src: rt.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: paths, Tag: 321, Epoch: time.Now()}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	for p := 1; p <= paths; p++ {
		for ttl := 1; ttl <= maxTTL; ttl++ {
			b := make([]byte, probe.MaxProbeLen)
			pkts = append(pkts, b[:spec.Encode(b, dst, p, ttl, time.Now())])
		}
	}
	if n, err := s.Send(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", n, err, len(pkts))
	}
	got := map[hop]answer{}
	m := probe.NewMatcher(spec)
	var rep probe.Reply
	var a probe.Answer
	if err := c.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(got) < len(pkts) {
		_, err := c.ReadBatch(func(pkt []byte, ts time.Time) {
			if !m.Match(pkt, ts, &rep, &a) {
				return
			}
			got[hop{int(a.Path), int(a.TTL)}] = answer{a.From, a.Type, a.Reached(), a.RTT}
		})
		if err != nil {
			t.Fatalf("%d of %d probes answered: %v (%v)", len(got), len(pkts), got, err)
		}
	}
	for h, a := range got {
		if a.rtt <= 0 || a.rtt >= time.Second {
			t.Errorf("path %d TTL %d: RTT %v; want in (0, 1s)", h.path, h.ttl, a.rtt)
		}
	}
	return rt, got
}

// TestTraceThroughRouter6 sends IPv6 probes from a through router r to b:
// hop limit 1 expires at r, 2 and 3 reach b, which answers port
// unreachable.
func TestTraceThroughRouter6(t *testing.T) {
	l := newLineLab6(t)
	l.nsip("a", "-6", "neigh", "flush", "dev", "va")
	rt, got := trace6(t, l, "a", addr6B, 4, 3)
	if rt.NextHop != addr6RA || rt.HWAddr.String() != macRA {
		t.Fatalf("route %+v; want next hop %s at %s", *rt, addr6RA, macRA)
	}
	for h, a := range got {
		want := answer{from: addr6B, typ: probe.ICMPv6Unreachable, reached: true}
		if h.ttl == 1 {
			want = answer{from: addr6RA, typ: probe.ICMPv6TimeExceeded}
		}
		if a.from != want.from || a.typ != want.typ || a.reached != want.reached {
			t.Errorf("path %d TTL %d: from %s type %d reached %v; want from %s type %d reached %v",
				h.path, h.ttl, a.from, a.typ, a.reached, want.from, want.typ, want.reached)
		}
	}
}

// TestTraceLoopback6 traces a local IPv6 address through lo.
func TestTraceLoopback6(t *testing.T) {
	l := newLab(t, "l")
	l.exec("l", "sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
	l.nsip("l", "addr", "add", "fd77:7::1/128", "dev", "lo", "nodad")
	dst := netip.MustParseAddr("fd77:7::1")
	rt, got := trace6(t, l, "l", dst, 2, 2)
	if rt.IfName != "lo" || rt.NextHop != dst || rt.Src != dst {
		t.Fatalf("route %+v; want lo, next hop and source %s", *rt, dst)
	}
	for h, a := range got {
		if a.from != dst || !a.reached {
			t.Errorf("path %d TTL %d: from %s reached %v; want port unreachable from %s", h.path, h.ttl, a.from, a.reached, dst)
		}
	}
}
