package tracertest_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/icmp"

	"github.com/traceflow-fast/traceflow-fast/probe"
	"github.com/traceflow-fast/traceflow-fast/tracer/tracertest"
)

// verify decodes a reply with gopacket and checks every checksum it
// carries: IPv4 header, ICMP, ICMPv6 (with its pseudo header), TCP.
func verify(t *testing.T, pkt []byte) gopacket.Packet {
	t.Helper()
	first := layers.LayerTypeIPv4
	if pkt[0]>>4 == 6 {
		first = layers.LayerTypeIPv6
	}
	p := gopacket.NewPacket(pkt, first, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket: %v", e.Error())
	}
	type verifier interface {
		VerifyChecksum() (error, gopacket.ChecksumVerificationResult)
	}
	checked := 0
	for _, l := range p.Layers() {
		switch l := l.(type) {
		case *layers.ICMPv6:
			l.SetNetworkLayerForChecksum(p.NetworkLayer())
		case *layers.TCP:
			l.SetNetworkLayerForChecksum(p.NetworkLayer())
		}
		v, ok := l.(verifier)
		if !ok {
			continue
		}
		checked++
		if err, res := v.VerifyChecksum(); err != nil || !res.Valid {
			t.Errorf("%v checksum: %v, %+v", l.LayerType(), err, res)
		}
	}
	// IPv4: the header's and the ICMP or TCP one; IPv6 has no header
	// checksum.
	if want := 2 - int(pkt[0]>>4)/6; checked != want {
		t.Errorf("%d checksums verified in %v, want %d", checked, p, want)
	}
	return p
}

// Every kind of reply, decoded by gopacket and x/net/icmp, has valid
// checksums, the right type and code, and quotes the probe.
func TestReplyBytes(t *testing.T) {
	topo := tracertest.Line(2)
	topo.Node("r2").Reject = true
	for _, c := range []struct {
		proto     probe.Proto
		dst       netip.Addr
		ttl       int
		typ, code int
	}{
		{probe.ProtoUDP, tracertest.DstAddr, 1, 11, 0},
		{probe.ProtoUDP, tracertest.DstAddr, 5, 3, 13},
		{probe.ProtoTCP, tracertest.DstAddr, 1, 11, 0},
		{probe.ProtoICMP, tracertest.DstAddr, 1, 11, 0},
		{probe.ProtoUDP, tracertest.DstAddr6, 1, 3, 0},
		{probe.ProtoUDP, tracertest.DstAddr6, 5, 1, 1},
	} {
		t.Run(fmt.Sprintf("%v-%v-ttl%d", c.proto, c.dst, c.ttl), func(t *testing.T) {
			r := newRig(t, topo, nil, c.proto, c.dst)
			sent := make([]byte, probe.MaxProbeLen)
			sent = sent[:r.spec.Encode(sent, c.dst, 3, c.ttl, r.clock.Now())]
			g, _ := r.one(c.dst, 3, c.ttl)
			verify(t, g.pkt)
			proto, hdr := 1, 20
			if c.dst.Is6() {
				proto, hdr = 58, 40
			}
			m, err := icmp.ParseMessage(proto, g.pkt[hdr:])
			if err != nil {
				t.Fatal(err)
			}
			typ, _ := m.Type.(interface{ Protocol() int })
			if typ == nil || m.Code != c.code || fmt.Sprint(m.Type) == "" {
				t.Errorf("type %v code %d", m.Type, m.Code)
			}
			var data []byte
			switch b := m.Body.(type) {
			case *icmp.TimeExceeded:
				data = b.Data
			case *icmp.DstUnreach:
				data = b.Data
			default:
				t.Fatalf("body %T", m.Body)
			}
			// The whole probe, as the node got it: the TTL it had
			// there (IPv4: and the header checksum to match).
			want := slices.Clone(sent)
			ttlAt := 1
			if c.ttl > 1 {
				ttlAt = c.ttl - 1 // r2 got it after r1
			}
			if c.dst.Is6() {
				want[7] = byte(ttlAt)
			} else {
				want[8] = byte(ttlAt)
				want[10], want[11] = 0, 0
				s := probe.Checksum(want[:20])
				want[10], want[11] = byte(s>>8), byte(s)
			}
			if !slices.Equal(data, want) {
				t.Errorf("quote\n%x, want\n%x", data, want)
			}
		})
	}
}

// The destination's own answers: echo reply (identifier, sequence,
// payload echoed), SYN-ACK and RST (acknowledging SYN.seq+1).
func TestDirectReplyBytes(t *testing.T) {
	topo := tracertest.Line(1)
	topo.Node("dst").OpenTCP = []uint16{443}
	for _, c := range []struct {
		proto probe.Proto
		port  uint16
	}{{probe.ProtoICMP, 0}, {probe.ProtoTCP, 443}, {probe.ProtoTCP, 33434}} {
		t.Run(fmt.Sprintf("%v-%d", c.proto, c.port), func(t *testing.T) {
			r := newRig(t, topo, nil, c.proto, tracertest.DstAddr)
			if c.port != 0 {
				r.spec.DstPort = c.port
			}
			sent := make([]byte, probe.MaxProbeLen)
			sent = sent[:r.spec.Encode(sent, tracertest.DstAddr, 2, 9, r.clock.Now())]
			g, _ := r.one(tracertest.DstAddr, 2, 9)
			p := verify(t, g.pkt)
			switch c.proto {
			case probe.ProtoICMP:
				m, err := icmp.ParseMessage(1, g.pkt[20:])
				e, ok := m.Body.(*icmp.Echo)
				if err != nil || !ok || m.Type.(interface{ String() string }).String() != "echo reply" ||
					!slices.Equal(g.pkt[24:], sent[24:]) || e.ID != 33002 {
					t.Errorf("echo reply %v %+v: %x, request %x", err, m, g.pkt[20:], sent[20:])
				}
			case probe.ProtoTCP:
				tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
				seq := uint32(sent[24])<<24 | uint32(sent[25])<<16 | uint32(sent[26])<<8 | uint32(sent[27])
				if tcp.Ack != seq+1 || !tcp.ACK || tcp.SYN != (c.port == 443) || tcp.RST != (c.port != 443) ||
					tcp.SrcPort != layers.TCPPort(c.port) || tcp.DstPort != 33002 {
					t.Errorf("TCP answer %+v to seq %d", tcp, seq)
				}
			}
		})
	}
}

// A router set to quote 28 bytes (RFC 792's least) quotes an IPv4 header
// and 8 bytes: the UDP and TCP probes still match, with their clock; the
// ICMP probe matches without its clock (RTT 0).
func TestQuoteLen(t *testing.T) {
	for _, proto := range []probe.Proto{probe.ProtoUDP, probe.ProtoTCP, probe.ProtoICMP} {
		topo := tracertest.Line(1)
		topo.Node("r1").QuoteLen = 28
		r := newRig(t, topo, nil, proto, tracertest.DstAddr)
		g, _ := r.one(tracertest.DstAddr, 1, 1)
		verify(t, g.pkt)
		if len(g.pkt) != 20+8+28 {
			t.Errorf("%v: reply of %d bytes, want 56", proto, len(g.pkt))
		}
		if wantRTT := 2 * time.Millisecond; (proto == probe.ProtoICMP) != (g.a.RTT == 0) || proto != probe.ProtoICMP && g.a.RTT != wantRTT {
			t.Errorf("%v: RTT %v", proto, g.a.RTT)
		}
	}
}

// A router in an MPLS tunnel adds an RFC 4950 label stack, after a quote
// padded to 128 bytes, with the RFC 4884 length attribute.
func TestMPLS(t *testing.T) {
	labels := []probe.MPLSLabel{{Label: 16005, TC: 5, TTL: 1}, {Label: 1<<20 - 1, TTL: 255}}
	for _, dst := range []netip.Addr{tracertest.DstAddr, tracertest.DstAddr6} {
		topo := tracertest.Line(2)
		topo.Node("r2").MPLS = labels
		r := newRig(t, topo, nil, probe.ProtoUDP, dst)
		g, _ := r.one(dst, 1, 2)
		verify(t, g.pkt)
		want := slices.Clone(labels)
		want[1].S = true
		if got := g.a.Ext.Labels[:g.a.Ext.NLabels]; !slices.Equal(got, want) || g.a.Ext.Flags != probe.ExtRFC4884 {
			t.Errorf("%v: labels %+v flags %v, want %+v", dst, got, g.a.Ext.Flags, want)
		}
		proto, hdr := 1, 20
		if dst.Is6() {
			proto, hdr = 58, 40
		}
		m, err := icmp.ParseMessage(proto, g.pkt[hdr:])
		if err != nil {
			t.Fatal(err)
		}
		te, ok := m.Body.(*icmp.TimeExceeded)
		if !ok || len(te.Extensions) != 1 {
			t.Fatalf("%v: body %+v", dst, m.Body)
		}
		st, ok := te.Extensions[0].(*icmp.MPLSLabelStack)
		if !ok || len(st.Labels) != 2 || st.Labels[0].Label != 16005 || st.Labels[0].TC != 5 || !st.Labels[1].S || len(te.Data) != 128 {
			t.Errorf("%v: x/net/icmp reads %+v, quote of %d bytes", dst, te.Extensions[0], len(te.Data))
		}
		if hop := r.net.Counters("r1"); hop.Replies != 0 || hop.Probes != 1 {
			t.Errorf("r1 counters %+v", hop)
		}
	}
}

// serialize builds a packet with gopacket, checksums and lengths filled in.
func serialize(t *testing.T, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true, FixLengths: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Probes that package probe does not build (an ICMPv6 echo request, a TCP
// SYN over IPv6, an IPv4 header with options), built by gopacket: the
// network answers them as Linux would.
func TestForeignProbes(t *testing.T) {
	n, err := tracertest.NewNetwork(tracertest.Line(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rx, _ := n.Listen(&probe.Spec{Src: tracertest.SrcAddr6, BaseSrcPort: 1, DstPort: 1, Paths: 1, Tag: 1})
	src, dst := tracertest.SrcAddr6.AsSlice(), tracertest.DstAddr6.AsSlice()
	ip6 := func(next layers.IPProtocol, hops uint8) *layers.IPv6 {
		return &layers.IPv6{Version: 6, NextHeader: next, HopLimit: hops, SrcIP: src, DstIP: dst}
	}
	echo := func(hops uint8) []byte {
		ip := ip6(layers.IPProtocolICMPv6, hops)
		icmp6 := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		icmp6.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, icmp6, &layers.ICMPv6Echo{Identifier: 0x1234, SeqNumber: 7}, gopacket.Payload("ping"))
	}
	ip := ip6(layers.IPProtocolTCP, 9)
	syn := &layers.TCP{SrcPort: 40000, DstPort: 80, Seq: 1000, SYN: true, Window: 1024}
	syn.SetNetworkLayerForChecksum(ip)
	ip4 := &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolUDP, SrcIP: tracertest.SrcAddr.AsSlice(), DstIP: tracertest.DstAddr.AsSlice(),
		Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}
	udp := &layers.UDP{SrcPort: 5000, DstPort: 33434}
	udp.SetNetworkLayerForChecksum(ip4)
	if err := n.Send(0, [][]byte{echo(1), echo(9), serialize(t, ip, syn), serialize(t, ip4, udp, gopacket.Payload("x"))}); err != nil {
		t.Fatal(err)
	}
	replies := make(chan string)
	go func() {
		for {
			_, err := rx.ReadBatch(func(pkt []byte, _ time.Time) { replies <- describe(t, pkt) })
			if err != nil {
				return
			}
		}
	}()
	var got []string
	tm := n.Clock().NewTimer()
	tm.Reset(time.Second)
	for wait := true; wait; {
		select {
		case r := <-replies:
			got = append(got, r)
		case <-tm.C():
			wait = false
		}
	}
	slices.Sort(got)
	want := []string{
		"10.0.0.1 ICMPv4 TimeExceeded(TTLExceeded) quoting 24-byte header",
		"fd00:99::1 ICMPv6 EchoReply id 4660 seq 7 ping",
		"fd00:99::1 TCP RST=true ACK 1001 from 80 to 40000",
		"fd00::1 ICMPv6 TimeExceeded(HopLimitExceeded) quoting 52 bytes",
	}
	if !slices.Equal(got, want) {
		t.Errorf("replies\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// describe says what a reply is, after verifying its checksums.
func describe(t *testing.T, pkt []byte) string {
	p := verify(t, pkt)
	from := p.NetworkLayer().NetworkFlow().Src().String()
	switch l := p.Layers()[1].(type) {
	case *layers.ICMPv6:
		if e, ok := p.Layer(layers.LayerTypeICMPv6Echo).(*layers.ICMPv6Echo); ok {
			return fmt.Sprintf("%s ICMPv6 %v id %d seq %d %s", from, l.TypeCode, e.Identifier, e.SeqNumber, e.Payload)
		}
		return fmt.Sprintf("%s ICMPv6 %v quoting %d bytes", from, l.TypeCode, len(l.Payload)-4)
	case *layers.ICMPv4:
		return fmt.Sprintf("%s ICMPv4 %v quoting %d-byte header", from, l.TypeCode, int(l.Payload[0]&15)*4)
	case *layers.TCP:
		return fmt.Sprintf("%s TCP RST=%v ACK %d from %d to %d", from, l.RST, l.Ack, l.SrcPort, l.DstPort)
	}
	return "unknown " + p.String()
}
