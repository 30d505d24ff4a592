//go:build linux

package bpf

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/traceflow-fast/traceflow-fast/probe"
)

// The runs of the TCP and ICMP corpora: runSpec with another protocol.
var (
	tcpSpec  = withProto(runSpec, probe.ProtoTCP, 443)
	icmpSpec = withProto(runSpec, probe.ProtoICMP, 0)
)

func withProto(s probe.Spec, p probe.Proto, dport uint16) probe.Spec {
	s.Proto, s.DstPort = p, dport
	return s
}

// matchOf is the filter's Match for the probes of s.
func matchOf(s probe.Spec) Match {
	return Match{
		Proto:      s.Proto,
		Src:        s.Src,
		SrcPortMin: s.BaseSrcPort + 1,
		SrcPortMax: s.BaseSrcPort + uint16(s.Paths),
		DstPort:    s.DstPort,
		Tag:        s.Tag,
	}
}

// tcpSegment returns the frame of a TCP segment (RFC 9293, with opts) from
// from to to, with a valid checksum.
func tcpSegment(from, to netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8, opts []byte) []byte {
	t := make([]byte, 20+len(opts))
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], seq)
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = uint8(len(t)/4) << 4
	t[13] = flags
	binary.BigEndian.PutUint16(t[14:], 64240)
	copy(t[20:], opts)
	f, d := from.As4(), to.As4()
	pseudo := append(append(f[:], d[:]...), 0, unix.IPPROTO_TCP, 0, byte(len(t)))
	binary.BigEndian.PutUint16(t[16:], probe.Checksum(append(pseudo, t...)))
	return eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_TCP, from, to, nil, t))
}

// probeSeq returns the sequence number of the TCP probe p.
func probeSeq(p []byte) uint32 { return binary.BigEndian.Uint32(p[20+4:]) }

// answer returns the destination's answer to TCP probe p of s (to us, ack =
// seq + 1) with the given flags.
func answer(s probe.Spec, p []byte, flags uint8) []byte {
	return tcpSegment(target, ourSrc, s.DstPort, binary.BigEndian.Uint16(p[20:]), 0x5eed, probeSeq(p)+1, flags, nil)
}

// echoReply returns the frame of the echo reply (RFC 792) that from sends
// to to for the echo request message req (ICMP header and data), with typ
// as its type.
func echoReply(from, to netip.Addr, typ uint8, req []byte) []byte {
	m := append([]byte(nil), req...)
	m[0] = typ
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], probe.Checksum(m))
	return eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, from, to, nil, m))
}

// tcpCorpus holds the replies a TCP run's filter keeps (time exceeded and
// unreachable messages quoting its probes, SYN-ACKs and RSTs from the
// destination) and near misses it drops.
func tcpCorpus() []filterCase {
	s := tcpSpec
	other := func(f func(s *probe.Spec)) probe.Spec {
		c := s
		f(&c)
		return c
	}
	p := encodeProbe(s, 3, 7)
	sport := s.BaseSrcPort + 3
	seq := probeSeq(p)
	te := reply(probe.ICMPTimeExceeded, 0, p)
	synAck := answer(s, p, probe.TCPFlagSYN|probe.TCPFlagACK)
	mss := []byte{2, 4, 5, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7} // MSS, NOP, NOP, SACK permitted, NOP, window scale
	seg := func(sp, dp uint16, ack uint32, flags uint8) []byte {
		return tcpSegment(target, ourSrc, sp, dp, 0x5eed, ack, flags, nil)
	}
	sa := uint8(probe.TCPFlagSYN | probe.TCPFlagACK)
	return []filterCase{
		{"time exceeded", te, true},
		{"time exceeded, RFC 792 quote (ports and sequence number)", reply(11, 0, p[:28]), true},
		{"time exceeded, ports exactly at the end", te[:14+20+8+20+4], true},
		{"port unreachable from the target", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, target, ourSrc, nil,
			icmp(probe.ICMPUnreachable, probe.CodePortUnreachable, p, nil))), true},
		{"quoted IHL 6", reply(11, 0, withIPOptions(p, []byte{0x94, 4, 0, 0})), true},
		{"SYN-ACK", synAck, true},
		{"RST-ACK", answer(s, p, probe.TCPFlagRST|probe.TCPFlagACK), true},
		{"SYN-ACK with options", tcpSegment(target, ourSrc, s.DstPort, sport, 1, seq+1, sa, mss), true},
		{"SYN-ACK with ECE", answer(s, p, sa|0x40), true},
		{"SYN-ACK, first path, TTL 1", answer(s, encodeProbe(s, 1, 1), sa), true},
		{"SYN-ACK, last path, TTL 64", answer(s, encodeProbe(s, 16, 64), sa), true},
		{"SYN-ACK from another address", tcpSegment(router, ourSrc, s.DstPort, sport, 1, seq+1, sa, nil), true},
		{"SYN-ACK, outer IHL 6", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_TCP, target, ourSrc, []byte{1, 1, 1, 0}, synAck[14+20:])), true},
		{"SYN-ACK, first fragment", edit(synAck, func(b []byte) { b[14+6] = 0x20; fixIPChecksum(b[14:]) }), true},
		{"SYN-ACK, link-layer padding", append(append([]byte(nil), synAck...), 0, 0, 0, 0, 0, 0), true},

		{"our own SYN", eth(unix.ETH_P_IP, p), false},
		{"SYN without ACK", seg(s.DstPort, sport, seq+1, probe.TCPFlagSYN), false},
		{"ACK only", seg(s.DstPort, sport, seq+1, probe.TCPFlagACK), false},
		{"FIN-ACK", seg(s.DstPort, sport, seq+1, probe.TCPFlagFIN|probe.TCPFlagACK), false},
		{"RST without ACK", seg(s.DstPort, sport, seq+1, probe.TCPFlagRST), false},
		{"SYN-ACK from another port", seg(s.DstPort+1, sport, seq+1, sa), false},
		{"SYN-ACK to port below range", seg(s.DstPort, s.BaseSrcPort, seq+1, sa), false},
		{"SYN-ACK to port above range", seg(s.DstPort, s.BaseSrcPort+17, seq+1, sa), false},
		{"SYN-ACK for another tag", seg(s.DstPort, sport, probe.TCPSeq(1, s.Tag+1, 7)+1, sa), false},
		{"RST-ACK acknowledging seq, not seq+1 (TTL 1)", seg(s.DstPort, sport, probeSeq(encodeProbe(s, 3, 1)), probe.TCPFlagRST|probe.TCPFlagACK), false},
		{"SYN-ACK to another address", tcpSegment(target, netip.MustParseAddr("192.0.2.11"), s.DstPort, sport, 1, seq+1, sa, nil), false},
		{"SYN-ACK cut in the TCP header", synAck[:len(synAck)-1], false},
		{"SYN-ACK, later fragment", edit(synAck, func(b []byte) { b[14+7] = 1; fixIPChecksum(b[14:]) }), false},
		{"SYN-ACK, IPv6 ethertype", eth(unix.ETH_P_IPV6, synAck[14:]), false},
		{"SYN-ACK, outer IHL 4", edit(synAck, func(b []byte) { b[14] = 4<<4 | 4; fixIPChecksum(b[14:]) }), false},
		{"time exceeded quoting a UDP probe", reply(11, 0, encodeProbe(runSpec, 3, 7)), false},
		{"time exceeded quoting an ICMP probe", reply(11, 0, encodeProbe(icmpSpec, 3, 7)), false},
		{"time exceeded, other destination port", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.DstPort++ }), 3, 7)), false},
		{"time exceeded, other tag", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.Tag++ }), 3, 7)), false},
		{"time exceeded, source port above range", reply(11, 0, encodeProbe(s, 17, 7)), false},
		{"time exceeded, ports cut off", te[:14+20+8+20+3], false},
		{"echo reply", echoReply(target, ourSrc, 0, encodeProbe(icmpSpec, 3, 7)[20:]), false},
		{"UDP from the target", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_UDP, target, ourSrc, nil, synAck[14+20:])), false},
	}
}

// icmpCorpus holds the replies an ICMP run's filter keeps (time exceeded
// and unreachable messages quoting its echo requests, echo replies from the
// destination) and near misses it drops.
func icmpCorpus() []filterCase {
	s := icmpSpec
	other := func(f func(s *probe.Spec)) probe.Spec {
		c := s
		f(&c)
		return c
	}
	p := encodeProbe(s, 3, 7)
	req := p[20:]
	te := reply(probe.ICMPTimeExceeded, 0, p)
	er := echoReply(target, ourSrc, probe.ICMPEchoReply, req)
	asReply := edit(p, func(b []byte) {
		b[20] = probe.ICMPEchoReply
		b[22], b[23] = 0, 0
		binary.BigEndian.PutUint16(b[22:], probe.Checksum(b[20:]))
	})
	return []filterCase{
		{"time exceeded", te, true},
		{"time exceeded, RFC 792 quote (8 bytes of ICMP)", reply(11, 0, p[:28]), true},
		{"time exceeded, identifier exactly at the end", te[:14+20+8+20+6], true},
		{"host unreachable", reply(probe.ICMPUnreachable, 1, p), true},
		{"quoted IHL 6", reply(11, 0, withIPOptions(p, []byte{0x94, 4, 0, 0})), true},
		{"RFC 4884 MPLS extension", eth(unix.ETH_P_IP, ipv4(unix.IPPROTO_ICMP, router, ourSrc, nil,
			icmp(probe.ICMPTimeExceeded, 0, p, mplsObject))), true},
		{"echo reply", er, true},
		{"echo reply without payload", echoReply(target, ourSrc, 0, req[:8]), true},
		{"echo reply, first path, TTL 1", echoReply(target, ourSrc, 0, encodeProbe(s, 1, 1)[20:]), true},
		{"echo reply, last path, TTL 64", echoReply(target, ourSrc, 0, encodeProbe(s, 16, 64)[20:]), true},
		{"echo reply from another address", echoReply(router, ourSrc, 0, req), true},
		{"echo reply, code 1", edit(er, func(b []byte) { b[14+20+1] = 1 }), true},
		{"echo reply, first fragment", edit(er, func(b []byte) { b[14+6] = 0x20; fixIPChecksum(b[14:]) }), true},

		{"our own echo request", eth(unix.ETH_P_IP, p), false},
		{"echo request from the target", echoReply(target, ourSrc, probe.ICMPEcho, req), false},
		{"echo reply to another address", echoReply(target, netip.MustParseAddr("192.0.2.11"), 0, req), false},
		{"echo reply, identifier below range", echoReply(target, ourSrc, 0, encodeProbe(s, 0, 7)[20:]), false},
		{"echo reply, identifier above range", echoReply(target, ourSrc, 0, encodeProbe(s, 17, 7)[20:]), false},
		{"echo reply, other tag", echoReply(target, ourSrc, 0, encodeProbe(other(func(s *probe.Spec) { s.Tag-- }), 3, 7)[20:]), false},
		{"echo reply cut in the ICMP header", er[:14+20+7], false},
		{"echo reply, later fragment", edit(er, func(b []byte) { b[14+7] = 1; fixIPChecksum(b[14:]) }), false},
		{"timestamp reply", echoReply(target, ourSrc, 14, req), false},
		{"time exceeded quoting an echo reply", reply(11, 0, asReply), false},
		{"time exceeded quoting a UDP probe", reply(11, 0, encodeProbe(runSpec, 3, 7)), false},
		{"time exceeded quoting a TCP probe", reply(11, 0, encodeProbe(tcpSpec, 3, 7)), false},
		{"time exceeded, other identifier", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.BaseSrcPort += 100 }), 3, 7)), false},
		{"time exceeded, other tag", reply(11, 0, encodeProbe(other(func(s *probe.Spec) { s.Tag++ }), 3, 7)), false},
		{"time exceeded, other source", reply(11, 0, encodeProbe(other(func(s *probe.Spec) {
			s.Src = netip.MustParseAddr("192.0.2.11")
		}), 3, 7)), false},
		{"time exceeded, identifier cut off", te[:14+20+8+20+5], false},
		{"SYN-ACK", answer(tcpSpec, encodeProbe(tcpSpec, 3, 7), probe.TCPFlagSYN|probe.TCPFlagACK), false},
	}
}

// udpExtra are replies to TCP and ICMP probes, which a UDP run drops.
func udpExtra() []filterCase {
	return []filterCase{
		{"SYN-ACK", answer(withProto(runSpec, probe.ProtoTCP, runSpec.DstPort), encodeProbe(runSpec, 3, 7), probe.TCPFlagSYN|probe.TCPFlagACK), false},
		{"echo reply to an echo request", echoReply(target, ourSrc, 0, encodeProbe(withProto(runSpec, probe.ProtoICMP, 0), 3, 7)[20:]), false},
		{"time exceeded quoting a TCP probe", reply(11, 0, encodeProbe(withProto(runSpec, probe.ProtoTCP, runSpec.DstPort), 3, 7)), false},
		{"time exceeded quoting an ICMP probe", reply(11, 0, encodeProbe(icmpSpec, 3, 7)), false},
	}
}

// protoCorpus is a run's Match and the cases its filter must decide.
type protoCorpus struct {
	name  string
	m     Match
	cases []filterCase
}

// corpora returns the corpus of each protocol: UDP's (corpus(), udpExtra
// and v4DropsV6), TCP's and ICMP's; and that of an IPv6 run (corpus6).
func corpora() []protoCorpus {
	return []protoCorpus{
		{"udp", runMatch, append(append(corpus(), udpExtra()...), v4DropsV6()...)},
		{"tcp", matchOf(tcpSpec), tcpCorpus()},
		{"icmp", matchOf(icmpSpec), icmpCorpus()},
		{"udp6", matchOf(udp6Spec), corpus6()},
	}
}

// TestProtoMatch checks that the TCP and ICMP keys reach both programs at
// the ends of their ranges: the identifier or port range, the largest tag
// (whose TCP acknowledgment number can wrap to 0), and an ICMP run without
// a destination port.
func TestProtoMatch(t *testing.T) {
	for _, p := range []probe.Proto{probe.ProtoTCP, probe.ProtoICMP} {
		s := probe.Spec{Proto: p, Src: netip.MustParseAddr("10.255.0.1"), BaseSrcPort: 65000, Paths: 535,
			Tag: probe.MaxTag, Epoch: runSpec.Epoch.Add(-probe.ClockUnit)}
		if p == probe.ProtoTCP {
			s.DstPort = 65535
		}
		m := matchOf(s)
		t.Run(p.String(), func(t *testing.T) {
			vm := forVM(t, loadClassic(t, m).insns)
			f := loadFilterIfAllowed(t, m)
			for _, tc := range []struct {
				pathID, ttl int
				keep        bool
			}{{1, 1, true}, {535, 64, true}, {0, 1, false}} {
				pr := encodeProbe(s, tc.pathID, tc.ttl)
				if p == probe.ProtoTCP && tc.ttl == 64 {
					// The largest sequence number: the clock at its
					// last value, tag 1023, TTL 64.
					binary.BigEndian.PutUint32(pr[24:], 0xffffffff)
				}
				var direct []byte
				if p == probe.ProtoTCP {
					direct = tcpSegment(target, s.Src, s.DstPort, binary.BigEndian.Uint16(pr[20:]), 1, probeSeq(pr)+1, probe.TCPFlagRST|probe.TCPFlagACK, nil)
				} else {
					direct = echoReply(target, s.Src, 0, pr[20:])
				}
				for _, frame := range [][]byte{reply(probe.ICMPTimeExceeded, 0, pr), direct} {
					got := runVM(t, vm, frame)
					if (got == keepAll) != tc.keep || (got != keepAll && got != 0) {
						t.Errorf("path %d TTL %d: classic returned %#x, want keep=%v", tc.pathID, tc.ttl, got, tc.keep)
					}
					if f == nil {
						continue
					}
					if e, _ := runEBPF(t, f, frame); e != got {
						t.Errorf("path %d TTL %d: eBPF returned %#x, classic %#x", tc.pathID, tc.ttl, e, got)
					}
				}
			}
		})
	}
}
