package tracertest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// Line(3): Source - r1 - r2 - r3 - dst, 1 ms a link, the destination at
// TTL 4; routers answer from the link the probe came in by.
var lineHops = map[bool][]string{
	false: {"10.0.0.1", "10.1.1.2", "10.2.1.2", "10.99.0.1"},
	true:  {"fd00::1", "fd00:1:1::2", "fd00:2:1::2", "fd00:99::1"},
}

// Every probe protocol, TTL by TTL along a line: the reply matches the
// probe (path ID, TTL), comes from the hop's address, arrives after twice
// the delays of the links crossed, with a TTL of 64 less the routers on
// the way back, and quotes the probe as it reached the node.
func TestLineRoundTrip(t *testing.T) {
	for _, c := range []struct {
		proto probe.Proto
		dst   netip.Addr
		typ   uint8 // of the destination's answer
	}{
		{probe.ProtoUDP, tracertest.DstAddr, probe.ICMPUnreachable},
		{probe.ProtoTCP, tracertest.DstAddr, probe.TypeTCP},
		{probe.ProtoICMP, tracertest.DstAddr, probe.ICMPEchoReply},
		{probe.ProtoUDP, tracertest.DstAddr6, probe.ICMPv6Unreachable},
	} {
		t.Run(fmt.Sprintf("%v-v6=%v", c.proto, c.dst.Is6()), func(t *testing.T) {
			r := newRig(t, tracertest.Line(3), nil, c.proto, c.dst)
			hops := lineHops[c.dst.Is6()]
			for ttl := 1; ttl <= 6; ttl++ {
				g, sent := r.one(c.dst, 7, ttl)
				hop := min(ttl, len(hops))
				a := g.a
				if a.Path != 7 || int(a.TTL) != ttl || a.From.String() != hops[hop-1] || a.Dst != c.dst {
					t.Errorf("TTL %d: path %d TTL %d from %v for %v, want path 7 from %s", ttl, a.Path, a.TTL, a.From, a.Dst, hops[hop-1])
				}
				if want := time.Duration(2*hop) * time.Millisecond; g.ts.Sub(sent) != want || a.RTT != want {
					t.Errorf("TTL %d: arrived after %v, RTT %v, want %v", ttl, g.ts.Sub(sent), a.RTT, want)
				}
				if want := 64 - (hop - 1); int(a.ReplyTTL) != want {
					t.Errorf("TTL %d: reply TTL %d, want %d", ttl, a.ReplyTTL, want)
				}
				reached := hop == len(hops)
				if a.Reached() != reached || reached && a.Type != c.typ {
					t.Errorf("TTL %d: reached %v, type %d", ttl, a.Reached(), a.Type)
				}
				// The probe as the node got it: TTL 1 at a router, the
				// TTL less three routers at the destination.
				if !a.Reached() && a.QTTL != 1 || a.Reached() && c.typ != probe.TypeTCP && c.typ != probe.ICMPEchoReply && int(a.QTTL) != ttl-3 {
					t.Errorf("TTL %d: quoted TTL %d", ttl, a.QTTL)
				}
			}
		})
	}
}

// The destination answers every address of its local prefix, and TCP
// according to its open ports.
func TestDestination(t *testing.T) {
	topo := tracertest.Line(1)
	topo.Node("dst").OpenTCP = []uint16{33434}
	r := newRig(t, topo, nil, probe.ProtoTCP, tracertest.DstAddr)
	for _, dst := range []netip.Addr{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.15.254")} {
		g, _ := r.one(dst, 1, 9)
		if g.a.From != dst || g.a.Type != probe.TypeTCP || g.a.Code != probe.TCPFlagSYN|probe.TCPFlagACK {
			t.Errorf("%v: from %v type %d code %#x, want a SYN-ACK from it", dst, g.a.From, g.a.Type, g.a.Code)
		}
	}
	r.spec.DstPort = 80 // a closed port: an RST
	g, _ := r.one(tracertest.DstAddr, 1, 9)
	if g.a.Code != probe.TCPFlagRST|probe.TCPFlagACK {
		t.Errorf("closed port: code %#x, want RST-ACK", g.a.Code)
	}
}

// Over IPv6, a Linux host answers port unreachable about an address it
// holds only through a local route from the address of its link towards
// the source, and from the address itself for one it has.
func TestDestination6Source(t *testing.T) {
	r := newRig(t, tracertest.Diamond(2), nil, probe.ProtoUDP, tracertest.DstAddr6)
	other := netip.MustParseAddr("fd00:99::1234")
	for dst, want := range map[netip.Addr]string{tracertest.DstAddr6: "fd00:99::1", other: "fd00:98::2"} {
		g, _ := r.one(dst, 1, 9)
		if g.a.From.String() != want || !g.a.Reached() || g.a.Dst != dst {
			t.Errorf("%v: from %v (reached %v), want %s", dst, g.a.From, g.a.Reached(), want)
		}
	}
}

func TestRoute(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Diamond(4), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	for dst, want := range map[string]string{"10.99.3.3": "10.0.0.2", "fd00:99::7": "fd00::2", "10.1.2.2": "10.0.0.2"} {
		rt, err := n.Route(ctx, netip.MustParseAddr(dst))
		if err != nil || rt.Src.String() != want || rt.Link != 0 || rt.Iface != tracertest.Iface {
			t.Errorf("Route(%s) = %+v, %v; want source %s", dst, rt, err, want)
		}
	}
	for _, dst := range []string{"192.0.2.1", "10.100.0.1", "2001:db8::1"} {
		if _, err := n.Route(ctx, netip.MustParseAddr(dst)); !errors.Is(err, tracertest.ErrNoRoute) {
			t.Errorf("Route(%s): %v, want ErrNoRoute", dst, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := n.Route(cancelled, tracertest.DstAddr); !errors.Is(err, context.Canceled) {
		t.Errorf("Route with a cancelled context: %v", err)
	}
}

func TestReserveTag(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(1), &tracertest.Options{Tag: probe.MaxTag})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	a, releaseA, err := n.ReserveTag()
	if err != nil || a != probe.MaxTag {
		t.Fatalf("first tag %d, %v; want Options.Tag %d", a, err, probe.MaxTag)
	}
	b, releaseB, err := n.ReserveTag()
	if err != nil || b != 1 {
		t.Fatalf("second tag %d, %v; want 1, the next free", b, err)
	}
	releaseA()
	releaseA() // twice is harmless
	if c, _, _ := n.ReserveTag(); c != a {
		t.Errorf("after release: tag %d, want %d again", c, a)
	}
	releaseB()
	if _, err := tracertest.NewNetwork(tracertest.Line(1), &tracertest.Options{Tag: probe.MaxTag + 1}); err == nil {
		t.Error("a tag beyond MaxTag was taken")
	}
}

// Closing the receiver, or the network, ends ReadBatch with an error;
// sending on a closed network fails.
func TestClose(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := &probe.Spec{Src: tracertest.SrcAddr, BaseSrcPort: 1000, DstPort: 33434, Paths: 1, Tag: 1}
	rx1, _ := n.Listen(spec)
	rx2, _ := n.Listen(spec)
	errs := make(chan error, 2)
	for _, rx := range []interface {
		ReadBatch(func([]byte, time.Time)) (int, error)
	}{rx1, rx2} {
		go func() {
			_, err := rx.ReadBatch(func([]byte, time.Time) { errs <- errors.New("a packet from nowhere") })
			errs <- err
		}()
	}
	rx1.Close()
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch after Receiver.Close: %v", err)
	}
	n.Close()
	if err := <-errs; !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch after Network.Close: %v", err)
	}
	if err := n.Send(0, nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, err := n.Listen(spec); err == nil {
		t.Error("Listen after Close succeeded")
	}
}

// What is not a probe is counted and dropped; a probe with a bad
// transport checksum reaches the destination, which drops it.
func TestMalformed(t *testing.T) {
	r := newRig(t, tracertest.Line(1), nil, probe.ProtoUDP, tracertest.DstAddr)
	b := make([]byte, probe.MaxProbeLen)
	n := r.spec.Encode(b, tracertest.DstAddr, 1, 5, r.clock.Now())
	badIP := append([]byte(nil), b[:n]...)
	badIP[8]-- // the TTL, without fixing the header checksum
	badUDP := append([]byte(nil), b[:n]...)
	badUDP[n-1]++ // the payload word that makes the UDP checksum right
	if err := r.net.Send(0, [][]byte{{0x45}, {0x60, 0, 0}, badIP, b[:5], badUDP}); err != nil {
		t.Fatal(err)
	}
	if err := r.net.Send(1, [][]byte{b[:n]}); err == nil {
		t.Error("Send on link 1 succeeded")
	}
	if g := r.wait(time.Second); len(g) != 0 {
		t.Errorf("%d replies to malformed probes", len(g))
	}
	s := r.net.Stats()
	if s.Sent != 5 || s.Malformed != 4 || s.BadChecksum != 1 || r.net.Counters("dst").Probes != 1 {
		t.Errorf("stats %+v, dst %+v", s, r.net.Counters("dst"))
	}
}
