package probe_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/capture"
	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/route"
)

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
func trace6(t *testing.T, l *lab, ns string, dst netip.Addr, paths, maxTTL int) (*route.Route, map[hop]answer) {
	t.Helper()
	var rt *route.Route
	var s *probe.Sender
	var c *capture.Conn
	labIn(t, l, ns, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if rt, err = route.Lookup(ctx, dst, route.Options{}); err != nil {
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
	spec := &probe.Spec{Src: rt.Src, BaseSrcPort: 33000, DstPort: 33434, Paths: paths, Tag: 321, Epoch: wallNow()}
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	var pkts [][]byte
	sent := map[hop]time.Time{}
	for p := 1; p <= paths; p++ {
		for ttl := 1; ttl <= maxTTL; ttl++ {
			b := make([]byte, probe.MaxProbeLen)
			sent[hop{p, ttl}] = wallNow()
			pkts = append(pkts, b[:spec.Encode(b, dst, p, ttl, sent[hop{p, ttl}])])
		}
	}
	if n, err := s.Send(pkts); n != len(pkts) || err != nil {
		t.Fatalf("Send = %d, %v; want %d, nil", n, err, len(pkts))
	}
	got := map[hop]answer{}
	m := probe.NewMatcher(spec)
	var rep probe.Reply
	var a probe.Answer
	if err := c.SetReadDeadline(time.Now().Add(answerWait)); err != nil {
		t.Fatal(err)
	}
	for len(got) < len(pkts) {
		_, err := c.ReadBatch(func(pkt []byte, ts time.Time) {
			if !m.Match(pkt, ts, &rep, &a) {
				return
			}
			h := hop{int(a.Path), int(a.TTL)}
			got[h] = answer{a.From, a.Type, a.Reached(), a.RTT}
			checkRTT(t, h, a.RTT, sent[h], ts)
		})
		if err != nil {
			t.Fatalf("%d of %d probes answered: %v (%v)", len(got), len(pkts), got, err)
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
	l.AddAddr6("l", "lo", "fd77:7::1/128")
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
